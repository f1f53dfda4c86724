// Bad configuration through both ways in: a UAPI "set=1" body (parse_uapi_set + Device::apply,
// exactly what the UAPI server runs) and a wg config file (parse_config_file + Device::apply, as
// `xsktun up -c` does). Every refused transaction must give a clear error and leave the device
// configuration exactly as it was, compared as a full get=1 dump, even when the error comes
// after a long valid first half. The socket side (disconnects, overlong input, SIGPIPE) is in
// uapi_server_hardening_test.cpp; plain per-key parse errors are in uapi_test / config_file_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <ostream>
#include <string>
#include <vector>

#include "device_harness.h"
#include "test_util.h"
#include "xsktun/control/config_file.h"
#include "xsktun/control/keys.h"
#include "xsktun/control/uapi.h"

namespace xsktun::control {
namespace {

using test_util::seq_key;

using xsktun::testing::FakeClock;
using xsktun::testing::Node;

std::string hex(uint8_t s) { return key_to_hex(seq_key(s)); }
std::string b64(uint8_t s) { return key_to_base64(seq_key(s)); }

// What the UAPI server does with a set=1 body: UapiServer::finish_set + the daemon's handler.
UapiError uapi_set(device::Device& dev, std::string_view body) {
  auto parsed = parse_uapi_set(body);
  if (auto* e = std::get_if<UapiError>(&parsed)) return *e;
  std::string err;
  int rc = dev.apply(std::get<ConfigChange>(parsed), &err);
  return UapiError{rc, err};
}

// The state every test starts from: every configurable field set, on two peers.
std::string baseline_body() {
  return "private_key=" + hex(0x10) + "\nlisten_port=51820\nfwmark=5\npublic_key=" + hex(0x20) +
         "\npreshared_key=" + hex(0x30) +
         "\nendpoint=192.0.2.2:51821\nallowed_ip=10.0.0.2/32\nallowed_ip=fd00::2/128\npublic_key=" +
         hex(0x40) + "\npersistent_keepalive_interval=25\nallowed_ip=10.1.0.0/16\n";
}

// A valid first half that changes every field, including replacing all peers.
std::string valid_device_lines() {
  return "private_key=" + hex(0x11) + "\nlisten_port=40000\nfwmark=9\nreplace_peers=true\n";
}
std::string valid_peer_lines() {
  return "public_key=" + hex(0x20) +
         "\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/16\npersistent_keepalive_interval=7\npublic_key=" +
         hex(0x50) + "\npreshared_key=" + hex(0x51) + "\nendpoint=[2001:db8::5]:5\nallowed_ip=10.5.0.0/16\n";
}

class DeviceFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    UapiError e = uapi_set(dev(), baseline_body());
    ASSERT_EQ(e.errno_value, 0) << e.message;
    before_ = dump();
  }
  device::Device& dev() { return *node_.dev; }
  std::string dump() { return format_uapi_get(dev().snapshot()); }
  const PeerSnapshot* peer(const Key& k) {
    snap_ = dev().snapshot();
    for (const auto& p : snap_.peers)
      if (p.public_key == k) return &p;
    return nullptr;
  }

  FakeClock clock_;
  io::FakeNetwork net_;
  Node node_{net_, "192.0.2.1", 51820, clock_};
  std::string before_;
  DeviceSnapshot snap_;
};

