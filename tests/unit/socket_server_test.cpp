// The unix-socket server shared by the UAPI and status sockets (control/socket_server.h), with
// a one-line session like the status socket's: reply then hang up; a live socket refused, a
// stale one replaced. The UAPI protocol over it is uapi_test's and uapi_server_hardening_test's.
#include "xsktun/control/socket_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "test_util.h"

namespace xsktun::control {
namespace {

class Upper : public LineSession {
 public:
  bool line(std::string_view line, std::string* out) override {
    for (char c : line) out->push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    out->push_back('\n');
    return false;  // hang up after the reply
  }
  std::string too_long() override { return "too long\n"; }
};

SocketServer::Factory upper() {
  return [] { return std::make_unique<Upper>(); };
}

// Writes `request`, reads to EOF.
std::string ask(const std::string& path, const std::string& request) {
  int fd = connect_unix(path);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd < 0) return {};
  EXPECT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string reply;
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  close(fd);
  return reply;
}

class SocketServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/run/x.sock";  // the parent directory is created by start()
  }
  test_util::TempDir tmp_{"xsktun-sock"};  // removed last: after the server stopped
  std::string dir_, path_;
};

TEST_F(SocketServerTest, OneLineSessionRepliesAndHangsUp) {
  SocketServer s(upper(), 16);
  std::string err;
  ASSERT_TRUE(s.start(path_, &err)) << err;
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 077, 0u) << "the socket is private to its owner";
  EXPECT_EQ(ask(path_, "show\nignored after the hang-up\n"), "SHOW\n");
  EXPECT_EQ(ask(path_, std::string(17, 'x') + "\n"), "too long\n");
  s.stop();
  EXPECT_NE(access(path_.c_str(), F_OK), 0) << "stop() removes its socket";
}

TEST_F(SocketServerTest, LiveSocketIsRefusedStaleSocketReplaced) {
  SocketServer first(upper(), 16);
  std::string err;
  ASSERT_TRUE(first.start(path_, &err)) << err;
  SocketServer second(upper(), 16);
  EXPECT_FALSE(second.start(path_, &err));
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
  EXPECT_EQ(ask(path_, "still\n"), "STILL\n") << "the refused server left the live socket alone";
  first.stop();

  // A socket file nobody listens on (its daemon died) is replaced.
  int dead = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(bind(dead, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
  close(dead);
  ASSERT_TRUE(second.start(path_, &err)) << err;
  EXPECT_EQ(ask(path_, "new\n"), "NEW\n");
}

}  // namespace
}  // namespace xsktun::control
