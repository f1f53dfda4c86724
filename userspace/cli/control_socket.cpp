#include "xsktun/cli/control_socket.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xsktun::cli {

std::string status_socket_path(const std::string& ifname) {
  return std::string(kRunDir) + "/" + ifname + ".sock";
}
std::string pid_file_path(const std::string& ifname) { return std::string(kRunDir) + "/" + ifname + ".pid"; }

namespace {
class StatusSession : public control::LineSession {
 public:
  explicit StatusSession(const StatusServer::Handler& h) : handler_(h) {}
  bool line(std::string_view line, std::string* out) override {
    *out = handler_(std::string(line));
    return false;  // one command per connection: the client reads until EOF
  }

 private:
  const StatusServer::Handler& handler_;
};
}  // namespace

StatusServer::StatusServer()
    : server_([this] { return std::make_unique<StatusSession>(handler_); }, kMaxCommand) {}

bool StatusServer::start(const std::string& path, Handler h, std::string* err) {
  handler_ = std::move(h);
  return server_.start(path, err);
}

bool status_query(const std::string& ifname, const std::string& command, std::string* reply,
                  std::string* err) {
  std::string path = status_socket_path(ifname);
  int fd = control::connect_unix(path);
  if (fd < 0) {
    *err = "no xsktun daemon for " + ifname + " (" + path + ": " + strerror(errno) + ")";
    return false;
  }
  std::string line = command + "\n";
  (void)!write(fd, line.data(), line.size());
  reply->clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) reply->append(buf, static_cast<size_t>(n));
  close(fd);
  return true;
}

}  // namespace xsktun::cli
