// xsktun's own status socket, /var/run/xsktun/IFNAME.sock, separate from the wg(8) UAPI socket:
// `xsktun show` asks it for the JSON status (counters, mode), which the UAPI has no words for.
// Protocol: the client writes one line ("show"), the server answers and closes.
#pragma once

#include <functional>
#include <string>
#include <thread>

namespace xsktun::cli {

constexpr const char* kRunDir = "/var/run/xsktun";

std::string status_socket_path(const std::string& ifname);
std::string pid_file_path(const std::string& ifname);

class StatusServer {
 public:
  using Handler = std::function<std::string(const std::string& command)>;
  ~StatusServer();
  bool start(const std::string& path, Handler h, std::string* err);
  void stop();

 private:
  void loop();
  int fd_ = -1;
  int wake_fd_ = -1;
  std::string path_;
  Handler handler_;
  std::thread thread_;
};

// Client side: sends `command`, returns the reply; false (with *err) if nobody answers.
bool status_query(const std::string& ifname, const std::string& command, std::string* reply,
                  std::string* err);

}  // namespace xsktun::cli
