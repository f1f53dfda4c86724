// BPF_PROG_TEST_RUN table for the XDP classifier (bpf/xsktun.bpf.c): each case is a frame, the
// XDP action it must get, and the one stats counter it must bump. Needs root (loads BPF).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "xsktun/xdp/frame.h"
#include "xsktun/xdp/nic.h"
#include "xsktun/xdp/xdp_object.h"

namespace xsktun::xdp {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr uint16_t kPort = 51820;
constexpr uint32_t kKnownIndex = 0x11223344;
constexpr uint32_t kUnknownIndex = 0x55667788;

// ---- Frame builders: each layer fills its own length fields from what it wraps. ----

void put_be16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes prefix(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + static_cast<long>(n)); }

// A WireGuard message: type, three zero reserved bytes, receiver index little-endian at offset 4
// (the data and cookie layout; whitepaper 5.4), then stand-in ciphertext.
Bytes wg(uint8_t type, size_t len, uint32_t receiver = 0) {
  Bytes m(len, 0);
  for (size_t i = 8; i < len; i++) m[i] = static_cast<uint8_t>(0xa5 ^ i);
  if (len > 0) m[0] = type;
  for (size_t i = 0; i < 4 && 4 + i < len; i++) m[4 + i] = static_cast<uint8_t>(receiver >> (8 * i));
  return m;
}
Bytes data_msg(uint32_t receiver, size_t len = 48) { return wg(XSKTUN_MSG_DATA, len, receiver); }
Bytes initiation(size_t len = XSKTUN_INITIATION_LEN) { return wg(XSKTUN_MSG_INITIATION, len); }

Bytes udp(const Bytes& payload, uint16_t dport = kPort, std::optional<uint16_t> len_field = {},
          uint16_t sport = 40000) {
  Bytes b;
  put_be16(b, sport);
  put_be16(b, dport);
  put_be16(b, len_field.value_or(static_cast<uint16_t>(8 + payload.size())));
  put_be16(b, 0);  // checksum: the program never looks at it
  return cat(b, payload);
}

struct V4 {
  std::array<uint8_t, 4> src{192, 0, 2, 1};
  int ihl = 5;
  uint16_t frag = 0;  // flags + fragment offset, host order
};

Bytes ipv4(uint8_t proto, const Bytes& l4, V4 o = {}) {
  const size_t hlen = static_cast<size_t>(o.ihl) * 4;
  Bytes h(hlen, 1);  // options: all NOP (RFC 791)
  std::fill(h.begin(), h.begin() + 20, 0);
  const size_t total = hlen + l4.size();
  h[0] = static_cast<uint8_t>(0x40 | o.ihl);
  h[2] = static_cast<uint8_t>(total >> 8);
  h[3] = static_cast<uint8_t>(total);
  h[6] = static_cast<uint8_t>(o.frag >> 8);
  h[7] = static_cast<uint8_t>(o.frag);
  h[8] = 64;
  h[9] = proto;
  std::memcpy(&h[12], o.src.data(), 4);
  const uint8_t dst[4] = {198, 51, 100, 1};
  std::memcpy(&h[16], dst, 4);
  uint32_t sum = 0;
  for (size_t i = 0; i < hlen; i += 2) sum += static_cast<uint32_t>(h[i] << 8 | h[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  h[10] = static_cast<uint8_t>(~sum >> 8);
  h[11] = static_cast<uint8_t>(~sum);
  return cat(h, l4);
}

struct V6 {
  std::array<uint8_t, 16> src{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1};
  std::vector<std::pair<uint8_t, uint8_t>> ext;  // extension headers in order: {type, hdrlen}
};

Bytes ipv6(uint8_t proto, const Bytes& l4, const V6& o = {}) {
  Bytes exts;
  for (size_t i = 0; i < o.ext.size(); i++) {
    const auto [type, units] = o.ext[i];
    Bytes e((units + 1u) * 8u, 0);
    e[0] = i + 1 < o.ext.size() ? o.ext[i + 1].first : proto;
    e[1] = units;
    if (type == IPPROTO_HOPOPTS || type == IPPROTO_DSTOPTS) {
      e[2] = 1;  // PadN option over the rest of the header (RFC 8200 4.2)
      e[3] = static_cast<uint8_t>(e.size() - 4);
    }
    exts = cat(exts, e);
  }
  const size_t plen = exts.size() + l4.size();
  Bytes h(40, 0);
  h[0] = 0x60;
  h[4] = static_cast<uint8_t>(plen >> 8);
  h[5] = static_cast<uint8_t>(plen);
  h[6] = o.ext.empty() ? proto : o.ext[0].first;
  h[7] = 64;
  std::memcpy(&h[8], o.src.data(), 16);
  h[24] = 0x20, h[25] = 0x01, h[26] = 0x0d, h[27] = 0xb8, h[39] = 9;
  return cat(cat(h, exts), l4);
}

Bytes ether(uint16_t type, const Bytes& l3, const std::vector<uint16_t>& tags = {}) {
  Bytes b = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
  for (size_t i = 0; i < tags.size(); i++) {
    put_be16(b, tags[i]);
    put_be16(b, static_cast<uint16_t>(100 + i));  // VLAN id
  }
  put_be16(b, type);
  return cat(b, l3);
}

Bytes v4_frame(const Bytes& msg, V4 o = {}) { return ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(msg), o)); }
Bytes v6_frame(const Bytes& msg, const V6& o = {}) {
  return ether(ETH_P_IPV6, ipv6(IPPROTO_UDP, udp(msg), o));
}

