// The UAPI unix-socket server: what `wg` and `wg-quick` talk to at /var/run/wireguard/IFNAME.sock
// when the interface is run by a userspace implementation (wireguard-tools src/ipc-uapi.h).
//
// Behaviour follows wireguard-go (ipc/uapi_unix.go, ipc/uapi_linux.go, device/uapi.go):
//  - the parent directory is created with mode 0755, the socket is bound under umask 077 (so it
//    is srwx------); a stale socket left by a dead daemon is replaced, a live one is an error;
//  - a connection may carry any number of commands in sequence: "get=1\n\n", or "set=1\n",
//    key=value lines, "\n"; each is answered with the get body and/or "errno=N\n\n";
//  - an unknown command closes the connection without a reply.
// Differences, on purpose: a set is applied only when its terminating blank line arrives (a
// client that disconnects mid-command changes nothing; one that disconnects after it still gets
// it applied); a set is parsed line by line as it arrives (UapiSetParser), so its size in bytes
// is not limited, only what it configures (peer blocks and allowed IPs, from the device's
// limits: about 100 MB of parsed configuration at most per connection); input lines longer
// than kMaxLine get "errno=-EMSGSIZE" and a hang-up instead of unbounded memory (wireguard-go
// buffers without limit).
//
// One thread runs a poll() loop over the listening socket, the clients and an eventfd used to
// stop it; the handler is therefore called from that thread, one command at a time.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "xsktun/control/config.h"
#include "xsktun/control/uapi.h"

namespace xsktun::control {

class UapiHandler {
 public:
  virtual ~UapiHandler() = default;
  virtual DeviceSnapshot get() = 0;
  // Apply atomically; return errno_value 0 on success, else a positive errno (EINVAL,
  // EADDRINUSE for an unusable listen port, ...).
  virtual UapiError set(const ConfigChange& change) = 0;
};

class UapiServer {
 public:
  // The longest legitimate line is an IPv6 endpoint (under 70 bytes): 64 KiB is only a guard.
  static constexpr size_t kMaxLine = 64 << 10;
  static constexpr size_t kMaxClients = 64;  // beyond this, new connections wait in the backlog

  explicit UapiServer(UapiHandler& handler);
  ~UapiServer();  // stop()s
  UapiServer(const UapiServer&) = delete;
  UapiServer& operator=(const UapiServer&) = delete;

  // "/var/run/wireguard/<ifname>.sock", where `wg` looks for userspace interfaces.
  static std::string default_path(std::string_view ifname);

  // Binds and starts the thread. On failure returns false and describes why in *error.
  bool start(const std::string& path, std::string* error = nullptr);
  // Stops the thread, closes every connection and unlinks the socket file if it is still ours.
  // Idempotent.
  void stop();
  bool running() const { return running_.load(); }

  // True once the socket file we created is gone or replaced (`wg-quick down` deletes it to
  // make a userspace daemon exit). Cheap (one lstat); meant to be polled by the daemon.
  // Call only between start() and stop(), from any thread.
  bool socket_file_gone() const;

  size_t client_count() const { return client_count_.load(); }
  // Lower caps on what one set may carry (tests); the defaults are UapiSetParser's.
  void set_parse_limits(size_t peer_blocks, size_t prefixes) {
    max_peer_blocks_ = peer_blocks;
    max_prefixes_ = prefixes;
  }

 private:
  struct Client;

  bool bind_socket(std::string* error);
  void loop();
  void accept_clients();
  void service(Client& c, short revents);
  void read_some(Client& c);
  bool flush(Client& c);
  bool process_one(Client& c);
  void on_line(Client& c, std::string_view line);
  void finish_set(Client& c);
  void close_all();

  UapiHandler& handler_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> running_{false};
  std::atomic<size_t> client_count_{0};
  std::atomic<size_t> max_peer_blocks_{UapiSetParser::kMaxPeerBlocks};
  std::atomic<size_t> max_prefixes_{UapiSetParser::kMaxPrefixes};
};

}  // namespace xsktun::control
