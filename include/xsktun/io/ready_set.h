// One pollable descriptor standing for several (an epoll set, level-triggered): it polls
// readable while any member is readable. TunDevice and UdpSocket hand theirs (data fd + wake
// eventfd) to a Runner that serves both sides from one thread (packet_io.h, ready_fd).
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

namespace xsktun::io {

class ReadySet {
 public:
  ReadySet() : fd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~ReadySet() {
    if (fd_ >= 0) close(fd_);
  }
  ReadySet(const ReadySet&) = delete;
  ReadySet& operator=(const ReadySet&) = delete;

  // 0, or -errno (then the member is not watched).
  int add(int member) {
    if (fd_ < 0) return -EBADF;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = member;
    return epoll_ctl(fd_, EPOLL_CTL_ADD, member, &ev) == 0 ? 0 : -errno;
  }
  void remove(int member) {
    if (fd_ >= 0) epoll_ctl(fd_, EPOLL_CTL_DEL, member, nullptr);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace xsktun::io