// ---- Running the program. ----

const char* const kStatNames[] = {
#define XSKTUN_STAT_NAME(upper, lower) #upper,
    XSKTUN_STATS(XSKTUN_STAT_NAME)
#undef XSKTUN_STAT_NAME
};
static_assert(std::size(kStatNames) == XSKTUN_STAT__MAX);

// "DROP_MALFORMED+1": readable and exact (any other counter moving shows up too).
std::string describe(const XdpObject::Stats& delta) {
  std::string s;
  for (size_t i = 0; i < delta.size(); i++) {
    if (delta[i] != 0)
      s += std::string(s.empty() ? "" : " ") + kStatNames[i] + "+" + std::to_string(delta[i]);
  }
  return s.empty() ? "nothing" : s;
}
std::string one(int stat) {
  XdpObject::Stats s{};
  s[static_cast<size_t>(stat)] = 1;
  return describe(s);
}
std::string action_name(uint32_t a) {
  static const char* const kNames[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
  return a < std::size(kNames) ? kNames[a] : "action " + std::to_string(a);
}

struct Outcome {
  int err = 0;
  uint32_t action = 0;
  std::string counted;
  bool unmodified = false;
};

// Keeps libbpf's warnings (verifier logs) but not its per-open info lines, such as the one for
// the .xdp_run_config section that only libxdp reads.
int libbpf_warnings_only(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

class XdpProgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "BPF program tests need root";
    libbpf_set_print(libbpf_warnings_only);
    std::string err;
    obj_ = XdpObject::open_and_load(&err);
    ASSERT_NE(obj_, nullptr) << err;
    ASSERT_EQ(obj_->set_listen_port(kPort), 0);
    const struct xsktun_session s { .peer_id = 7 };
    ASSERT_EQ(bpf_map_update_elem(obj_->sessions_fd(), &kKnownIndex, &s, BPF_NOEXIST), 0);
  }

  Outcome run(const Bytes& frame, uint32_t ifindex = 0) {
    const Bytes& in = frame;
    Bytes out(in.size() + 64, 0);
    struct xdp_md md {};
    md.data_end = static_cast<uint32_t>(in.size());
    md.ingress_ifindex = ifindex;
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = in.data();
    opts.data_size_in = static_cast<uint32_t>(in.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<uint32_t>(out.size());
    opts.ctx_in = &md;
    opts.ctx_size_in = sizeof(md);
    opts.repeat = 1;
    const XdpObject::Stats before = obj_->stats();
    Outcome r;
    r.err = bpf_prog_test_run_opts(obj_->prog_fd(), &opts);
    const XdpObject::Stats after = obj_->stats();
    XdpObject::Stats delta{};
    for (size_t i = 0; i < delta.size(); i++) delta[i] = after[i] - before[i];
    r.action = opts.retval;
    r.counted = describe(delta);
    out.resize(opts.data_size_out);
    r.unmodified = out == in;
    return r;
  }

  void expect(const Bytes& frame, uint32_t action, int stat, uint32_t ifindex = 0) {
    const Outcome r = run(frame, ifindex);
    ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
    EXPECT_EQ(action_name(r.action), action_name(action));
    EXPECT_EQ(r.counted, one(stat));
    EXPECT_TRUE(r.unmodified) << "the program must never rewrite a frame";
  }

  std::unique_ptr<XdpObject> obj_;
};

// ---- The table. ----

struct Case {
  std::string name;
  Bytes frame;
  uint32_t action;
  int stat;
};

Bytes with_byte(Bytes b, size_t at, uint8_t v) {
  b[at] = v;
  return b;
}

void add_wireguard_cases(std::vector<Case>& t) {
  // With no AF_XDP socket in xsks[queue], bpf_redirect_map returns its fallback (XDP_PASS) and
  // test_run reports that: the kernel socket gets the frame.
  t.push_back(
      {"data_live_session_no_xsk", v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back(
      {"data_unknown_index", v4_frame(data_msg(kUnknownIndex)), XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX});
  t.push_back({"data_32_bytes_keepalive", v4_frame(data_msg(kKnownIndex, 32)), XDP_PASS,
               XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"data_31_bytes", v4_frame(data_msg(kKnownIndex, 31)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED});
  t.push_back(
      {"data_1400_bytes", v4_frame(data_msg(kKnownIndex, 1400)), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  for (size_t r = 1; r <= 3; r++) {
    t.push_back({"data_reserved_byte_" + std::to_string(r) + "_set",
                 v4_frame(with_byte(data_msg(kKnownIndex), r, 0x80)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED});
  }
  for (uint8_t type : {0, 5, 9, 0xff}) {
    t.push_back(
        {"type_" + std::to_string(type), v4_frame(wg(type, 148)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED});
  }
  const struct {
    const char* name;
    uint8_t type;
    size_t len;
  } hs[] = {{"initiation", XSKTUN_MSG_INITIATION, XSKTUN_INITIATION_LEN},
            {"response", XSKTUN_MSG_RESPONSE, XSKTUN_RESPONSE_LEN},
            {"cookie", XSKTUN_MSG_COOKIE, XSKTUN_COOKIE_LEN}};
  for (const auto& h : hs) {
    const std::string n = h.name;
    t.push_back({n + "_exact", v4_frame(wg(h.type, h.len)), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE});
    t.push_back({n + "_minus_1", v4_frame(wg(h.type, h.len - 1)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED});
    t.push_back({n + "_plus_1", v4_frame(wg(h.type, h.len + 1)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED});
    t.push_back({n + "_reserved_set", v4_frame(with_byte(wg(h.type, h.len), 2, 1)), XDP_DROP,
                 XSKTUN_STAT_DROP_MALFORMED});
    t.push_back({n + "_ipv6", v6_frame(wg(h.type, h.len)), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE});
  }
  // Ethernet pads short frames: trailing bytes beyond the UDP length are not the message's.
  t.push_back({"cookie_with_ethernet_padding", cat(v4_frame(wg(3, 64)), Bytes(20, 0)), XDP_PASS,
               XSKTUN_STAT_PASS_HANDSHAKE});
  t.push_back({"udp_len_shorter_than_frame",
               ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kKnownIndex, 48), kPort, 8 + 32))), XDP_PASS,
               XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"udp_len_cuts_data_below_32",
               ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kKnownIndex, 48), kPort, 8 + 31))), XDP_DROP,
               XSKTUN_STAT_DROP_MALFORMED});
  t.push_back({"udp_len_too_big",
               ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kKnownIndex), kPort, 8 + 49))), XDP_PASS,
               XSKTUN_STAT_PASS_UNPARSED});
  for (uint16_t len : {0, 7}) {
    t.push_back({"udp_len_" + std::to_string(len),
                 ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kKnownIndex), kPort, len))), XDP_PASS,
                 XSKTUN_STAT_PASS_UNPARSED});
  }
  t.push_back({"udp_len_8_empty_message", ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp({}, kPort))), XDP_DROP,
               XSKTUN_STAT_DROP_MALFORMED});
}

