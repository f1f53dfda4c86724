// xsktun's own status socket, /var/run/xsktun/IFNAME.sock, separate from the wg(8) UAPI socket:
// `xsktun show` asks it for the JSON status (counters, mode), which the UAPI has no words for.
// Protocol: the client writes one line ("show"), the server answers and closes.
#pragma once

#include <functional>
#include <string>

#include "xsktun/control/socket_server.h"

namespace xsktun::cli {

constexpr const char* kRunDir = "/var/run/xsktun";

std::string status_socket_path(const std::string& ifname);
std::string pid_file_path(const std::string& ifname);

// The status socket: a control::SocketServer (the UAPI socket's) whose sessions answer one line
// with the handler's reply and hang up. The handler runs on the server's thread.
class StatusServer {
 public:
  using Handler = std::function<std::string(const std::string& command)>;
  StatusServer();
  bool start(const std::string& path, Handler h, std::string* err);
  void stop() { server_.stop(); }

 private:
  static constexpr size_t kMaxCommand = 256;
  Handler handler_;
  control::SocketServer server_;  // last: its thread stops before the handler goes
};

// Client side: sends `command`, returns the reply; false (with *err) if nobody answers.
bool status_query(const std::string& ifname, const std::string& command, std::string* reply,
                  std::string* err);

}  // namespace xsktun::cli
