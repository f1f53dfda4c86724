// Runs a test body in a forked child, optionally inside a fresh network namespace (TUN tests:
// nothing leaks into the host's). The child's gtest failures become its exit status; a SIGALRM
// watchdog turns a thread that never wakes up into a quick failure instead of a hung suite.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

namespace xsktun::io::test_util {

constexpr int kSkipStatus = 77;

// Runs `body` in a forked child; the child's gtest failures become its exit status, and a
// SIGALRM watchdog turns a thread that never wakes up into a quick failure instead of a hung
// suite. With `netns`, the child first moves into a new network namespace (needs root; skips
// otherwise, or when namespaces / TUN are unavailable).
inline void forked(bool netns, const std::function<void()>& body) {
  if (netns && geteuid() != 0) GTEST_SKIP() << "TUN tests need root (CAP_NET_ADMIN); skipped";
  fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    if (netns && (unshare(CLONE_NEWNET) != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)) {
      _exit(kSkipStatus);
    }
    alarm(60);
    body();
    fflush(nullptr);
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status)) << "child killed by signal " << WTERMSIG(status) << " (14 = watchdog)";
  if (WEXITSTATUS(status) == kSkipStatus) GTEST_SKIP() << "no network namespaces or /dev/net/tun here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "checks failed in the child (see output above)";
}

inline void in_netns(const std::function<void()>& body) { forked(true, body); }

// Gives `name` an IPv4 address with a /24 (the kernel adds the connected route).
inline void set_ipv4(const std::string& name, const char* addr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  inet_pton(AF_INET, addr, &sin->sin_addr);
  EXPECT_EQ(ioctl(s, SIOCSIFADDR, &ifr), 0) << std::strerror(errno);
  inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
  EXPECT_EQ(ioctl(s, SIOCSIFNETMASK, &ifr), 0) << std::strerror(errno);
  close(s);
}

}  // namespace xsktun::io::test_util
