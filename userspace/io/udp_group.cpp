#include "xsktun/io/udp_group.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace xsktun::io {

namespace {
// Whether `port` is free for a socket without SO_REUSEPORT: a group must not join the
// SO_REUSEPORT sockets of another daemon (same user) and silently share its datagrams.
int probe_port(uint16_t port) {
  if (port == 0) return 0;
  auto probe = UdpSocket::open(port, nullptr, false);
  return probe ? 0 : -EADDRINUSE;
}
}  // namespace

std::unique_ptr<UdpGroup> UdpGroup::open(uint16_t port, size_t n, std::string* err) {
  if (n == 0) n = 1;
  auto g = std::unique_ptr<UdpGroup>(new UdpGroup());
  if (n > 1 && probe_port(port) < 0) {
    if (err) *err = "UDP socket on port " + std::to_string(port) + ": " + std::strerror(EADDRINUSE);
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    // The first picks the port when asked for any; the others join it.
    uint16_t p = i == 0 ? port : g->members_[0]->port();
    auto s = UdpSocket::open(p, err, n > 1);
    if (!s) return nullptr;
    g->members_.push_back(std::move(s));
  }
  return g;
}

int UdpGroup::rebind(uint16_t port) {
  uint16_t old = members_[0]->port();
  if (port != 0 && port == old) return 0;
  if (members_.size() > 1 && port != 0) {
    if (int rc = probe_port(port); rc < 0) return rc;
  }
  for (size_t i = 0; i < members_.size(); ++i) {
    int rc = members_[i]->rebind(i == 0 ? port : members_[0]->port());
    if (rc == 0) continue;
    // Back to where the group was; those sockets are still ours to rejoin.
    for (size_t k = 0; k < i; ++k) members_[k]->rebind(old);
    return rc;
  }
  return 0;
}

void UdpGroup::set_fwmark(uint32_t mark) {
  for (auto& m : members_) m->set_fwmark(mark);
}

void UdpGroup::wake() {
  for (auto& m : members_) m->wake();
}

uint64_t UdpGroup::receive_drops() const {
  uint64_t sum = 0;
  for (const auto& m : members_) sum += m->receive_drops();
  return sum;
}

}  // namespace xsktun::io
