// A unix-socket server for line protocols, shared by the UAPI socket (`wg`) and xsktun's status
// socket (`xsktun show`): the socket's life (parent directories 0755, bound under umask 077 so
// it is srw-------; a stale socket left by a dead daemon replaced, a live one an error; unlinked
// at stop only if the file is still ours) and one poll() thread serving up to kMaxClients
// connections without blocking on any of them (wireguard-go ipc/uapi_unix.go does the same).
//
// Each connection gets its own LineSession from the factory; complete lines are handed to it
// one at a time, and a reply is flushed before the next line is read. Lines longer than
// `max_line` get the session's too_long() reply and a hang-up instead of unbounded memory.
// Received and sent bytes are wiped (UAPI requests carry private keys).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace xsktun::control {

class LineSession {
 public:
  virtual ~LineSession() = default;
  // One input line (without its '\n'). Appends any reply to *out; returns false to hang up
  // once the reply is sent.
  virtual bool line(std::string_view line, std::string* out) = 0;
  // The reply to a line longer than the server's limit (then the connection is closed).
  virtual std::string too_long() { return {}; }
};

class SocketServer {
 public:
  static constexpr size_t kMaxClients = 64;  // beyond this, new connections wait in the backlog
  using Factory = std::function<std::unique_ptr<LineSession>()>;

  SocketServer(Factory factory, size_t max_line);
  ~SocketServer();  // stop()s
  SocketServer(const SocketServer&) = delete;
  SocketServer& operator=(const SocketServer&) = delete;

  // Binds and starts the thread. On failure returns false and describes why in *error.
  bool start(const std::string& path, std::string* error);
  // Stops the thread, closes every connection and unlinks the socket file if it is still ours.
  // Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // True once the socket file we created is gone or replaced. Cheap (one lstat); call only
  // between start() and stop(), from any thread.
  bool socket_file_gone() const;
  size_t client_count() const { return client_count_.load(); }
  const std::string& path() const { return path_; }

 private:
  struct Client;

  bool bind_socket(std::string* error);
  void loop();
  void accept_clients();
  void service(Client& c, short revents);
  void read_some(Client& c);
  bool flush(Client& c);
  bool process_one(Client& c);
  void close_all();

  Factory factory_;
  size_t max_line_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> running_{false};
  std::atomic<size_t> client_count_{0};
};

// Connects to the unix socket at `path`; -1 with errno set if nobody listens there.
int connect_unix(const std::string& path);

}  // namespace xsktun::control
