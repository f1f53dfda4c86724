// The real UapiServer, on a socket in a private temporary directory, in front of a real Device:
// bad transactions, clients that vanish mid-command or before reading, and overlong input. After
// every refusal the device's get=1 dump must be exactly what it was, and the server must keep
// serving the next client. (config_hardening_test.cpp covers the set=1 parser + apply itself.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "device_harness.h"
#include "test_util.h"
#include "xsktun/control/keys.h"
#include "xsktun/control/uapi.h"
#include "xsktun/control/uapi_server.h"

namespace xsktun::control {
namespace {

using test_util::eventually;

std::string hex(uint8_t start) {
  Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(start + i);
  return key_to_hex(k);
}

// The daemon's adapter (cli/daemon.cpp DeviceUapi): the server thread drives the device.
class DeviceHandler : public UapiHandler {
 public:
  explicit DeviceHandler(device::Device& d) : dev_(d) {}
  DeviceSnapshot get() override { return dev_.snapshot(); }
  UapiError set(const ConfigChange& c) override {
    std::string err;
    int rc = dev_.apply(c, &err);
    return UapiError{rc, err};
  }

 private:
  device::Device& dev_;
};

// A client that never blocks on the server: it writes what the server accepts while reading
// what comes back, so a server that stops reading (overlong input) cannot deadlock the test.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    // A blocking connect waits while the server's backlog is full instead of failing EAGAIN.
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~Client() { close_now(); }
  bool connected() const { return connected_; }
  void close_now() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  void half_close() { shutdown(fd_, SHUT_WR); }

  // Writes all of `data` without reading anything back. False if the server hung up first.
  bool send_all(std::string_view data) {
    while (!data.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, 10000) <= 0) return false;  // a hang guard, not a timing assertion
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN) return false;
      if (n > 0) data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Sends `req` (as far as the server takes it) and returns the first reply, up to and including
  // its blank line, or whatever arrived before the connection ended. *sent = bytes accepted.
  std::string transact(std::string_view req, size_t* sent = nullptr) {
    size_t off = 0;
    bool can_write = true;
    for (;;) {
      size_t end = buf_.find("\n\n");
      if (end != std::string::npos) break;
      pollfd p{fd_, static_cast<short>(POLLIN | (can_write && off < req.size() ? POLLOUT : 0)), 0};
      if (poll(&p, 1, 10000) <= 0) break;  // a hang guard, not a timing assertion
      if (p.revents & POLLOUT) {
        ssize_t n = send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n > 0) off += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN) can_write = false;  // EPIPE: the server hung up
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        if (read_some() <= 0) break;
      }
    }
    if (sent) *sent = off;
    size_t end = buf_.find("\n\n");
    std::string r = buf_.substr(0, end == std::string::npos ? std::string::npos : end + 2);
    buf_.erase(0, r.size());
    return r;
  }
  // True if the server closed the connection (EOF, or a reset because input was left unread).
  bool hung_up() {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10000) <= 0) return false;
      int n = read_some();
      if (n <= 0) return true;
    }
  }

 private:
  int read_some() {
    char b[65536];
    ssize_t n = recv(fd_, b, sizeof b, 0);
    if (n > 0) buf_.append(b, static_cast<size_t>(n));
    if (n < 0 && errno == EAGAIN) return 1;
    return n > 0 ? 1 : n == 0 ? 0 : -1;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string baseline() {
  return "set=1\nprivate_key=" + hex(0x10) + "\nlisten_port=51820\nfwmark=5\npublic_key=" + hex(0x20) +
         "\npreshared_key=" + hex(0x30) +
         "\nendpoint=192.0.2.2:51821\nallowed_ip=10.0.0.2/32\npublic_key=" + hex(0x40) +
         "\npersistent_keepalive_interval=25\nallowed_ip=10.1.0.0/16\n\n";
}

// Valid lines that change every field: what a bad transaction would half-apply.
std::string valid_half() {
  return "private_key=" + hex(0x11) + "\nlisten_port=40000\nreplace_peers=true\npublic_key=" + hex(0x20) +
         "\nallowed_ip=10.9.0.0/16\npublic_key=" + hex(0x50) + "\nallowed_ip=10.5.0.0/16\n";
}

class UapiServerHardening : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/wg0.sock";
    std::string err;
    ASSERT_TRUE(server_.start(path_, &err)) << err;
    Client c(path_);
    ASSERT_EQ(c.transact(baseline()), "errno=0\n\n");
    before_ = get();
    ASSERT_NE(before_.find("allowed_ip=10.1.0.0/16\n"), std::string::npos) << before_;
  }
  void TearDown() override { server_.stop(); }
  // A full get=1 dump through a fresh connection: also proves the server still answers.
  std::string get() {
    Client c(path_);
    return c.transact("get=1\n\n");
  }
  void expect_unchanged() {
    EXPECT_TRUE(server_.running());
    EXPECT_EQ(get(), before_);
  }

  test_util::TempDir tmp_{"xsktun-uapi-hard"};  // removed last: after the server stopped
  xsktun::testing::FakeClock clock_;
  io::FakeNetwork net_;
  xsktun::testing::Node node_{net_, "192.0.2.1", 51820, clock_};
  DeviceHandler handler_{*node_.dev};
  UapiServer server_{handler_};
  std::string dir_, path_, before_;
};

