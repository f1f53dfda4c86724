// Tests for the UAPI text protocol (wireguard-go device/uapi.go semantics): every set key, every
// error path with its errno, the exact get=1 reply; and the unix-socket server with a fake
// handler, on a socket under a private temporary directory (no root needed).
#include "xsktun/control/uapi.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "test_util.h"
#include "xsktun/control/keys.h"
#include "xsktun/control/uapi_server.h"

namespace xsktun::control {
namespace {

using test_util::eventually;
using test_util::seq_key;

const char* kSeqHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

ConfigChange parse_ok(std::string_view body) {
  auto r = parse_uapi_set(body);
  if (auto* e = std::get_if<UapiError>(&r)) ADD_FAILURE() << "unexpected error: " << e->message;
  return std::holds_alternative<ConfigChange>(r) ? std::get<ConfigChange>(r) : ConfigChange{};
}

TEST(UapiSet, DeviceKeys) {
  std::string body =
      std::string("private_key=") + kSeqHex + "\nlisten_port=51820\nfwmark=4294967295\nreplace_peers=true\n";
  ConfigChange c = parse_ok(body);
  ASSERT_TRUE(c.private_key);
  EXPECT_TRUE(c.private_key->equals(seq_key(0).data()));
  EXPECT_EQ(c.listen_port, 51820);
  EXPECT_EQ(c.fwmark, 4294967295u);
  EXPECT_TRUE(c.replace_peers);
  EXPECT_TRUE(c.peers.empty());
}

TEST(UapiSet, EmptyBodyChangesNothing) {
  ConfigChange c = parse_ok("");
  EXPECT_FALSE(c.private_key || c.listen_port || c.fwmark || c.replace_peers);
  EXPECT_TRUE(c.peers.empty());
}

TEST(UapiSet, ZeroPrivateKeyMeansRemove) {
  ConfigChange c = parse_ok("private_key=" + std::string(64, '0') + "\nlisten_port=0\nfwmark=0\n");
  ASSERT_TRUE(c.private_key);
  EXPECT_TRUE(c.private_key->is_zero());
  EXPECT_EQ(c.listen_port, 0);
  EXPECT_EQ(c.fwmark, 0u);
}

TEST(UapiSet, EveryPeerKey) {
  std::string body =
      std::string("public_key=") + kSeqHex + "\nupdate_only=true\npreshared_key=" + key_to_hex(seq_key(7)) +
      "\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\n"
      "allowed_ip=10.0.0.0/8\nallowed_ip=fd00::1/64\nprotocol_version=1\n";
  ConfigChange c = parse_ok(body);
  ASSERT_EQ(c.peers.size(), 1u);
  const PeerChange& p = c.peers[0];
  EXPECT_EQ(p.public_key, seq_key(0));
  EXPECT_TRUE(p.update_only);
  EXPECT_FALSE(p.remove);
  ASSERT_TRUE(p.preshared_key);
  EXPECT_TRUE(p.preshared_key->equals(seq_key(7).data()));
  ASSERT_TRUE(p.endpoint);
  EXPECT_EQ(p.endpoint->str(), "192.0.2.1:51820");
  EXPECT_EQ(p.persistent_keepalive, 25);
  EXPECT_TRUE(p.replace_allowed_ips);
  ASSERT_EQ(p.allowed_ips.size(), 2u);
  EXPECT_EQ(p.allowed_ips[0].str(), "10.0.0.0/8");
  EXPECT_EQ(p.allowed_ips[1].str(), "fd00::1/64");  // host bits kept; the table masks them
}

TEST(UapiSet, EndpointForms) {
  auto ep = [](const std::string& v) {
    ConfigChange c = parse_ok(std::string("public_key=") + kSeqHex + "\nendpoint=" + v + "\n");
    return c.peers.at(0).endpoint.value();
  };
  EXPECT_EQ(ep("[::1]:5").str(), "[::1]:5");
  EXPECT_EQ(ep("[fd00::2]:65535").port, 65535);
  EXPECT_EQ(ep("1.2.3.4:0").str(), "1.2.3.4:0");
  Endpoint mapped = ep("[::ffff:198.51.100.7]:9");
  EXPECT_EQ(mapped.addr.family, AF_INET);  // IPv4-mapped folds to IPv4
  EXPECT_EQ(mapped.str(), "198.51.100.7:9");
}

TEST(UapiSet, PeersKeepOrderAndRepeats) {
  std::string a = key_to_hex(seq_key(1)), b = key_to_hex(seq_key(2));
  ConfigChange c = parse_ok("listen_port=1\npublic_key=" + a + "\nallowed_ip=10.0.0.1/32\npublic_key=" + b +
                            "\npublic_key=" + a + "\nallowed_ip=10.0.0.2/32\n");
  ASSERT_EQ(c.peers.size(), 3u);
  EXPECT_EQ(c.peers[0].public_key, seq_key(1));
  EXPECT_EQ(c.peers[1].public_key, seq_key(2));
  EXPECT_EQ(c.peers[2].public_key, seq_key(1));  // applied in order, like wireguard-go
  EXPECT_EQ(c.peers[2].allowed_ips.at(0).str(), "10.0.0.2/32");
  EXPECT_FALSE(c.peers[2].replace_allowed_ips);
}

TEST(UapiSet, RemoveDropsTheRestOfTheBlock) {
  ConfigChange c =
      parse_ok(std::string("public_key=") + kSeqHex +
               "\nendpoint=1.2.3.4:5\nremove=true\nallowed_ip=10.0.0.0/8\npersistent_keepalive_interval=5\n");
  ASSERT_EQ(c.peers.size(), 1u);
  EXPECT_TRUE(c.peers[0].remove);
  EXPECT_EQ(c.peers[0].public_key, seq_key(0));
  EXPECT_FALSE(c.peers[0].endpoint);
  EXPECT_FALSE(c.peers[0].persistent_keepalive);
  EXPECT_TRUE(c.peers[0].allowed_ips.empty());
}

TEST(UapiSet, ReplaceAllowedIpsWipesEarlierLines) {
  ConfigChange c = parse_ok(std::string("public_key=") + kSeqHex +
                            "\nallowed_ip=10.0.0.0/8\nreplace_allowed_ips=true\nallowed_ip=10.1.0.0/16\n");
  ASSERT_EQ(c.peers.at(0).allowed_ips.size(), 1u);
  EXPECT_EQ(c.peers[0].allowed_ips[0].str(), "10.1.0.0/16");
  EXPECT_TRUE(c.peers[0].replace_allowed_ips);
}

TEST(UapiSet, BlankLineTerminatesAndFinalNewlineIsOptional) {
  EXPECT_EQ(parse_ok("listen_port=1\n\nlisten_port=2\n").listen_port, 1);
  EXPECT_EQ(parse_ok("listen_port=3").listen_port, 3);
}

struct BadCase {
  std::string body;
  int errno_value;
};

class UapiSetError : public ::testing::TestWithParam<BadCase> {};

TEST_P(UapiSetError, IsRejectedWithErrno) {
  auto r = parse_uapi_set(GetParam().body);
  ASSERT_TRUE(std::holds_alternative<UapiError>(r)) << GetParam().body;
  EXPECT_EQ(std::get<UapiError>(r).errno_value, GetParam().errno_value) << GetParam().body;
  EXPECT_FALSE(std::get<UapiError>(r).message.empty());
}

const std::string kPeer = std::string("public_key=") + kSeqHex + "\n";

INSTANTIATE_TEST_SUITE_P(
    AllKeys, UapiSetError,
    ::testing::Values(
        BadCase{"listen_port\n", EPROTO}, BadCase{"garbage\n", EPROTO}, BadCase{kPeer + "remove\n", EPROTO},
        BadCase{"private_key=zz\n", EINVAL}, BadCase{"private_key=" + std::string(62, '0') + "\n", EINVAL},
        BadCase{"listen_port=65536\n", EINVAL}, BadCase{"listen_port=-1\n", EINVAL},
        BadCase{"listen_port=\n", EINVAL}, BadCase{"listen_port= 1\n", EINVAL},
        BadCase{"listen_port=+1\n", EINVAL}, BadCase{"listen_port=0x10\n", EINVAL},
        BadCase{"fwmark=4294967296\n", EINVAL}, BadCase{"fwmark=off\n", EINVAL},
        BadCase{"replace_peers=false\n", EINVAL}, BadCase{"replace_peers=1\n", EINVAL},
        BadCase{"unknown_key=1\n", EINVAL}, BadCase{"Listen_Port=1\n", EINVAL},
        BadCase{"public_key=xyz\n", EINVAL}, BadCase{"public_key=\n", EINVAL},
        BadCase{kPeer + "private_key=" + std::string(64, '1') + "\n", EINVAL},  // device key in a peer
        BadCase{kPeer + "listen_port=1\n", EINVAL}, BadCase{kPeer + "bogus=1\n", EINVAL},
        BadCase{kPeer + "update_only=1\n", EINVAL}, BadCase{kPeer + "remove=yes\n", EINVAL},
        BadCase{kPeer + "preshared_key=abc\n", EINVAL}, BadCase{kPeer + "endpoint=1.2.3.4\n", EINVAL},
        BadCase{kPeer + "endpoint=::1:5\n", EINVAL}, BadCase{kPeer + "endpoint=[1.2.3.4]:5\n", EINVAL},
        BadCase{kPeer + "endpoint=host.example:5\n", EINVAL},
        BadCase{kPeer + "endpoint=1.2.3.4:70000\n", EINVAL}, BadCase{kPeer + "endpoint=[::1]5\n", EINVAL},
        BadCase{kPeer + "endpoint=[fe80::1%eth0]:5\n", EINVAL},
        BadCase{kPeer + "persistent_keepalive_interval=65536\n", EINVAL},
        BadCase{kPeer + "persistent_keepalive_interval=off\n", EINVAL},
        BadCase{kPeer + "replace_allowed_ips=1\n", EINVAL}, BadCase{kPeer + "allowed_ip=10.0.0.1\n", EINVAL},
        BadCase{kPeer + "allowed_ip=10.0.0.0/33\n", EINVAL},
        BadCase{kPeer + "allowed_ip=10.0.0.0/08\n", EINVAL},
        BadCase{kPeer + "allowed_ip=fd00::/129\n", EINVAL}, BadCase{kPeer + "allowed_ip=10.0.0.0/\n", EINVAL},
        BadCase{kPeer + "allowed_ip=10.0.0.256/32\n", EINVAL},
        BadCase{kPeer + "protocol_version=2\n", EINVAL}));

PeerSnapshot sample_peer() {
  PeerSnapshot p;
  p.public_key = seq_key(0x20);
  p.preshared_key.assign(seq_key(0x40).data());
  p.endpoint = Endpoint::parse("[2001:db8::1]:51820");
  p.last_handshake_sec = 1700000000;
  p.last_handshake_nsec = 123456789;
  p.rx_bytes = 1000;
  p.tx_bytes = 2000;
  p.persistent_keepalive = 25;
  p.allowed_ips = {*Prefix::parse("10.0.0.1/24"), *Prefix::parse("fd00::/64")};
  return p;
}

TEST(UapiGet, ExactOutputInWireguardGoOrder) {
  DeviceSnapshot s;
  s.private_key.emplace(seq_key(0).data());
  s.listen_port = 51820;
  s.fwmark = 51;
  s.peers.push_back(sample_peer());
  PeerSnapshot bare;
  bare.public_key = seq_key(0x60);
  s.peers.push_back(bare);
  std::string expected =
      std::string("private_key=") + kSeqHex + "\nlisten_port=51820\nfwmark=51\n" +
      "public_key=" + key_to_hex(seq_key(0x20)) + "\npreshared_key=" + key_to_hex(seq_key(0x40)) +
      "\nprotocol_version=1\nendpoint=[2001:db8::1]:51820\nlast_handshake_time_sec=1700000000\n"
      "last_handshake_time_nsec=123456789\ntx_bytes=2000\nrx_bytes=1000\n"
      "persistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n" +
      "public_key=" + key_to_hex(seq_key(0x60)) + "\npreshared_key=" + std::string(64, '0') +
      "\nprotocol_version=1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"
      "tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nerrno=0\n\n";
  EXPECT_EQ(format_uapi_get(s), expected);
}

TEST(UapiGet, OmitsUnsetDeviceFields) {
  DeviceSnapshot s;
  EXPECT_EQ(format_uapi_get(s), "errno=0\n\n");
  s.private_key.emplace();  // all-zero = no key
  EXPECT_EQ(format_uapi_get(s), "errno=0\n\n");
}

TEST(UapiErrno, NegatedOnTheWire) {
  EXPECT_EQ(format_uapi_errno(0), "errno=0\n\n");
  EXPECT_EQ(format_uapi_errno(EINVAL), "errno=-22\n\n");
  EXPECT_EQ(format_uapi_errno(-EINVAL), "errno=-22\n\n");
  EXPECT_EQ(format_uapi_errno(EADDRINUSE), "errno=-98\n\n");
}

// set -> (device applies) -> get: what `wg set` sends comes back from `wg show`.
TEST(UapiRoundTrip, SetThenGet) {
  PeerSnapshot want = sample_peer();
  std::string body = "private_key=" + key_to_hex(seq_key(0)) + "\nlisten_port=51820\nreplace_peers=true\n" +
                     "public_key=" + key_to_hex(want.public_key) +
                     "\npreshared_key=" + key_to_hex(want.preshared_key) +
                     "\nendpoint=" + want.endpoint->str() + "\npersistent_keepalive_interval=25\n" +
                     "replace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n";
  ConfigChange c = parse_ok(body);
  DeviceSnapshot s;
  s.private_key = c.private_key;
  s.listen_port = *c.listen_port;
  for (const auto& pc : c.peers) {
    PeerSnapshot p;
    p.public_key = pc.public_key;
    p.preshared_key = *pc.preshared_key;
    p.endpoint = pc.endpoint;
    p.persistent_keepalive = *pc.persistent_keepalive;
    p.allowed_ips = pc.allowed_ips;
    s.peers.push_back(p);
  }
  std::string got = format_uapi_get(s);
  for (const std::string& line :
       {"private_key=" + key_to_hex(seq_key(0)), std::string("listen_port=51820"),
        "public_key=" + key_to_hex(want.public_key), "endpoint=" + want.endpoint->str(),
        std::string("persistent_keepalive_interval=25"), std::string("allowed_ip=10.0.0.0/24"),
        std::string("allowed_ip=fd00::/64")}) {
    EXPECT_NE(got.find(line + "\n"), std::string::npos) << line;
  }
}

// ---- UapiServer ----

class FakeHandler : public UapiHandler {
 public:
  DeviceSnapshot get() override {
    std::lock_guard lock(mu);
    ++gets;
    return snap;
  }
  UapiError set(const ConfigChange& c) override {
    std::lock_guard lock(mu);
    sets.push_back(c);
    return UapiError{set_errno, ""};
  }
  size_t set_count() {
    std::lock_guard lock(mu);
    return sets.size();
  }