void add_l2_l3_cases(std::vector<Case>& t) {
  const Bytes data = data_msg(kKnownIndex);
  t.push_back({"other_udp_port", ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data, kPort + 1))), XDP_PASS,
               XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"our_port_as_source_only", ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data, 53, {}, kPort))),
               XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"tcp_to_our_port", ether(ETH_P_IP, ipv4(IPPROTO_TCP, udp(data))), XDP_PASS,
               XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"arp", ether(ETH_P_ARP, Bytes(28, 0x11)), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"ipv4_ihl_6", v4_frame(data, {.ihl = 6}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"ipv4_ihl_15", v4_frame(data, {.ihl = 15}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"ipv4_ihl_15_unknown_index", v4_frame(data_msg(kUnknownIndex), {.ihl = 15}), XDP_DROP,
               XSKTUN_STAT_DROP_UNKNOWN_INDEX});
  const Bytes small = v4_frame(wg(4, 4));  // 14 + 20 + 8 + 4 bytes: too short for IHL 15
  t.push_back({"ipv4_ihl_15_past_end", with_byte(small, 14, 0x4f), XDP_PASS, XSKTUN_STAT_PASS_UNPARSED});
  t.push_back({"ipv4_ihl_4", with_byte(v4_frame(data), 14, 0x44), XDP_PASS, XSKTUN_STAT_PASS_UNPARSED});
  t.push_back(
      {"ipv4_ethertype_version_6", with_byte(v4_frame(data), 14, 0x65), XDP_PASS, XSKTUN_STAT_PASS_UNPARSED});
  t.push_back({"ipv4_more_fragments", v4_frame(data, {.frag = 0x2000}), XDP_PASS, XSKTUN_STAT_PASS_FRAGMENT});
  t.push_back({"ipv4_fragment_offset", v4_frame(data, {.frag = 185}), XDP_PASS, XSKTUN_STAT_PASS_FRAGMENT});
  t.push_back({"ipv4_tcp_fragment", ether(ETH_P_IP, ipv4(IPPROTO_TCP, Bytes(40, 0), {.frag = 0x2000})),
               XDP_PASS, XSKTUN_STAT_PASS_FRAGMENT});
  t.push_back(
      {"ipv4_dont_fragment", v4_frame(data, {.frag = 0x4000}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});

  t.push_back({"ipv6_data", v6_frame(data), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"ipv6_data_unknown_index", v6_frame(data_msg(kUnknownIndex)), XDP_DROP,
               XSKTUN_STAT_DROP_UNKNOWN_INDEX});
  t.push_back({"ipv6_hop_by_hop_and_dest_opts", v6_frame(data, {.ext = {{0, 0}, {60, 1}}}), XDP_PASS,
               XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"ipv6_routing_24_bytes_unknown", v6_frame(data_msg(kUnknownIndex), {.ext = {{43, 2}}}),
               XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX});
  t.push_back({"ipv6_four_ext_headers", v6_frame(data, {.ext = {{0, 0}, {60, 0}, {43, 0}, {60, 3}}}),
               XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"ipv6_five_ext_headers", v6_frame(data, {.ext = {{0, 0}, {60, 0}, {43, 0}, {60, 0}, {60, 0}}}),
               XDP_PASS, XSKTUN_STAT_PASS_UNPARSED});
  t.push_back(
      {"ipv6_fragment_header", v6_frame(data, {.ext = {{44, 0}}}), XDP_PASS, XSKTUN_STAT_PASS_FRAGMENT});
  t.push_back({"ipv6_hop_by_hop_then_fragment", v6_frame(data, {.ext = {{0, 0}, {44, 0}}}), XDP_PASS,
               XSKTUN_STAT_PASS_FRAGMENT});
  // hdrlen 255 claims 2048 bytes: the UDP header would start past the end of the frame.
  t.push_back({"ipv6_ext_header_past_end",
               with_byte(v6_frame(data, {.ext = {{0, 0}}}), ETH_HLEN + 40 + 1, 255), XDP_PASS,
               XSKTUN_STAT_PASS_UNPARSED});
  t.push_back(
      {"ipv6_tcp", ether(ETH_P_IPV6, ipv6(IPPROTO_TCP, udp(data))), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"ipv6_icmp", ether(ETH_P_IPV6, ipv6(58, Bytes(8, 0))), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back({"ipv6_no_next_header", ether(ETH_P_IPV6, ipv6(59, {})), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
  t.push_back(
      {"ipv6_ethertype_version_4", with_byte(v6_frame(data), 14, 0x40), XDP_PASS, XSKTUN_STAT_PASS_UNPARSED});

  const Bytes v4udp = ipv4(IPPROTO_UDP, udp(data));
  const Bytes v6udp = ipv6(IPPROTO_UDP, udp(data));
  t.push_back(
      {"vlan_8021q_ipv4", ether(ETH_P_IP, v4udp, {ETH_P_8021Q}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"vlan_qinq_ipv6", ether(ETH_P_IPV6, v6udp, {ETH_P_8021AD, ETH_P_8021Q}), XDP_PASS,
               XSKTUN_STAT_PASS_DATA_NO_XSK});
  t.push_back({"vlan_qinq_unknown_index",
               ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kUnknownIndex))), {ETH_P_8021AD, ETH_P_8021Q}),
               XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX});
  t.push_back({"vlan_three_tags", ether(ETH_P_IP, v4udp, {ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q}), XDP_PASS,
               XSKTUN_STAT_PASS_UNPARSED});
  t.push_back(
      {"vlan_arp", ether(ETH_P_ARP, Bytes(28, 0), {ETH_P_8021Q}), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS});
}

std::vector<Case> table() {
  std::vector<Case> t;
  add_wireguard_cases(t);
  add_l2_l3_cases(t);
  return t;
}

// gtest prints the case name rather than a hex dump of the struct.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class XdpTableTest : public XdpProgTest, public ::testing::WithParamInterface<Case> {};

TEST_P(XdpTableTest, VerdictAndCounter) {
  const Case& c = GetParam();
  expect(c.frame, c.action, c.stat);
}

INSTANTIATE_TEST_SUITE_P(Frames, XdpTableTest, ::testing::ValuesIn(table()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// ---- The same table through the userspace frame parser (no root needed). ----

// One definition of "redirectable" (bpf/xsktun_parse.h): every frame the program steers to an
// AF_XDP socket (a live session's data: PASS_DATA_NO_XSK here, REDIRECT_DATA when a socket is in
// xsks) parses in userspace down to that data message; frames the program passes as fragments
// or unparseable do not.
TEST(XdpTableUserspaceParser, EveryRedirectCaseParsesAndNoUnparsedOneDoes) {
  int redirects = 0;
  for (const Case& c : table()) {
    SCOPED_TRACE(c.name);
    ParsedFrame pf;
    const bool parsed = parse_frame(c.frame.data(), c.frame.size(), &pf);
    if (c.stat == XSKTUN_STAT_PASS_DATA_NO_XSK) {
      ++redirects;
      ASSERT_TRUE(parsed);
      ASSERT_GE(pf.payload_len, size_t{XSKTUN_DATA_MIN_LEN});
      EXPECT_EQ(pf.payload[0], XSKTUN_MSG_DATA);
      uint32_t receiver;
      std::memcpy(&receiver, pf.payload + 4, 4);
      EXPECT_EQ(receiver, kKnownIndex);
      EXPECT_EQ(pf.reply.src_port, kPort);
    } else if (c.stat == XSKTUN_STAT_PASS_UNPARSED || c.stat == XSKTUN_STAT_PASS_FRAGMENT) {
      EXPECT_FALSE(parsed);
    }
  }
  EXPECT_GE(redirects, 12) << "the table lost its redirect cases";
}

// ---- Truncation: every prefix of a valid frame, from 0 bytes up to the whole frame. ----

TEST_F(XdpProgTest, EveryTruncationIsPassedAsUnparsed) {
  const Bytes data = data_msg(kKnownIndex);
  struct Whole {
    const char* name;
    Bytes frame;
    uint32_t action;
    int stat;
    size_t payload;  // UDP payload bytes: the UDP header ends that far before the end
    bool ours;       // false: once the UDP header is complete, the port alone decides
  };
  const Whole frames[] = {
      {"ipv4", v4_frame(data), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK, 48, true},
      {"ipv6", v6_frame(data), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK, 48, true},
      {"ipv6_ext", v6_frame(data, {.ext = {{0, 0}, {60, 1}}}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK, 48,
       true},
      {"qinq_ipv4_options",
       ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data), {.ihl = 7}), {ETH_P_8021AD, ETH_P_8021Q}), XDP_PASS,
       XSKTUN_STAT_PASS_DATA_NO_XSK, 48, true},
      {"ipv4_initiation", v4_frame(initiation()), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE, 148, true},
      {"ipv4_other_port", ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data, 9))), XDP_PASS,
       XSKTUN_STAT_PASS_NOT_OURS, 48, false},
  };
  for (const Whole& w : frames) {
    ASSERT_EQ(data.size(), 48u);
    const size_t udp_end = w.frame.size() - w.payload;
    for (size_t len = 0; len <= w.frame.size(); len++) {
      SCOPED_TRACE(std::string(w.name) + " truncated to " + std::to_string(len) + " bytes");
      if (len < ETH_HLEN) {
        // test_run refuses frames shorter than an Ethernet header (net/bpf/test_run.c,
        // bpf_prog_test_run_xdp), even behind XDP metadata; the verifier already proved the
        // program's first bounds check covers them.
        const Outcome r = run(prefix(w.frame, len));
        EXPECT_EQ(r.err, -EINVAL);
        EXPECT_EQ(r.counted, "nothing");
      } else if (len == w.frame.size()) {
        expect(w.frame, w.action, w.stat);
      } else if (!w.ours && len >= udp_end) {
        expect(prefix(w.frame, len), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS);
      } else {
        // Headers cut short, or the UDP length reaching past the end of the frame.
        expect(prefix(w.frame, len), XDP_PASS, XSKTUN_STAT_PASS_UNPARSED);
      }
    }
  }
}