TEST_F(UapiServerHardening, LateErrorOnTheSecondPeerAppliesNothing) {
  Client c(path_);
  EXPECT_EQ(c.transact("set=1\n" + valid_half() + "allowed_ip=10.0.0.0/33\n\n"), "errno=-22\n\n");
  EXPECT_EQ(c.transact("set=1\n" + valid_half() + "endpoint=192.0.2.9:65536\n\n"), "errno=-22\n\n");
  EXPECT_EQ(c.transact("set=1\n" + valid_half() + "public_key=" + hex(0x20).substr(1) + "\n\n"),
            "errno=-22\n\n");
  EXPECT_EQ(c.transact("set=1\n" + valid_half() + "bogus\n\n"), "errno=-71\n\n");  // EPROTO
  // The connection survives refusals: the same client can still read the state.
  EXPECT_EQ(c.transact("get=1\n\n"), before_);
  expect_unchanged();
}

TEST_F(UapiServerHardening, ListenPortInUseAppliesNothing) {
  auto squatter = net_.attach(*IpAddr::parse("192.0.2.1"), 40000);
  Client c(path_);
  EXPECT_EQ(c.transact("set=1\n" + valid_half() + "\n"), format_uapi_errno(EADDRINUSE));
  expect_unchanged();
}

TEST_F(UapiServerHardening, RepeatedPublicKeyInOneSetIsOnePeer) {
  Client c(path_);
  ASSERT_EQ(c.transact("set=1\npublic_key=" + hex(0x20) +
                       "\nallowed_ip=10.7.0.0/16\npublic_key=" + hex(0x20) + "\nallowed_ip=10.8.0.0/16\n\n"),
            "errno=0\n\n");
  std::string after = get();
  size_t first = after.find("public_key=" + hex(0x20));
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(after.find("public_key=" + hex(0x20), first + 1), std::string::npos);
  EXPECT_NE(after.find("allowed_ip=10.7.0.0/16\n"), std::string::npos);
  EXPECT_NE(after.find("allowed_ip=10.8.0.0/16\n"), std::string::npos);
}

TEST_F(UapiServerHardening, DisconnectMidCommandAppliesNothing) {
  for (const std::string& partial :
       {std::string("set=1\n"), "set=1\n" + valid_half(), "set=1\n" + valid_half() + "listen_port=4",
        "set=1\n" + valid_half() + "public_key=" + hex(0x60).substr(0, 20), std::string("se")}) {
    {
      Client c(path_);
      ASSERT_TRUE(c.connected());
      EXPECT_EQ(c.transact("get=1\n\n"), before_);  // the server holds this connection now
      ASSERT_TRUE(c.send_all(partial));             // no blank line: the command never ends
    }
    EXPECT_TRUE(eventually([&] { return server_.client_count() == 0; })) << partial;
    expect_unchanged();
  }
}

TEST_F(UapiServerHardening, HalfCloseAfterAPartialSetAppliesNothingAndHangsUp) {
  Client c(path_);
  ASSERT_TRUE(c.send_all("set=1\n" + valid_half()));
  c.half_close();
  EXPECT_TRUE(c.hung_up());
  expect_unchanged();
}

TEST_F(UapiServerHardening, CompleteSetFromAClientThatLeavesAtOnceIsApplied) {
  {
    Client c(path_);
    ASSERT_TRUE(c.send_all("set=1\nlisten_port=40001\n\n"));
  }  // gone before the reply: the command was complete, so it counts
  ASSERT_TRUE(eventually([&] { return get().find("listen_port=40001\n") != std::string::npos; }));
}

// The server writes the reply to a socket nobody reads any more: without MSG_NOSIGNAL that is
// a SIGPIPE, which would kill this whole test binary.
TEST_F(UapiServerHardening, ClientsThatCloseBeforeReadingDoNotKillTheServer) {
  ConfigChange big;
  PeerChange& p = big.peers.emplace_back();
  p.public_key = *key_from_hex(hex(0x40));
  for (int i = 0; i < 20000; ++i) {
    std::string a = "10." + std::to_string(64 + i / 256) + "." + std::to_string(i % 256) + ".0/24";
    p.allowed_ips.push_back(*Prefix::parse(a));
  }
  std::string err;
  ASSERT_EQ(node_.dev->apply(big, &err), 0) << err;  // a get=1 reply of about 500 KB
  std::string full = get();
  ASSERT_GT(full.size(), 400000u);
  for (int i = 0; i < 20; ++i) {
    Client c(path_);
    ASSERT_TRUE(c.connected());
    // The second get of the first form is cut off; the set of the second changes nothing.
    ASSERT_TRUE(c.send_all(i % 2 ? "get=1\n\nget=1\n" : "set=1\nfwmark=5\n\nget=1\n\n"));
  }  // each closes with the reply unread
  EXPECT_TRUE(eventually([&] { return server_.client_count() == 0; }));
  EXPECT_TRUE(server_.running());
  EXPECT_EQ(get(), full);
}

