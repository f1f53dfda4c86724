// Tests for the wg(8) config-file format (wireguard-tools src/config.c and showconf.c
// behaviour) and the base64/hex key encodings it and the UAPI use.
#include "xsktun/control/config_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "test_util.h"
#include "xsktun/control/keys.h"

namespace xsktun::control {
namespace {

using test_util::seq_key;

const char* kSeqBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // bytes 0..31
const char* kSeqHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::string b64(uint8_t start) { return key_to_base64(seq_key(start)); }

ConfigChange parse_ok(std::string_view text, const EndpointResolver& resolver = {}) {
  auto r = parse_config_file(text, resolver);
  if (auto* e = std::get_if<std::string>(&r)) ADD_FAILURE() << "unexpected error: " << *e;
  return std::holds_alternative<ConfigChange>(r) ? std::get<ConfigChange>(r) : ConfigChange{};
}

std::string parse_err(std::string_view text, const EndpointResolver& resolver = {}) {
  auto r = parse_config_file(text, resolver);
  if (!std::holds_alternative<std::string>(r)) {
    ADD_FAILURE() << "accepted:\n" << text;
    return "";
  }
  return std::get<std::string>(r);
}

TEST(Keys, Base64KnownVector) {
  EXPECT_EQ(key_to_base64(seq_key(0)), kSeqBase64);
  auto k = key_from_base64(kSeqBase64);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, seq_key(0));
  auto s = secret_from_base64(kSeqBase64);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->equals(seq_key(0).data()));
  EXPECT_EQ(key_to_base64(*s), kSeqBase64);
}

TEST(Keys, HexKnownVectorAndCase) {
  EXPECT_EQ(key_to_hex(seq_key(0)), kSeqHex);
  auto k = key_from_hex(kSeqHex);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, seq_key(0));
  std::string upper = kSeqHex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(key_from_hex(upper), seq_key(0));  // Go's hex.DecodeString accepts both cases
  EXPECT_EQ(key_to_hex(*secret_from_hex(kSeqHex)), kSeqHex);
}