// The same data message cut at every length, with IP and UDP lengths rewritten to match: the
// frame is well formed and the message itself is what is too short.
TEST_F(XdpProgTest, EveryShortenedDataMessageIsMalformedBelow32Bytes) {
  const Bytes msg = data_msg(kKnownIndex, 64);
  for (size_t n = 0; n <= msg.size(); n++) {
    SCOPED_TRACE("message of " + std::to_string(n) + " bytes");
    const uint32_t action = n < XSKTUN_DATA_MIN_LEN ? XDP_DROP : XDP_PASS;
    const int stat = n < XSKTUN_DATA_MIN_LEN ? XSKTUN_STAT_DROP_MALFORMED : XSKTUN_STAT_PASS_DATA_NO_XSK;
    expect(v4_frame(prefix(msg, n)), action, stat);
    expect(v6_frame(prefix(msg, n)), action, stat);
  }
}

// ---- Configuration. ----

TEST_F(XdpProgTest, ListenPortZeroMeansNothingIsOurs) {
  ASSERT_EQ(obj_->set_listen_port(0), 0);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS);
  expect(v4_frame(initiation()), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS);
}

TEST_F(XdpProgTest, ListenPortFollowsConfig) {
  ASSERT_EQ(obj_->set_listen_port(4242), 0);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_NOT_OURS);
  expect(ether(ETH_P_IP, ipv4(IPPROTO_UDP, udp(data_msg(kKnownIndex), 4242))), XDP_PASS,
         XSKTUN_STAT_PASS_DATA_NO_XSK);
}

