#include "xsktun/cli/control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xsktun::cli {

namespace {
bool fill_addr(const std::string& path, sockaddr_un* sa) {
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path.size() >= sizeof sa->sun_path) return false;
  std::memcpy(sa->sun_path, path.c_str(), path.size());
  return true;
}
}  // namespace

std::string status_socket_path(const std::string& ifname) {
  return std::string(kRunDir) + "/" + ifname + ".sock";
}
std::string pid_file_path(const std::string& ifname) { return std::string(kRunDir) + "/" + ifname + ".pid"; }

StatusServer::~StatusServer() { stop(); }

bool StatusServer::start(const std::string& path, Handler h, std::string* err) {
  mkdir(kRunDir, 0755);
  sockaddr_un sa;
  if (!fill_addr(path, &sa)) {
    *err = "socket path too long: " + path;
    return false;
  }
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(path.c_str());
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(fd_, 8) < 0) {
    *err = "cannot listen on " + path + ": " + strerror(errno);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    return false;
  }
  chmod(path.c_str(), 0600);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  path_ = path;
  handler_ = std::move(h);
  thread_ = std::thread([this] { loop(); });
  return true;
}

void StatusServer::stop() {
  if (fd_ < 0) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  close(fd_);
  close(wake_fd_);
  fd_ = wake_fd_ = -1;
  unlink(path_.c_str());
}

void StatusServer::loop() {
  for (;;) {
    pollfd pfd[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(pfd, 2, -1) < 0 && errno != EINTR) return;
    if (pfd[1].revents) return;
    if (!(pfd[0].revents & POLLIN)) continue;
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{2, 0};  // a silent client must not stall the server
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string cmd;
    char ch;
    while (cmd.size() < 256 && read(c, &ch, 1) == 1 && ch != '\n') cmd.push_back(ch);
    std::string reply = handler_(cmd);
    for (size_t off = 0; off < reply.size();) {
      ssize_t n = send(c, reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(c);
  }
}

bool status_query(const std::string& ifname, const std::string& command, std::string* reply,
                  std::string* err) {
  sockaddr_un sa;
  std::string path = status_socket_path(ifname);
  if (!fill_addr(path, &sa)) {
    *err = "bad interface name";
    return false;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    *err = "no xsktun daemon for " + ifname + " (" + path + ": " + strerror(errno) + ")";
    if (fd >= 0) close(fd);
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