TEST(Keys, Base64RejectsWrongShapes) {
  std::string good = kSeqBase64;
  EXPECT_FALSE(key_from_base64(""));
  EXPECT_FALSE(key_from_base64(good.substr(0, 43)));                              // missing padding
  EXPECT_FALSE(key_from_base64(good + "="));                                      // too long
  EXPECT_FALSE(key_from_base64(" " + good.substr(1)));                            // invalid character
  EXPECT_FALSE(key_from_base64(good.substr(0, 42) + "9="));                       // non-zero trailing bits
  EXPECT_FALSE(key_from_base64(good.substr(0, 42) + "=="));                       // 31 bytes with 2 pads
  EXPECT_FALSE(key_from_base64(std::string(44, 'A')));                            // no padding at all
  EXPECT_FALSE(key_from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-="));  // URL alphabet
  EXPECT_FALSE(secret_from_base64(good.substr(0, 43)));
  EXPECT_TRUE(key_from_base64(std::string(43, 'A') + "="));  // all-zero key is well formed
}

TEST(Keys, HexRejectsWrongShapes) {
  std::string good = kSeqHex;
  EXPECT_FALSE(key_from_hex(""));
  EXPECT_FALSE(key_from_hex(good.substr(0, 63)));
  EXPECT_FALSE(key_from_hex(good.substr(0, 62)));
  EXPECT_FALSE(key_from_hex(good + "00"));
  EXPECT_FALSE(key_from_hex(good.substr(0, 63) + "g"));
  EXPECT_FALSE(key_from_hex(good.substr(0, 62) + ":f"));
  EXPECT_FALSE(secret_from_hex(good.substr(1) + " "));
}

TEST(ConfigFile, FullWgQuickFile) {
  std::string text =
      "# wg-quick style, not stripped\n"
      "[Interface]\n"
      "Address = 10.0.0.1/24, fd00::1/64\n"
      "  PrivateKey = " +
      b64(0) +
      "   # trailing comment\n"
      "listenport=51820\n"
      "DNS = 1.1.1.1\nMTU = 1420\nTable = off\nPreUp = true\nPostUp = iptables -A FORWARD -i %i -j ACCEPT\n"
      "PreDown = true\nPostDown = true\nSaveConfig = false\n"
      "FwMark = 0x10\n"
      "\n"
      "[Peer]\r\n"
      "PublicKey = " +
      b64(1) +
      "\r\n"
      "PresharedKey = " +
      b64(2) +
      "\n"
      "Allowed IPs = 10.0.0.2/32 , fd00::2/128\n"
      "AllowedIPs = 192.168.7.5\n"
      "Endpoint = 192.0.2.1:51820\n"
      "PersistentKeepalive = 25\n"
      "[peer]\n"
      "PUBLICKEY = " +
      b64(3) +
      "\n"
      "Endpoint = [2001:db8::9]:1\n"
      "PersistentKeepalive = off\n"
      "AllowedIPs =\n";
  ConfigChange c = parse_ok(text);
  EXPECT_TRUE(c.replace_peers);
  ASSERT_TRUE(c.private_key);
  EXPECT_TRUE(c.private_key->equals(seq_key(0).data()));
  EXPECT_EQ(c.listen_port, 51820);
  EXPECT_EQ(c.fwmark, 16u);
  ASSERT_EQ(c.peers.size(), 2u);
  const PeerChange& a = c.peers[0];
  EXPECT_EQ(a.public_key, seq_key(1));
  ASSERT_TRUE(a.preshared_key);
  EXPECT_TRUE(a.preshared_key->equals(seq_key(2).data()));
  EXPECT_TRUE(a.replace_allowed_ips);
  ASSERT_EQ(a.allowed_ips.size(), 3u);
  EXPECT_EQ(a.allowed_ips[0].str(), "10.0.0.2/32");
  EXPECT_EQ(a.allowed_ips[1].str(), "fd00::2/128");
  EXPECT_EQ(a.allowed_ips[2].str(), "192.168.7.5/32");  // bare address = host prefix
  EXPECT_EQ(a.endpoint->str(), "192.0.2.1:51820");
  EXPECT_EQ(a.persistent_keepalive, 25);
  const PeerChange& b = c.peers[1];
  EXPECT_EQ(b.public_key, seq_key(3));
  EXPECT_EQ(b.endpoint->str(), "[2001:db8::9]:1");
  EXPECT_EQ(b.persistent_keepalive, 0);
  EXPECT_TRUE(b.replace_allowed_ips);
  EXPECT_TRUE(b.allowed_ips.empty());
  EXPECT_FALSE(b.preshared_key);
  EXPECT_FALSE(b.remove || b.update_only);
}

TEST(ConfigFile, SetconfZeroesWhatIsOmitted) {
  ConfigChange c = parse_ok("");
  EXPECT_TRUE(c.replace_peers);
  ASSERT_TRUE(c.private_key && c.listen_port && c.fwmark);
  EXPECT_TRUE(c.private_key->is_zero());
  EXPECT_EQ(*c.listen_port, 0);
  EXPECT_EQ(*c.fwmark, 0u);
  EXPECT_TRUE(c.peers.empty());
}

TEST(ConfigFile, FwMarkForms) {
  EXPECT_EQ(parse_ok("[Interface]\nFwMark = off\n").fwmark, 0u);
  EXPECT_EQ(parse_ok("[Interface]\nFwMark = 51820\n").fwmark, 51820u);
  EXPECT_EQ(parse_ok("[Interface]\nFwMark = 0xffffffff\n").fwmark, 0xffffffffu);
  EXPECT_EQ(parse_ok("[Interface]\nFwMark = 0\n").fwmark, 0u);
}

TEST(ConfigFile, HostnameEndpointUsesResolver) {
  std::string seen;
  EndpointResolver fake = [&seen](const std::string& host,
                                  uint16_t port) -> std::variant<Endpoint, std::string> {
    seen = host;
    if (host != "vpn.example") return std::string("no such host");
    Endpoint e = *Endpoint::parse("203.0.113.4:1");
    e.port = port;
    return e;
  };
  std::string peer = "[Peer]\nPublicKey = " + b64(1) + "\n";
  ConfigChange c = parse_ok(peer + "Endpoint = vpn.example:4500\n", fake);
  EXPECT_EQ(seen, "vpn.example");
  EXPECT_EQ(c.peers.at(0).endpoint->str(), "203.0.113.4:4500");
  std::string err = parse_err(peer + "Endpoint = other.example:4500\n", fake);
  EXPECT_EQ(err.rfind("line 3: ", 0), 0u) << err;
  EXPECT_NE(err.find("no such host"), std::string::npos) << err;
}

TEST(ConfigFile, DefaultResolverResolvesLocalhost) {
  // Answered from /etc/hosts: no network involved. A machine without a localhost entry skips.
  auto r = parse_config_file("[Peer]\nPublicKey = " + b64(1) + "\nEndpoint = localhost:51820\n");
  if (auto* err = std::get_if<std::string>(&r)) GTEST_SKIP() << "localhost does not resolve here: " << *err;
  const Endpoint& e = std::get<ConfigChange>(r).peers.at(0).endpoint.value();
  EXPECT_EQ(e.port, 51820);
  EXPECT_TRUE(e.str() == "127.0.0.1:51820" || e.str() == "[::1]:51820") << e.str();
}

struct BadFile {
  std::string text;
  int line;
  std::string needle;
};

class ConfigFileError : public ::testing::TestWithParam<BadFile> {};

TEST_P(ConfigFileError, NamesTheLine) {
  std::string err = parse_err(GetParam().text, [](const std::string&, uint16_t) {
    return std::variant<Endpoint, std::string>(std::string("resolver must not be reached"));
  });
  EXPECT_EQ(err.rfind("line " + std::to_string(GetParam().line) + ": ", 0), 0u) << err;
  EXPECT_NE(err.find(GetParam().needle), std::string::npos) << err;
}

const std::string kIf = "[Interface]\n";
const std::string kPeer = "[Peer]\nPublicKey = " + b64(1) + "\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigFileError,
    ::testing::Values(
        BadFile{kIf + "Bogus = 1\n", 2, "unknown [Interface] key"},
        BadFile{kPeer + "Address = 10.0.0.1\n", 3, "unknown [Peer] key"},
        BadFile{"[Interfaces]\n", 1, "unknown section"}, BadFile{"\n# c\nListenPort = 1\n", 3, "outside"},
        BadFile{kIf + "ListenPort\n", 2, "Key = Value"}, BadFile{kPeer + kPeer, 4, "duplicate peer"},
        BadFile{kIf + "PrivateKey = " + std::string(kSeqBase64).substr(0, 43) + "\n", 2, "PrivateKey"},
        BadFile{kIf + "PrivateKey = " + std::string(kSeqBase64).substr(0, 42) + "9=\n", 2, "PrivateKey"},
        BadFile{kIf + "PrivateKey = " + std::string(kSeqHex) + "\n", 2, "PrivateKey"},
        BadFile{kIf + "PrivateKey =\n", 2, "PrivateKey"},
        BadFile{"[Peer]\nPublicKey = abc\n", 2, "PublicKey"},
        BadFile{kPeer + "PresharedKey = abc=\n", 3, "PresharedKey"},
        BadFile{kPeer + "AllowedIPs = 10.0.0.0/33\n", 3, "10.0.0.0/33"},
        BadFile{kPeer + "AllowedIPs = 10.0.0.0/8, 10.0.0.300/32\n", 3, "10.0.0.300"},
        BadFile{kPeer + "AllowedIPs = fd00::/129\n", 3, "AllowedIPs"},
        BadFile{kPeer + "AllowedIPs = 10.0.0.0/8,\n", 3, "AllowedIPs"},
        BadFile{kPeer + "AllowedIPs = +10.0.0.0/8\n", 3, "incremental"},
        BadFile{kPeer + "AllowedIPs = -10.0.0.0/8\n", 3, "incremental"},
        BadFile{kIf + "ListenPort = 65536\n", 2, "ListenPort"},
        BadFile{kIf + "ListenPort = abc\n", 2, "ListenPort"},
        BadFile{kIf + "ListenPort = -1\n", 2, "ListenPort"}, BadFile{kIf + "ListenPort =\n", 2, "ListenPort"},
        BadFile{kIf + "FwMark = 0x100000000\n", 2, "FwMark"}, BadFile{kIf + "FwMark = on\n", 2, "FwMark"},
        BadFile{kPeer + "PersistentKeepalive = 65536\n", 3, "PersistentKeepalive"},
        BadFile{kPeer + "PersistentKeepalive = -5\n", 3, "PersistentKeepalive"},
        BadFile{kPeer + "Endpoint = 192.0.2.1\n", 3, "Endpoint"},
        BadFile{kPeer + "Endpoint = [::1]\n", 3, "Endpoint"},
        BadFile{kPeer + "Endpoint = 192.0.2.1:65536\n", 3, "Endpoint"},
        BadFile{kPeer + "Endpoint = :5\n", 3, "Endpoint"}, BadFile{kPeer + "Endpoint =\n", 3, "Endpoint"},
        BadFile{kIf + "[Peer]\nEndpoint = 192.0.2.1:1\n[Peer]\nPublicKey = " + b64(2) + "\n", 2,
                "no PublicKey"},
        BadFile{kPeer + "[Peer]\n# nothing\n", 3, "no PublicKey"},
        BadFile{kIf + "# " + std::string(4100, 'x') + "\n", 2, "4096"}));