TEST_F(XdpProgTest, ConfigSettersKeepEachOther) {
  ASSERT_EQ(obj_->set_ratelimit(true), 0);
  ASSERT_EQ(obj_->set_listen_port(4242), 0);
  uint32_t key = 0;
  struct xsktun_config cfg {};
  ASSERT_EQ(bpf_map_lookup_elem(obj_->config_fd(), &key, &cfg), 0);
  EXPECT_EQ(cfg.listen_port, 4242);
  EXPECT_EQ(cfg.ratelimit_enabled, 1);
  ASSERT_EQ(obj_->set_ratelimit(false), 0);
  ASSERT_EQ(bpf_map_lookup_elem(obj_->config_fd(), &key, &cfg), 0);
  EXPECT_EQ(cfg.listen_port, 4242);
  EXPECT_EQ(cfg.ratelimit_enabled, 0);
}

// A data frame longer than an AF_XDP frame (the UMEM frame size in config.max_redirect_len)
// would be dropped by the socket: the program passes it to the kernel socket instead.
TEST_F(XdpProgTest, DataFramesLongerThanMaxRedirectLenGoToTheStack) {
  const Bytes big = v4_frame(data_msg(kKnownIndex, 1400));  // 14 + 20 + 8 + 1400 bytes
  ASSERT_EQ(obj_->set_max_redirect_len(static_cast<uint32_t>(big.size())), 0);
  expect(big, XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK);
  ASSERT_EQ(obj_->set_max_redirect_len(static_cast<uint32_t>(big.size() - 1)), 0);
  expect(big, XDP_PASS, XSKTUN_STAT_PASS_TOO_BIG);
  expect(v6_frame(data_msg(kKnownIndex, 1400)), XDP_PASS, XSKTUN_STAT_PASS_TOO_BIG);
  // Unknown indexes are still dropped, handshakes still pass as handshakes.
  expect(v4_frame(data_msg(kUnknownIndex, 1400)), XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX);
  expect(v4_frame(initiation()), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK);
}