  std::mutex mu;
  DeviceSnapshot snap;
  std::vector<ConfigChange> sets;
  int set_errno = 0;
  int gets = 0;
};

class TestClient {
 public:
  explicit TestClient(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~TestClient() { close(fd_); }
  bool connected() const { return connected_; }
  void send_all(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  // One reply: everything up to and including the first blank line ("...errno=N\n\n").
  std::string reply() {
    for (;;) {
      size_t end = buf_.find("\n\n");
      if (end != std::string::npos) {
        std::string r = buf_.substr(0, end + 2);
        buf_.erase(0, end + 2);
        return r;
      }
      if (read_more() != 1) return std::exchange(buf_, {});
    }
  }
  bool at_eof() { return buf_.empty() && read_more() == 0; }

 private:
  // 1 = data, 0 = EOF, -1 = error or the 10 s guard expired (a hang, not a timing assertion).
  int read_more() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return -1;
    char b[65536];
    ssize_t n = recv(fd_, b, sizeof b, 0);
    if (n > 0) buf_.append(b, static_cast<size_t>(n));
    return n > 0 ? 1 : n == 0 ? 0 : -1;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class UapiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/run/wireguard/wg0.sock";
    handler_.snap.listen_port = 51820;
    handler_.snap.peers.push_back(sample_peer());
  }
  void TearDown() override { server_.stop(); }
  void start() {
    std::string err;
    ASSERT_TRUE(server_.start(path_, &err)) << err;
  }
  std::string expected_get() { return format_uapi_get(handler_.snap); }

  test_util::TempDir tmp_{"xsktun-uapi"};  // removed last: after the server stopped
  FakeHandler handler_;
  UapiServer server_{handler_};
  std::string dir_, path_;
};

TEST_F(UapiServerTest, CreatesDirectoryAndPrivateSocket) {
  mode_t mask = umask(022);
  umask(mask);
  start();
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/run/wireguard").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0755 & ~mask);
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);  // bound under umask 077, as wireguard-go does
  EXPECT_EQ(UapiServer::default_path("wg0"), "/var/run/wireguard/wg0.sock");
}

TEST_F(UapiServerTest, GetAndSet) {
  start();
  TestClient c(path_);
  ASSERT_TRUE(c.connected());
  c.send_all("get=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
  c.send_all("set=1\nlisten_port=1234\nreplace_peers=true\n\n");
  EXPECT_EQ(c.reply(), "errno=0\n\n");
  ASSERT_EQ(handler_.set_count(), 1u);
  EXPECT_EQ(handler_.sets[0].listen_port, 1234);
  EXPECT_TRUE(handler_.sets[0].replace_peers);
}

TEST_F(UapiServerTest, HandlerErrnoIsReturnedNegated) {
  start();
  handler_.set_errno = EADDRINUSE;
  TestClient c(path_);
  c.send_all("set=1\nlisten_port=1\n\n");
  EXPECT_EQ(c.reply(), "errno=-98\n\n");
}

TEST_F(UapiServerTest, ParseErrorSkipsHandlerAndKeepsConnection) {
  start();
  TestClient c(path_);
  c.send_all("set=1\nlisten_port=1\nbogus\nfwmark=2\n\n");
  EXPECT_EQ(c.reply(), "errno=-71\n\n");  // EPROTO: line without '='
  c.send_all("set=1\nlisten_port=99999\n\n");
  EXPECT_EQ(c.reply(), "errno=-22\n\n");  // EINVAL
  EXPECT_EQ(handler_.set_count(), 0u);
  c.send_all("get=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
}

TEST_F(UapiServerTest, PipelinedCommandsOnOneConnection) {
  start();
  TestClient c(path_);
  c.send_all("get=1\n\nset=1\nfwmark=3\n\nget=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
  EXPECT_EQ(c.reply(), "errno=0\n\n");
  EXPECT_EQ(c.reply(), expected_get());
  ASSERT_EQ(handler_.set_count(), 1u);
  EXPECT_EQ(handler_.sets[0].fwmark, 3u);
}

TEST_F(UapiServerTest, LargeReplyIsSentWhole) {
  PeerSnapshot& p = handler_.snap.peers[0];
  for (int i = 0; i < 20000; ++i) {
    p.allowed_ips.push_back(
        *Prefix::parse("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24"));
  }
  start();
  TestClient c(path_);
  c.send_all("get=1\n\n");
  std::string r = c.reply();
  EXPECT_GT(r.size(), 400000u);
  EXPECT_EQ(r, expected_get());
}

TEST_F(UapiServerTest, InterleavedClientsDoNotBlockEachOther) {
  start();
  TestClient a(path_), b(path_);
  a.send_all("set=1\nlisten_port=7\n");
  b.send_all("get=1\n\n");
  EXPECT_EQ(b.reply(), expected_get());
  a.send_all("\n");
  EXPECT_EQ(a.reply(), "errno=0\n\n");
  ASSERT_EQ(handler_.set_count(), 1u);
  EXPECT_EQ(handler_.sets[0].listen_port, 7);
}

TEST_F(UapiServerTest, DisconnectMidCommandAppliesNothing) {
  start();
  {
    TestClient c(path_);
    c.send_all("get=1\n\n");
    ASSERT_EQ(c.reply(), expected_get());  // the server now holds this connection
    c.send_all("set=1\nlisten_port=9\n");
  }
  {
    TestClient c(path_);
    c.send_all("get=1\n\n");
    ASSERT_EQ(c.reply(), expected_get());
    c.send_all("get=1\n");
  }
  ASSERT_TRUE(eventually([&] { return server_.client_count() == 0; }));
  EXPECT_EQ(handler_.set_count(), 0u);
  EXPECT_EQ(handler_.gets, 2);
  TestClient c(path_);
  c.send_all("get=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
}

TEST_F(UapiServerTest, UnknownCommandHangsUp) {
  start();
  TestClient c(path_);
  c.send_all("bogus=1\n\n");
  EXPECT_TRUE(c.at_eof());
}

TEST_F(UapiServerTest, GetWithTrailingDataIsEinval) {
  start();
  TestClient c(path_);
  c.send_all("get=1\nx\n");
  EXPECT_EQ(c.reply(), "errno=-22\n\n");
  EXPECT_TRUE(c.at_eof());
}

TEST_F(UapiServerTest, OverlongLineIsRefused) {
  start();
  TestClient c(path_);
  c.send_all("set=1\n" + std::string(UapiServer::kMaxLine + 1, 'a'));
  EXPECT_EQ(c.reply(), format_uapi_errno(EMSGSIZE));
  EXPECT_TRUE(c.at_eof());
  EXPECT_EQ(handler_.set_count(), 0u);
}

TEST_F(UapiServerTest, SocketFileGoneAfterUnlink) {
  start();
  EXPECT_FALSE(server_.socket_file_gone());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  EXPECT_TRUE(server_.socket_file_gone());
}

TEST_F(UapiServerTest, ReplacedSocketFileIsGoneAndNotDeletedByStop) {
  start();
  ASSERT_EQ(unlink(path_.c_str()), 0);
  std::ofstream(path_) << "someone else's";
  EXPECT_TRUE(server_.socket_file_gone());
  server_.stop();
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST_F(UapiServerTest, StopRemovesSocketAndDisconnectsClients) {
  start();
  TestClient c(path_);
  c.send_all("get=1\n\n");
  ASSERT_EQ(c.reply(), expected_get());
  server_.stop();
  EXPECT_FALSE(server_.running());
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(c.at_eof());
  server_.stop();  // idempotent
  start();         // and restartable
  TestClient d(path_);
  d.send_all("get=1\n\n");
  EXPECT_EQ(d.reply(), expected_get());
}

TEST_F(UapiServerTest, StaleSocketIsReplaced) {
  std::filesystem::create_directories(dir_ + "/run/wireguard");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path_.data(), path_.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  close(fd);  // the file stays behind, like after a crash
  start();
  TestClient c(path_);
  c.send_all("get=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
}

TEST_F(UapiServerTest, LiveSocketIsNotStolen) {
  start();
  UapiServer other(handler_);
  std::string err;
  EXPECT_FALSE(other.start(path_, &err));
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
  EXPECT_FALSE(server_.socket_file_gone());
  TestClient c(path_);
  c.send_all("get=1\n\n");
  EXPECT_EQ(c.reply(), expected_get());
}

TEST_F(UapiServerTest, BadPathsAreErrors) {
  std::string err;
  std::filesystem::create_directories(dir_ + "/run/wireguard");
  std::ofstream(path_) << "not a socket";
  EXPECT_FALSE(server_.start(path_, &err));
  EXPECT_NE(err.find("not a socket"), std::string::npos) << err;
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_FALSE(server_.start(dir_ + "/" + std::string(120, 'x') + ".sock", &err));
  EXPECT_NE(err.find("longer"), std::string::npos) << err;
  EXPECT_FALSE(server_.running());
}

}  // namespace
}  // namespace xsktun::control