TEST(ConfigFile, LineOfExactly4096BytesIsFine) {
  std::string line = "ListenPort = 7";
  line += std::string(kMaxConfigLine - line.size(), ' ');
  ASSERT_EQ(line.size(), kMaxConfigLine);
  EXPECT_EQ(parse_ok(kIf + line + "\n").listen_port, 7);
}

DeviceSnapshot sample_snapshot() {
  DeviceSnapshot s;
  s.private_key.emplace(seq_key(0).data());
  s.listen_port = 51820;
  s.fwmark = 0xca6c;
  PeerSnapshot a;
  a.public_key = seq_key(1);
  a.preshared_key.assign(seq_key(2).data());
  a.allowed_ips = {*Prefix::parse("10.0.0.2/32"), *Prefix::parse("fd00::/64")};
  a.endpoint = Endpoint::parse("[2001:db8::1]:51820");
  a.persistent_keepalive = 25;
  a.rx_bytes = 99;  // runtime state: not part of the config
  PeerSnapshot b;
  b.public_key = seq_key(3);
  s.peers = {a, b};
  return s;
}

TEST(ConfigFile, ShowconfFormat) {
  std::string expected = "[Interface]\nListenPort = 51820\nFwMark = 0xca6c\nPrivateKey = " + b64(0) +
                         "\n\n[Peer]\nPublicKey = " + b64(1) + "\nPresharedKey = " + b64(2) +
                         "\nAllowedIPs = 10.0.0.2/32, fd00::/64\nEndpoint = [2001:db8::1]:51820\n"
                         "PersistentKeepalive = 25\n\n[Peer]\nPublicKey = " +
                         b64(3) + "\n";
  EXPECT_EQ(format_config_file(sample_snapshot()), expected);
  EXPECT_EQ(format_config_file(DeviceSnapshot{}), "[Interface]\n\n");
}