TEST_F(XdpProgTest, SessionRemovalMakesIndexUnknown) {
  expect(v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK);
  ASSERT_EQ(bpf_map_delete_elem(obj_->sessions_fd(), &kKnownIndex), 0);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX);
}

// Every map exists under its contract name with the type the design names, and carries BTF so
// bpftool prints its fields (except the XSKMAP: libbpf creates fd-holding map types without BTF).
TEST_F(XdpProgTest, MapsHaveContractNamesTypesAndBtf) {
  const struct {
    const char* name;
    int fd;
    uint32_t type;
  } maps[] = {{"allowed_ips_v4", obj_->allowed_ips_v4_fd(), BPF_MAP_TYPE_LPM_TRIE},
              {"allowed_ips_v6", obj_->allowed_ips_v6_fd(), BPF_MAP_TYPE_LPM_TRIE},
              {"peers", obj_->peers_fd(), BPF_MAP_TYPE_HASH},
              {"sessions", obj_->sessions_fd(), BPF_MAP_TYPE_HASH},
              {"xsks", obj_->xsks_fd(), BPF_MAP_TYPE_XSKMAP},
              {"stats", obj_->stats_fd(), BPF_MAP_TYPE_PERCPU_ARRAY},
              {"config", obj_->config_fd(), BPF_MAP_TYPE_ARRAY},
              {"ratelimit", obj_->ratelimit_fd(), BPF_MAP_TYPE_LRU_HASH}};
  for (const auto& m : maps) {
    SCOPED_TRACE(m.name);
    EXPECT_NE(bpf_object__find_map_by_name(obj_->obj(), m.name), nullptr);
    struct bpf_map_info info {};
    uint32_t len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(m.fd, &info, &len), 0);
    EXPECT_STREQ(info.name, m.name);
    EXPECT_EQ(info.type, m.type);
    if (m.type != BPF_MAP_TYPE_XSKMAP) {
      EXPECT_NE(info.btf_id, 0u);
      EXPECT_NE(info.btf_value_type_id, 0u);
    }
  }
  EXPECT_EQ(bpf_program__type(obj_->prog()), BPF_PROG_TYPE_XDP);
}