std::vector<std::string> sorted_prefixes(const PeerSnapshot& p) {
  std::vector<std::string> out;
  for (const auto& a : p.allowed_ips) out.push_back(a.masked().str());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- UAPI set=1 ----

using UapiTransaction = DeviceFixture;

TEST_F(UapiTransaction, BaselineHoldsEveryFieldAndTheValidHalfApplies) {
  for (const std::string& l :
       {"private_key=" + hex(0x10), std::string("listen_port=51820"), std::string("fwmark=5"),
        "preshared_key=" + hex(0x30), std::string("endpoint=192.0.2.2:51821"),
        std::string("persistent_keepalive_interval=25"), std::string("allowed_ip=10.1.0.0/16")}) {
    EXPECT_NE(before_.find(l + "\n"), std::string::npos) << l;
  }
  // The first half used by every late-error case is valid on its own: only the bad line fails.
  UapiError e = uapi_set(dev(), valid_device_lines() + valid_peer_lines());
  ASSERT_EQ(e.errno_value, 0) << e.message;
  std::string after = dump();
  EXPECT_NE(after.find("listen_port=40000\n"), std::string::npos);
  EXPECT_NE(after.find("allowed_ip=10.5.0.0/16\n"), std::string::npos);
  EXPECT_EQ(after.find("public_key=" + hex(0x40)), std::string::npos);
}

struct BadLine {
  std::string line;
  bool device;  // a device-level key: it goes before the first public_key
  int errno_value;
  std::string needle;  // expected in the error message
};

// Test names show the bad line itself (shortened), not the struct's bytes.
std::string short_line(const std::string& l) { return l.size() > 60 ? l.substr(0, 60) + "..." : l; }
void PrintTo(const BadLine& b, std::ostream* os) { *os << short_line(b.line); }

class UapiLateError : public DeviceFixture, public ::testing::WithParamInterface<BadLine> {};

TEST_P(UapiLateError, ClearErrorAndNothingApplied) {
  const BadLine& b = GetParam();
  std::string body = b.device ? valid_device_lines() + b.line + "\n" + valid_peer_lines()
                              : valid_device_lines() + valid_peer_lines() + b.line + "\n";
  UapiError e = uapi_set(dev(), body);
  EXPECT_EQ(e.errno_value, b.errno_value) << e.message;
  EXPECT_NE(e.message.find(b.needle), std::string::npos) << e.message;
  EXPECT_LT(e.message.size(), 200u) << "the error should quote the input, not echo all of it";
  EXPECT_EQ(dump(), before_);
}

const std::string kMegabyte(1 << 20, '7');

INSTANTIATE_TEST_SUITE_P(
    AllKinds, UapiLateError,
    ::testing::Values(
        // keys: odd length, non-hex, too long, base64 where hex is expected
        BadLine{"private_key=" + hex(1).substr(0, 63), true, EINVAL, "private_key"},
        BadLine{"private_key=" + hex(1).substr(0, 62) + "zz", true, EINVAL, "private_key"},
        BadLine{"private_key=" + hex(1) + "0", true, EINVAL, "private_key"},
        BadLine{"private_key=" + b64(1), true, EINVAL, "private_key"},
        BadLine{"public_key=" + hex(0x60).substr(0, 63), false, EINVAL, "public key"},
        BadLine{"public_key=" + std::string(64, 'g'), false, EINVAL, "public key"},
        BadLine{"public_key=" + b64(0x60), false, EINVAL, "public key"},
        BadLine{"public_key=" + hex(0x60) + " ", false, EINVAL, "public key"},
        BadLine{"preshared_key=" + hex(1).substr(0, 63), false, EINVAL, "preshared key"},
        BadLine{"preshared_key=" + std::string(63, '0') + "x", false, EINVAL, "preshared key"},
        // CIDRs: the second peer's bad allowed_ip comes after valid ones on two peers
        BadLine{"allowed_ip=10.0.0.0/33", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=fd00::/129", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=1.2.3/24", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=1.2.3", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=10.0.0.1", false, EINVAL, "allowed ip"},  // the mask is required
        BadLine{"allowed_ip=garbage", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=10.0.0.0/-1", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=10.0.0.0/8/8", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=10.0.0.0/ 8", false, EINVAL, "allowed ip"},
        BadLine{"allowed_ip=", false, EINVAL, "allowed ip"},
        // ports
        BadLine{"listen_port=65536", true, EINVAL, "listen_port"},
        BadLine{"listen_port=-1", true, EINVAL, "listen_port"},
        BadLine{"listen_port=99999999999", true, EINVAL, "listen_port"},
        BadLine{"listen_port=99999999999999999999999", true, EINVAL, "listen_port"},
        BadLine{"listen_port=", true, EINVAL, "listen_port"},
        BadLine{"listen_port=port", true, EINVAL, "listen_port"},
        BadLine{"listen_port=51820 ", true, EINVAL, "listen_port"},
        BadLine{"fwmark=0x10", true, EINVAL, "fwmark"},
        // endpoints
        BadLine{"endpoint=192.0.2.9:65536", false, EINVAL, "endpoint"},
        BadLine{"endpoint=192.0.2.9:-1", false, EINVAL, "endpoint"},
        BadLine{"endpoint=192.0.2.9:99999999999", false, EINVAL, "endpoint"},
        BadLine{"endpoint=192.0.2.9:", false, EINVAL, "endpoint"},
        BadLine{"endpoint=192.0.2.9", false, EINVAL, "endpoint"},
        BadLine{"endpoint=1.2.3:5", false, EINVAL, "endpoint"},
        BadLine{"endpoint=fd00::1:5", false, EINVAL, "endpoint"},
        BadLine{"endpoint=[fd00::1]", false, EINVAL, "endpoint"},
        BadLine{"endpoint=vpn.example:51820", false, EINVAL, "endpoint"},  // UAPI is numeric only
        BadLine{"endpoint=", false, EINVAL, "endpoint"},
        // persistent keepalive
        BadLine{"persistent_keepalive_interval=65536", false, EINVAL, "keepalive"},
        BadLine{"persistent_keepalive_interval=-1", false, EINVAL, "keepalive"},
        BadLine{"persistent_keepalive_interval=99999999999", false, EINVAL, "keepalive"},
        BadLine{"persistent_keepalive_interval=", false, EINVAL, "keepalive"},
        BadLine{"persistent_keepalive_interval=off", false, EINVAL, "keepalive"},
        BadLine{"persistent_keepalive_interval=2.5", false, EINVAL, "keepalive"},
        // unknown or misplaced keys, lines without '='
        BadLine{"listenport=1", true, EINVAL, "invalid UAPI device key"},
        BadLine{"=1", true, EINVAL, "invalid UAPI device key"},
        BadLine{"AllowedIPs=10.0.0.0/8", false, EINVAL, "invalid UAPI peer key"},
        BadLine{"listen_port=1", false, EINVAL, "invalid UAPI peer key"},
        BadLine{"listen_port", true, EPROTO, "failed to parse line"},
        BadLine{"allowed_ip", false, EPROTO, "failed to parse line"},
        // 1 MB lines: refused like any bad value, the message stays short
        BadLine{"allowed_ip=" + kMegabyte, false, EINVAL, "allowed ip"},
        BadLine{"public_key=" + kMegabyte, false, EINVAL, "public key"},
        BadLine{kMegabyte + "=1", true, EINVAL, "(1048576 bytes)"},
        BadLine{kMegabyte, false, EPROTO, "(1048576 bytes)"}));

// The kernel and wireguard-go treat a repeated public_key= as selecting the same peer again;
// the parser keeps both blocks in order and the device applies them in one transaction.
TEST_F(UapiTransaction, RepeatedPublicKeySelectsTheSamePeerAgain) {
  UapiError e =
      uapi_set(dev(), "public_key=" + hex(0x20) + "\nallowed_ip=10.7.0.0/16\npublic_key=" + hex(0x40) +
                          "\nallowed_ip=10.4.0.0/16\npublic_key=" + hex(0x20) +
                          "\nendpoint=192.0.2.7:7\nallowed_ip=10.8.0.0/16\n");
  ASSERT_EQ(e.errno_value, 0) << e.message;
  ASSERT_EQ(dev().snapshot().peers.size(), 2u);  // no second peer with the same key
  const PeerSnapshot* p = peer(seq_key(0x20));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(sorted_prefixes(*p),
            (std::vector<std::string>{"10.0.0.2/32", "10.7.0.0/16", "10.8.0.0/16", "fd00::2/128"}));
  ASSERT_TRUE(p->endpoint);
  EXPECT_EQ(p->endpoint->str(), "192.0.2.7:7");
  EXPECT_TRUE(p->preshared_key.equals(seq_key(0x30).data()));  // untouched fields stay
}

TEST_F(UapiTransaction, RepeatedPublicKeyAfterRemoveRecreatesThePeer) {
  UapiError e = uapi_set(dev(), "public_key=" + hex(0x20) + "\nremove=true\npublic_key=" + hex(0x20) +
                                    "\nallowed_ip=10.3.0.0/16\n");
  ASSERT_EQ(e.errno_value, 0) << e.message;
  const PeerSnapshot* p = peer(seq_key(0x20));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(sorted_prefixes(*p), std::vector<std::string>{"10.3.0.0/16"});
  EXPECT_TRUE(p->preshared_key.is_zero());
  EXPECT_FALSE(p->endpoint);
}

TEST_F(UapiTransaction, RepeatedPublicKeyWithALateErrorAppliesNothing) {
  UapiError e =
      uapi_set(dev(), "public_key=" + hex(0x20) + "\nremove=true\npublic_key=" + hex(0x20) +
                          "\nallowed_ip=10.3.0.0/16\npublic_key=" + hex(0x20) + "\nallowed_ip=10.0.0.0/33\n");
  EXPECT_EQ(e.errno_value, EINVAL);
  EXPECT_EQ(dump(), before_);
}

// An error only the device can see (the port is taken) must also come before any change.
TEST_F(UapiTransaction, ListenPortInUseRefusesTheWholeSet) {
  auto squatter = net_.attach(*IpAddr::parse("192.0.2.1"), 40000);
  ASSERT_NE(squatter, nullptr);
  UapiError e = uapi_set(dev(), valid_device_lines() + valid_peer_lines());
  EXPECT_EQ(e.errno_value, EADDRINUSE);
  EXPECT_FALSE(e.message.empty());
  EXPECT_EQ(dump(), before_);
}

// ---- config file ----

// parse_config_file + Device::apply, as `xsktun up -c FILE` does. Returns "" or the error.
std::string load_file(device::Device& dev, std::string_view text, const EndpointResolver& resolver = {}) {
  auto parsed = parse_config_file(text, resolver);
  if (auto* e = std::get_if<std::string>(&parsed)) return *e;
  std::string err;
  int rc = dev.apply(std::get<ConfigChange>(parsed), &err);
  return rc == 0 ? "" : "apply: errno " + std::to_string(rc) + ": " + err;
}

// Lines 1-4, then 5-15. A bad [Interface] line goes in as line 5, a bad [Peer] line as line 16.
std::string file_interface() {
  return "[Interface]\nPrivateKey = " + b64(0x11) + "\nListenPort = 40000\nFwMark = 0x9\n";
}
std::string file_peers() {
  return "\n[Peer]\nPublicKey = " + b64(0x20) + "\nPresharedKey = " + b64(0x21) +
         "\nAllowedIPs = 10.9.0.0/16, fd00::9/128\nEndpoint = 192.0.2.9:9\n\n[Peer]\nPublicKey = " +
         b64(0x50) + "\nAllowedIPs = 10.5.0.0/16\nPersistentKeepalive = 7\n";
}

using ConfigFileTransaction = DeviceFixture;

TEST_F(ConfigFileTransaction, GoodFileReplacesEverything) {
  ASSERT_EQ(load_file(dev(), file_interface() + file_peers()), "");
  std::string after = dump();
  for (const std::string& l :
       {"private_key=" + hex(0x11), std::string("listen_port=40000"), std::string("fwmark=9"),
        "preshared_key=" + hex(0x21), std::string("endpoint=192.0.2.9:9"),
        std::string("allowed_ip=10.5.0.0/16"), std::string("persistent_keepalive_interval=7")}) {
    EXPECT_NE(after.find(l + "\n"), std::string::npos) << l;
  }
  EXPECT_EQ(after.find("public_key=" + hex(0x40)), std::string::npos);  // setconf replaces peers
}

struct BadFileLine {
  std::string line;
  bool interface;  // goes into [Interface] (line 5) rather than the last [Peer] (line 16)
  std::string needle;
};

void PrintTo(const BadFileLine& b, std::ostream* os) { *os << short_line(b.line); }

class ConfigFileLateError : public DeviceFixture, public ::testing::WithParamInterface<BadFileLine> {};

TEST_P(ConfigFileLateError, NamesTheLineAndNothingApplied) {
  const BadFileLine& b = GetParam();
  std::string text = b.interface ? file_interface() + b.line + "\n" + file_peers()
                                 : file_interface() + file_peers() + b.line + "\n";
  int resolver_calls = 0;
  // A resolver that would succeed: refusals must not depend on a failing DNS lookup.
  EndpointResolver resolver = [&](const std::string&, uint16_t port) -> std::variant<Endpoint, std::string> {
    ++resolver_calls;
    Endpoint e = *Endpoint::parse("203.0.113.9:1");
    e.port = port;
    return e;
  };
  std::string err = load_file(dev(), text, resolver);
  std::string where = "line " + std::string(b.interface ? "5" : "16") + ": ";
  EXPECT_EQ(err.rfind(where, 0), 0u) << err;
  EXPECT_NE(err.find(b.needle), std::string::npos) << err;
  EXPECT_LT(err.size(), 200u);
  EXPECT_EQ(resolver_calls, 0);
  EXPECT_EQ(dump(), before_);
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, ConfigFileLateError,
    ::testing::Values(
        // keys: hex where base64 is expected, wrong length, bad character, missing padding
        BadFileLine{"PrivateKey = " + hex(1), true, "PrivateKey"},
        BadFileLine{"PrivateKey = " + b64(1).substr(0, 43), true, "PrivateKey"},
        BadFileLine{"PrivateKey = " + b64(1).substr(0, 42) + "!=", true, "PrivateKey"},
        BadFileLine{"PublicKey = " + hex(0x60), false, "PublicKey"},
        BadFileLine{"PublicKey = " + b64(0x60) + "A", false, "PublicKey"},
        BadFileLine{"PresharedKey = " + std::string(44, 'A'), false, "PresharedKey"},
        // CIDRs
        BadFileLine{"AllowedIPs = 10.0.0.0/33", false, "10.0.0.0/33"},
        BadFileLine{"AllowedIPs = fd00::/129", false, "fd00::/129"},
        BadFileLine{"AllowedIPs = 1.2.3", false, "1.2.3"},
        BadFileLine{"AllowedIPs = 1.2.3/24", false, "1.2.3/24"},
        BadFileLine{"AllowedIPs = garbage", false, "garbage"},
        BadFileLine{"AllowedIPs = 10.0.0.0/", false, "AllowedIPs"},
        BadFileLine{"AllowedIPs = 10.0.0.0/-1", false, "AllowedIPs"},
        BadFileLine{"AllowedIPs = 10.0.0.0/8, 10.1.0.0/16, nonsense", false, "nonsense"},
        BadFileLine{"AllowedIPs = 10.0.0.0/8,,10.1.0.0/16", false, "AllowedIPs"},
        // ports
        BadFileLine{"ListenPort = 65536", true, "ListenPort"},
        BadFileLine{"ListenPort = -1", true, "ListenPort"},
        BadFileLine{"ListenPort = 99999999999", true, "ListenPort"},
        BadFileLine{"ListenPort =", true, "ListenPort"}, BadFileLine{"ListenPort = port", true, "ListenPort"},
        BadFileLine{"ListenPort = 0x10", true, "ListenPort"},
        // endpoints (none of these may reach the resolver)
        BadFileLine{"Endpoint = 192.0.2.9:65536", false, "Endpoint"},
        BadFileLine{"Endpoint = 192.0.2.9:99999999999", false, "Endpoint"},
        BadFileLine{"Endpoint = 192.0.2.9:-1", false, "Endpoint"},
        BadFileLine{"Endpoint = 192.0.2.9:", false, "Endpoint"},
        BadFileLine{"Endpoint = 192.0.2.9", false, "Endpoint"},
        BadFileLine{"Endpoint = 1.2.3:51820", false, "not a valid IPv4"},  // inet_aton: 1.2.0.3
        BadFileLine{"Endpoint = 10.1:51820", false, "not a valid IPv4"},
        BadFileLine{"Endpoint = 192.0.2.300:51820", false, "not a valid IPv4"},
        BadFileLine{"Endpoint = 999999:51820", false, "not a valid IPv4"},
        BadFileLine{"Endpoint = fd00::1:51820", false, "brackets"},
        BadFileLine{"Endpoint = [fd00::1]:99999", false, "Endpoint"},
        BadFileLine{"Endpoint = [fd00::1]", false, "Endpoint"},
        BadFileLine{"Endpoint = vpn.example:65536", false, "Endpoint"},
        BadFileLine{"Endpoint = vpn.example", false, "Endpoint"},
        // persistent keepalive
        BadFileLine{"PersistentKeepalive = 65536", false, "PersistentKeepalive"},
        BadFileLine{"PersistentKeepalive = -1", false, "PersistentKeepalive"},
        BadFileLine{"PersistentKeepalive = 99999999999", false, "PersistentKeepalive"},
        BadFileLine{"PersistentKeepalive =", false, "PersistentKeepalive"},
        BadFileLine{"PersistentKeepalive = on", false, "PersistentKeepalive"},
        BadFileLine{"PersistentKeepalive = 2.5", false, "PersistentKeepalive"},
        // unknown or misplaced keys and sections
        BadFileLine{"PublicKey = " + b64(0x60), true, "unknown [Interface] key"},
        BadFileLine{"ListenPort = 1", false, "unknown [Peer] key"},
        BadFileLine{"Foo = bar", false, "unknown [Peer] key"},
        BadFileLine{"[Peers]", false, "unknown section"}, BadFileLine{"AllowedIPs", false, "Key = Value"},
        // the last peer takes the first peer's key: both lines are named
        BadFileLine{"PublicKey = " + b64(0x20), false, "already defined on line 7"},
        // 1 MB line
        BadFileLine{"AllowedIPs = " + kMegabyte, false, "longer than 4096"},
        BadFileLine{"# " + kMegabyte, true, "longer than 4096"}));

TEST_F(ConfigFileTransaction, DuplicatePeerNamesBothLines) {
  std::string text = "[Peer]\nPublicKey = " + b64(1) + "\n[Peer]\nPublicKey = " + b64(2) +
                     "\n\n[Peer]\nAllowedIPs = 10.0.0.0/8\nPublicKey = " + b64(1) + "\n";
  std::string err = load_file(dev(), text);
  EXPECT_EQ(err, "line 8: duplicate peer " + b64(1) + ": already defined on line 2");
  EXPECT_EQ(dump(), before_);
}

TEST_F(ConfigFileTransaction, OverriddenPublicKeyIsNoDuplicate) {
  // Within a section a later PublicKey replaces the earlier one (wg's config.c): the first peer
  // ends up as key 2, so key 1 is free for the second peer.
  std::string text = "[Peer]\nPublicKey = " + b64(1) + "\nPublicKey = " + b64(2) +
                     "\n[Peer]\nPublicKey = " + b64(1) + "\nAllowedIPs = 10.1.0.0/16\n";
  ASSERT_EQ(load_file(dev(), text), "");
  ASSERT_EQ(dev().snapshot().peers.size(), 2u);
  ASSERT_NE(peer(seq_key(2)), nullptr);
  const PeerSnapshot* p = peer(seq_key(1));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(sorted_prefixes(*p), std::vector<std::string>{"10.1.0.0/16"});
}

TEST_F(ConfigFileTransaction, MegabyteLineWithoutNewlineAtEndOfFile) {
  std::string err = load_file(dev(), file_interface() + "PrivateKey = " + kMegabyte);
  EXPECT_EQ(err, "line 5: line longer than 4096 bytes");
  EXPECT_EQ(dump(), before_);
}

TEST_F(ConfigFileTransaction, ListenPortInUseRefusesTheWholeFile) {
  auto squatter = net_.attach(*IpAddr::parse("192.0.2.1"), 40000);
  ASSERT_NE(squatter, nullptr);
  std::string err = load_file(dev(), file_interface() + file_peers());
  EXPECT_EQ(err.rfind("apply: errno " + std::to_string(EADDRINUSE), 0), 0u) << err;
  EXPECT_EQ(dump(), before_);
}

}  // namespace
}  // namespace xsktun::control