TEST(ConfigFile, ShowconfRoundTrips) {
  DeviceSnapshot s = sample_snapshot();
  ConfigChange c = parse_ok(format_config_file(s));
  EXPECT_TRUE(c.private_key->equals(*s.private_key));
  EXPECT_EQ(c.listen_port, s.listen_port);
  EXPECT_EQ(c.fwmark, s.fwmark);
  ASSERT_EQ(c.peers.size(), 2u);
  EXPECT_EQ(c.peers[0].public_key, s.peers[0].public_key);
  EXPECT_TRUE(c.peers[0].preshared_key->equals(s.peers[0].preshared_key));
  EXPECT_EQ(c.peers[0].allowed_ips, s.peers[0].allowed_ips);
  EXPECT_EQ(c.peers[0].endpoint, s.peers[0].endpoint);
  EXPECT_EQ(c.peers[0].persistent_keepalive, 25);
  EXPECT_EQ(c.peers[1].public_key, s.peers[1].public_key);
  EXPECT_FALSE(c.peers[1].preshared_key);
  EXPECT_FALSE(c.peers[1].endpoint);
}

}  // namespace
}  // namespace xsktun::control

// `xsktun up -c FILE` reads through load_config_file: line by line, so its size in bytes is
// not limited (17 MiB of comments and one setting load), what it configures is (caps), and
// /dev/zero ends as an overlong line instead of eating memory.
TEST(LoadConfigFile, StreamsAnySizeCapsWhatItConfiguresAndStopsOnEndlessLines) {
  using namespace xsktun::control;
  char dir[] = "/tmp/xsktun-cfg-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string small = std::string(dir) + "/small.conf", big = std::string(dir) + "/big.conf",
                    peers = std::string(dir) + "/peers.conf";
  {
    std::ofstream(small)
        << "[Interface]\nListenPort = 1\n[Peer]\nPublicKey = "
           "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\nAllowedIPs = 10.0.0.0/8, 10.1.0.0/16";
    std::ofstream f(big);
    std::string comment = "# " + std::string(1021, 'x') + "\n";
    for (size_t i = 0; i < 17 * 1024; ++i) f << comment;  // 17 MiB
    f << "[Interface]\nListenPort = 2\n";
    std::ofstream p(peers);
    for (int i = 0; i < 3; ++i)
      p << "[Peer]\nPublicKey = AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH" << char('A' + i) << "A=\n";
  }
  auto ok = load_config_file(small);
  ASSERT_TRUE(std::holds_alternative<ConfigChange>(ok)) << std::get<std::string>(ok);
  EXPECT_EQ(*std::get<ConfigChange>(ok).listen_port, 1);
  ASSERT_EQ(std::get<ConfigChange>(ok).peers.size(), 1u);
  EXPECT_EQ(std::get<ConfigChange>(ok).peers[0].allowed_ips.size(), 2u) << "the last line has no newline";
  auto huge = load_config_file(big);
  ASSERT_TRUE(std::holds_alternative<ConfigChange>(huge)) << std::get<std::string>(huge);
  EXPECT_EQ(*std::get<ConfigChange>(huge).listen_port, 2);
  auto capped = load_config_file(peers, {}, ConfigCaps{.peers = 2, .prefixes = 10});
  ASSERT_TRUE(std::holds_alternative<std::string>(capped));
  EXPECT_EQ(std::get<std::string>(capped), peers + ": line 5: more than 2 peers");
  auto prefixes = load_config_file(small, {}, ConfigCaps{.peers = 2, .prefixes = 1});
  ASSERT_TRUE(std::holds_alternative<std::string>(prefixes));
  EXPECT_EQ(std::get<std::string>(prefixes), small + ": line 5: more than 1 allowed IPs");
  auto zero = load_config_file("/dev/zero");
  ASSERT_TRUE(std::holds_alternative<std::string>(zero));
  EXPECT_EQ(std::get<std::string>(zero), "/dev/zero: line 1: line longer than 4096 bytes");
  auto missing = load_config_file(std::string(dir) + "/missing");
  ASSERT_TRUE(std::holds_alternative<std::string>(missing));
  EXPECT_NE(std::get<std::string>(missing).find("cannot read " + std::string(dir) + "/missing: No such file"),
            std::string::npos);
  for (const auto& f : {small, big, peers}) std::remove(f.c_str());
  rmdir(dir);
}