// Pins go through libbpf at DIR/<map name>; unpinning removes them and DIR. A dead owner's
// pins are removed by name, and a directory holding anything else is refused, not emptied.
TEST_F(XdpProgTest, PinsUnpinsAndTakesOverStalePinsByName) {
  std::string err;
  ASSERT_TRUE(ensure_bpffs(&err)) << err;
  const std::string dir = "/sys/fs/bpf/xsktun-pin-test-" + std::to_string(getpid());
  ASSERT_TRUE(obj_->pin_maps(dir, &err)) << err;
  for (const char* m :
       {"allowed_ips_v4", "allowed_ips_v6", "peers", "sessions", "xsks", "stats", "config", "ratelimit"})
    EXPECT_EQ(access((dir + "/" + m).c_str(), F_OK), 0) << m;
  obj_->unpin_maps();
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << "unpin_maps leaves " << dir;

  // A second object pins (the "dead owner"), the first takes its pins over.
  auto dead = XdpObject::open_and_load(&err);
  ASSERT_TRUE(dead) << err;
  ASSERT_TRUE(dead->pin_maps(dir, &err)) << err;
  ASSERT_EQ(mkdir((dir + "/not-ours").c_str(), 0700), 0);
  EXPECT_FALSE(obj_->remove_stale_pins(dir, &err));
  EXPECT_NE(err.find("did not pin"), std::string::npos) << err;
  ASSERT_EQ(rmdir((dir + "/not-ours").c_str()), 0);
  err.clear();
  EXPECT_TRUE(obj_->remove_stale_pins(dir, &err)) << err;
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
  dead.reset();  // its unpin finds nothing left
}

// ---- Handshake rate limiting (per IPv4 address / IPv6 /64, burst XSKTUN_HS_BURST). ----
// test_run calls follow each other within microseconds, far less than the 50 ms refill of one
// packet, so the bucket is effectively frozen during these sequences.

Bytes v4_initiation_from(uint8_t last) { return v4_frame(initiation(), {.src = {192, 0, 2, last}}); }
Bytes v6_initiation_from(uint8_t subnet, uint8_t host) {
  V6 o;
  o.src[7] = subnet;
  o.src[15] = host;
  return v6_frame(initiation(), o);
}

TEST_F(XdpProgTest, Ipv4SourceExhaustsItsHandshakeBudget) {
  ASSERT_EQ(obj_->set_ratelimit(true), 0);
  for (int i = 0; i < XSKTUN_HS_BURST; i++) {
    SCOPED_TRACE("initiation " + std::to_string(i + 1));
    expect(v4_initiation_from(1), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);
  }
  expect(v4_initiation_from(1), XDP_DROP, XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED);
  // Responses and cookies draw on the same bucket; data messages never do.
  expect(v4_frame(wg(XSKTUN_MSG_RESPONSE, XSKTUN_RESPONSE_LEN), {.src = {192, 0, 2, 1}}), XDP_DROP,
         XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED);
  expect(v4_frame(data_msg(kKnownIndex), {.src = {192, 0, 2, 1}}), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK);
  expect(v4_initiation_from(2), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);

  struct xsktun_rl_key key {};
  key.family = 2;
  key.addr[0] = 192, key.addr[2] = 2, key.addr[3] = 1;
  struct xsktun_rl_value bucket {};
  ASSERT_EQ(bpf_map_lookup_elem(obj_->ratelimit_fd(), &key, &bucket), 0);
  EXPECT_LT(bucket.tokens_ns, XSKTUN_HS_COST_NS);
}