TEST_F(UapiServerHardening, MegabyteLineIsRefusedAndNothingApplied) {
  for (const std::string& line :
       {"allowed_ip=" + std::string(1 << 20, '1'), std::string(1 << 20, 'k') + "=1"}) {
    Client c(path_);
    EXPECT_EQ(c.transact("set=1\n" + valid_half() + line + "\n\n"), format_uapi_errno(EMSGSIZE));
    EXPECT_TRUE(c.hung_up());  // a stream cut inside a line cannot be resynchronised
    expect_unchanged();
  }
}

TEST_F(UapiServerHardening, LineCapDoesNotDependOnHowBytesArrive) {
  // One byte over the cap, arriving together with its newline: still refused.
  Client c(path_);
  std::string line = "allowed_ip=" + std::string(UapiServer::kMaxLine - 10, '1');
  ASSERT_EQ(line.size(), UapiServer::kMaxLine + 1);
  EXPECT_EQ(c.transact("set=1\n" + line + "\n\n"), format_uapi_errno(EMSGSIZE));
  // Exactly at the cap the line is read and refused as a bad value, on a connection that stays.
  Client d(path_);
  line.pop_back();
  EXPECT_EQ(d.transact("set=1\npublic_key=" + hex(0x20) + "\n" + line + "\n\n"), "errno=-22\n\n");
  EXPECT_EQ(d.transact("get=1\n\n"), before_);
}

TEST_F(UapiServerHardening, EndlessLineIsNotBuffered) {
  // 32 MB without a newline: the server answers once it has seen kMaxLine bytes and stops
  // reading, so only that plus what the socket buffers could ever be accepted.
  std::string flood = "set=1\nallowed_ip=" + std::string(32 << 20, '1');
  Client c(path_);
  size_t sent = 0;
  EXPECT_EQ(c.transact(flood, &sent), format_uapi_errno(EMSGSIZE));
  EXPECT_TRUE(c.hung_up());
  EXPECT_LT(sent, flood.size() / 4);
  expect_unchanged();
}

// A set is parsed as it arrives, so its size in bytes is not limited: 17 MiB of valid lines
// (more than the 16 MiB whole-body cap of earlier versions) apply as one transaction.
TEST_F(UapiServerHardening, SetLongerThan16MiBApplies) {
  std::string body = "set=1\npublic_key=" + hex(0x40) + "\n";
  size_t n = 0;
  char line[64];
  while (body.size() <= (17u << 20)) {
    snprintf(line, sizeof line, "allowed_ip=10.%u.%u.%u/32\n", unsigned(n >> 16) & 255,
             unsigned(n >> 8) & 255, unsigned(n) & 255);
    body += line;
    ++n;
  }
  Client c(path_);
  EXPECT_EQ(c.transact(body + "\n"), format_uapi_errno(0));
  EXPECT_EQ(node_.dev->snapshot().peers.back().allowed_ips.size(), n + 1) << "plus the baseline 10.1.0.0/16";
}

// What a set configures is capped (peer blocks, allowed IPs: from the device's limits): past
// the cap the set is refused whole with ENOSPC, nothing applied, and the connection stays
// usable, since the stream is still in step.
TEST_F(UapiServerHardening, SetPastTheParseCapsIsRefusedWhole) {
  server_.set_parse_limits(3, 4);
  Client c(path_);
  std::string five_prefixes = "set=1\npublic_key=" + hex(0x40) + "\n";
  for (int i = 0; i < 5; ++i) five_prefixes += "allowed_ip=10.7." + std::to_string(i) + ".0/24\n";
  EXPECT_EQ(c.transact(five_prefixes + "\n"), format_uapi_errno(ENOSPC));
  expect_unchanged();
  std::string four_peers = "set=1\n";
  for (int i = 0; i < 4; ++i) four_peers += "public_key=" + hex(0x60 + i) + "\n";
  EXPECT_EQ(c.transact(four_peers + "\n"), format_uapi_errno(ENOSPC));
  expect_unchanged();
  EXPECT_EQ(c.transact("set=1\npublic_key=" + hex(0x60) + "\nallowed_ip=10.8.0.0/24\n\n"),
            format_uapi_errno(0));
}

}  // namespace
}  // namespace xsktun::control