TEST_F(XdpProgTest, Ipv6SourcesShareTheBudgetOfTheirSlash64) {
  ASSERT_EQ(obj_->set_ratelimit(true), 0);
  for (uint8_t host = 1; host <= XSKTUN_HS_BURST; host++) {
    SCOPED_TRACE("host " + std::to_string(host));
    expect(v6_initiation_from(2, host), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);
  }
  expect(v6_initiation_from(2, 0xff), XDP_DROP, XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED);
  expect(v6_initiation_from(3, 1), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);

  // The key keeps only the /64 (xsktun_shared.h): bpftool and userspace see one entry per prefix.
  struct xsktun_rl_key key {};
  key.family = 10;
  const uint8_t net[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2};
  std::memcpy(key.addr, net, sizeof(net));
  struct xsktun_rl_value bucket {};
  EXPECT_EQ(bpf_map_lookup_elem(obj_->ratelimit_fd(), &key, &bucket), 0);
  key.addr[15] = 1;
  EXPECT_NE(bpf_map_lookup_elem(obj_->ratelimit_fd(), &key, &bucket), 0);
}

TEST_F(XdpProgTest, MalformedHandshakesDoNotSpendTheBudget) {
  ASSERT_EQ(obj_->set_ratelimit(true), 0);
  for (int i = 0; i < 10; i++) {
    expect(v4_frame(initiation(XSKTUN_INITIATION_LEN + 1)), XDP_DROP, XSKTUN_STAT_DROP_MALFORMED);
  }
  for (int i = 0; i < XSKTUN_HS_BURST; i++)
    expect(v4_frame(initiation()), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);
  expect(v4_frame(initiation()), XDP_DROP, XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED);
}

TEST_F(XdpProgTest, RateLimitOffPassesEveryHandshake) {
  for (int i = 0; i < 4 * XSKTUN_HS_BURST; i++)
    expect(v4_initiation_from(1), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE);
  uint8_t key[sizeof(struct xsktun_rl_key)];
  EXPECT_NE(bpf_map_get_next_key(obj_->ratelimit_fd(), nullptr, key), 0) << "no bucket when disabled";
}

// ---- A real AF_XDP socket in xsks[0]: the redirect succeeds. ----

// A copy-mode socket bound to queue 0 of the loopback device of this network namespace: enough
// for bpf_redirect_map to find it (test_run does not deliver the frame).
class LoopbackXsk {
 public:
  LoopbackXsk() {
    area_ = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area_ == MAP_FAILED) return;
    if (xsk_umem__create(&umem_, area_, kSize, &fill_, &comp_, nullptr) != 0) return;
    struct xsk_socket_config cfg {};
    cfg.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
    cfg.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
    cfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
    cfg.bind_flags = XDP_COPY;
    error_ = xsk_socket__create(&xsk_, "lo", 0, umem_, &rx_, &tx_, &cfg);
  }
  ~LoopbackXsk() {
    if (xsk_ != nullptr) xsk_socket__delete(xsk_);
    if (umem_ != nullptr) xsk_umem__delete(umem_);
    if (area_ != MAP_FAILED) munmap(area_, kSize);
  }
  int fd() const { return xsk_ != nullptr ? xsk_socket__fd(xsk_) : -1; }
  int error() const { return error_; }

 private:
  static constexpr size_t kSize = 4096 * XSK_UMEM__DEFAULT_FRAME_SIZE;
  void* area_ = MAP_FAILED;
  struct xsk_umem* umem_ = nullptr;
  struct xsk_socket* xsk_ = nullptr;
  struct xsk_ring_prod fill_ {
  }, tx_{};
  struct xsk_ring_cons comp_ {
  }, rx_{};
  int error_ = -ENOMEM;
};

TEST_F(XdpProgTest, DataForLiveSessionIsRedirectedToTheQueueSocket) {
  LoopbackXsk xsk;
  if (xsk.fd() < 0) GTEST_SKIP() << "no AF_XDP socket on lo: " << std::strerror(-xsk.error());
  const uint32_t queue = 0;
  const int fd = xsk.fd();
  ASSERT_EQ(bpf_map_update_elem(obj_->xsks_fd(), &queue, &fd, BPF_ANY), 0) << std::strerror(errno);
  const uint32_t lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_REDIRECT, XSKTUN_STAT_REDIRECT_DATA, lo);
  expect(v6_frame(data_msg(kKnownIndex)), XDP_REDIRECT, XSKTUN_STAT_REDIRECT_DATA, lo);
  // Only live sessions are steered; handshakes always go to the kernel socket.
  expect(v4_frame(data_msg(kUnknownIndex)), XDP_DROP, XSKTUN_STAT_DROP_UNKNOWN_INDEX, lo);
  expect(v4_frame(initiation()), XDP_PASS, XSKTUN_STAT_PASS_HANDSHAKE, lo);
  ASSERT_EQ(bpf_map_delete_elem(obj_->xsks_fd(), &queue), 0);
  expect(v4_frame(data_msg(kKnownIndex)), XDP_PASS, XSKTUN_STAT_PASS_DATA_NO_XSK, lo);
}

}  // namespace
}  // namespace xsktun::xdp
