// Tests for the cryptokey routing table. The fixed cases are the ones from the Linux kernel's
// drivers/net/wireguard/selftest/allowedips.c (insert / test / test_negative / remove sequences), expressed
// against this API; the randomized test compares against a naive linear table, as the kernel's
// DEBUG_RANDOM_TRIE mode does.
#include "xsktun/routing/allowed_ips.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <tuple>

namespace xsktun::routing {
namespace {

IpAddr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}

// Four 32-bit big-endian words, like the kernel selftest's ip6().
IpAddr ip6(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  uint8_t bytes[16];
  const uint32_t words[4] = {a, b, c, d};
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 4; ++i) bytes[w * 4 + i] = static_cast<uint8_t>(words[w] >> (24 - 8 * i));
  }
  return IpAddr::v6(bytes);
}

Prefix pfx(const IpAddr& a, uint8_t cidr) { return Prefix{a, cidr}; }
Prefix P(const char* s) { return *Prefix::parse(s); }

// Peer handles a..h of the kernel selftest.
constexpr PeerId a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8;

// The kernel selftest's initial insert sequence.
void insert_kernel_set(AllowedIps& t) {
  ASSERT_TRUE(t.insert(pfx(ip4(192, 168, 4, 0), 24), a));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 168, 4, 4), 32), b));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 168, 0, 0), 16), c));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 95, 5, 64), 27), d));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 95, 5, 65), 27), c));  // replaces the previous entry; needs masking
  ASSERT_TRUE(t.insert(pfx(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128), d));
  ASSERT_TRUE(t.insert(pfx(ip6(0x26075300, 0x60006b00, 0, 0), 64), c));
  ASSERT_TRUE(t.insert(pfx(ip4(0, 0, 0, 0), 0), e));
  ASSERT_TRUE(t.insert(pfx(ip6(0, 0, 0, 0), 0), e));
  ASSERT_TRUE(t.insert(pfx(ip6(0, 0, 0, 0), 0), f));  // replaces the previous entry
  ASSERT_TRUE(t.insert(pfx(ip6(0x24046800, 0, 0, 0), 32), g));
  ASSERT_TRUE(t.insert(pfx(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 64), h));  // masking
  ASSERT_TRUE(t.insert(pfx(ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 128), a));
  ASSERT_TRUE(t.insert(pfx(ip6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef), 128), c));
  ASSERT_TRUE(t.insert(pfx(ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0), 98), b));
  ASSERT_TRUE(t.insert(pfx(ip4(64, 15, 112, 0), 20), g));
  ASSERT_TRUE(t.insert(pfx(ip4(64, 15, 123, 211), 25), h));  // masking
  ASSERT_TRUE(t.insert(pfx(ip4(10, 0, 0, 0), 25), a));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 0, 0, 128), 25), b));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 1, 0, 0), 30), a));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 1, 0, 4), 30), b));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 1, 0, 8), 29), c));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 1, 0, 16), 29), d));
}

std::optional<PeerId> L(const AllowedIps& t, const IpAddr& addr) { return t.lookup(addr); }

TEST(AllowedIpsKernel, LookupsAfterInsertSequence) {
  AllowedIps t;
  insert_kernel_set(t);
  EXPECT_EQ(t.size(), 21u);  // 23 inserts, 2 of which overwrite
  EXPECT_EQ(L(t, ip4(192, 168, 4, 20)), a);
  EXPECT_EQ(L(t, ip4(192, 168, 4, 0)), a);
  EXPECT_EQ(L(t, ip4(192, 168, 4, 4)), b);
  EXPECT_EQ(L(t, ip4(192, 168, 200, 182)), c);
  EXPECT_EQ(L(t, ip4(192, 95, 5, 68)), c);
  EXPECT_EQ(L(t, ip4(192, 95, 5, 96)), e);
  EXPECT_EQ(L(t, ip6(0x26075300, 0x60006b00, 0, 0xc05f0543)), d);
  EXPECT_EQ(L(t, ip6(0x26075300, 0x60006b00, 0, 0xc02e01ee)), c);
  EXPECT_EQ(L(t, ip6(0x26075300, 0x60006b01, 0, 0)), f);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040806, 0, 0x1006)), g);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040806, 0x1234, 0x5678)), g);
  EXPECT_EQ(L(t, ip6(0x240467ff, 0x40040806, 0x1234, 0x5678)), f);
  EXPECT_EQ(L(t, ip6(0x24046801, 0x40040806, 0x1234, 0x5678)), f);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040800, 0x1234, 0x5678)), h);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040800, 0, 0)), h);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010)), h);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)), a);
  EXPECT_EQ(L(t, ip4(64, 15, 116, 26)), g);
  EXPECT_EQ(L(t, ip4(64, 15, 127, 3)), g);
  EXPECT_EQ(L(t, ip4(64, 15, 123, 1)), g);
  EXPECT_EQ(L(t, ip4(64, 15, 123, 128)), h);
  EXPECT_EQ(L(t, ip4(64, 15, 123, 129)), h);
  EXPECT_EQ(L(t, ip4(10, 0, 0, 52)), a);
  EXPECT_EQ(L(t, ip4(10, 0, 0, 220)), b);
  EXPECT_EQ(L(t, ip4(10, 1, 0, 2)), a);
  EXPECT_EQ(L(t, ip4(10, 1, 0, 6)), b);
  EXPECT_EQ(L(t, ip4(10, 1, 0, 10)), c);
  EXPECT_EQ(L(t, ip4(10, 1, 0, 20)), d);
}

TEST(AllowedIpsKernel, OverwriteAndMaskingVisibleInEntries) {
  AllowedIps t;
  insert_kernel_set(t);
  // 192.95.5.65/27 overwrote 192.95.5.64/27 (peer d -> c), and ::/0 moved from e to f.
  EXPECT_EQ(t.find_exact(P("192.95.5.64/27")), c);
  EXPECT_EQ(t.find_exact(P("::/0")), f);
  EXPECT_EQ(t.find_exact(P("0.0.0.0/0")), e);
  EXPECT_EQ(t.find_exact(P("64.15.123.128/25")), h);
  EXPECT_EQ(t.find_exact(P("2404:6800:4004:800::/64")), h);
  for (const auto& [prefix, peer] : t.entries()) EXPECT_EQ(prefix, prefix.masked()) << prefix.str();
}

TEST(AllowedIpsKernel, RemoveByPeerHostRoutes) {
  AllowedIps t;
  insert_kernel_set(t);
  for (uint8_t first : {1, 64, 128, 192, 255}) ASSERT_TRUE(t.insert(pfx(ip4(first, 0, 0, 0), 32), a));
  t.remove_by_peer(a);
  for (uint8_t first : {1, 64, 128, 192, 255}) EXPECT_NE(L(t, ip4(first, 0, 0, 0)), a);
  EXPECT_TRUE(t.prefixes_of(a).empty());
  // Only a's entries went away: the 0.0.0.0/0 default of e now catches these.
  EXPECT_EQ(L(t, ip4(1, 0, 0, 0)), e);
  EXPECT_EQ(L(t, ip4(192, 168, 4, 20)), c);  // was a's /24, falls back to c's /16
  EXPECT_EQ(L(t, ip4(192, 168, 4, 4)), b);
  EXPECT_EQ(L(t, ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)), h);
}

TEST(AllowedIpsKernel, ExactRemoveCases) {
  AllowedIps t;
  insert_kernel_set(t);
  t.remove_by_peer(a);
  const IpAddr v6host = ip6(0x24446801, 0x40e40800, 0xdeaebeef, 0xdefbeef);
  const IpAddr v6net = ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0);
  ASSERT_TRUE(t.insert(pfx(ip4(1, 0, 0, 0), 32), a));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 0, 0, 0), 24), a));
  ASSERT_TRUE(t.insert(pfx(v6host, 128), a));
  ASSERT_TRUE(t.insert(pfx(v6net, 98), a));
  EXPECT_EQ(L(t, ip4(1, 0, 0, 0)), a);
  EXPECT_EQ(L(t, ip4(192, 0, 0, 1)), a);
  EXPECT_EQ(L(t, v6host), a);
  EXPECT_EQ(L(t, ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)), a);

  // IPv4: must be an exact match, the right peer, and a valid cidr.
  EXPECT_FALSE(t.remove(pfx(ip4(192, 0, 0, 0), 32), a));
  EXPECT_EQ(L(t, ip4(192, 0, 0, 1)), a);
  EXPECT_FALSE(t.remove(pfx(ip4(192, 0, 0, 0), 24), b));
  EXPECT_EQ(L(t, ip4(192, 0, 0, 1)), a);
  EXPECT_FALSE(t.remove(pfx(ip4(192, 0, 0, 0), 33), b));
  EXPECT_EQ(L(t, ip4(192, 0, 0, 1)), a);
  EXPECT_TRUE(t.remove(pfx(ip4(192, 0, 0, 0), 24), a));
  EXPECT_NE(L(t, ip4(192, 0, 0, 1)), a);
  EXPECT_TRUE(t.remove(pfx(ip4(1, 0, 0, 0), 32), a));
  EXPECT_NE(L(t, ip4(1, 0, 0, 0)), a);

  // IPv6, same rules.
  EXPECT_FALSE(t.remove(pfx(v6host, 96), a));
  EXPECT_EQ(L(t, v6host), a);
  EXPECT_FALSE(t.remove(pfx(v6host, 128), b));
  EXPECT_EQ(L(t, v6host), a);
  EXPECT_FALSE(t.remove(pfx(v6host, 129), a));
  EXPECT_EQ(L(t, v6host), a);
  EXPECT_TRUE(t.remove(pfx(v6host, 128), a));
  EXPECT_NE(L(t, v6host), a);
  EXPECT_FALSE(t.remove(pfx(v6net, 98), b));
  EXPECT_EQ(L(t, ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)), a);
  EXPECT_TRUE(t.remove(pfx(v6net, 98), a));
  EXPECT_NE(L(t, ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0x10101010)), a);
  EXPECT_TRUE(t.prefixes_of(a).empty());
}

TEST(AllowedIpsKernel, RemoveByPeerNestedPrefixes) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(pfx(ip4(192, 168, 0, 0), 16), a));
  ASSERT_TRUE(t.insert(pfx(ip4(192, 168, 0, 0), 24), a));
  t.remove_by_peer(a);
  EXPECT_EQ(L(t, ip4(192, 168, 0, 1)), std::nullopt);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.node_count(), 0u);
}

// Deep chains: the kernel uses these to catch depth bugs in its node freeing; here they check that
// 128-bit keys differing in every single bit position are all kept apart.
TEST(AllowedIpsKernel, DeepV6Chains) {
  AllowedIps t;
  std::vector<IpAddr> inserted;
  auto add = [&](uint64_t hi, uint64_t lo) {
    uint8_t bytes[16];
    for (int i = 0; i < 8; ++i) {
      bytes[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
      bytes[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
    }
    inserted.push_back(IpAddr::v6(bytes));
    ASSERT_TRUE(t.insert(pfx(inserted.back(), 128), static_cast<PeerId>(inserted.size())));
  };
  for (int i = 0; i < 64; ++i) {
    add(~0ULL, ~0ULL << i);
    add(~0ULL << i, 0);
  }
  add(0, 0);
  for (int i = 0; i < 128; ++i) {  // older kernel variant: all-ones with one bit cleared
    uint64_t part = ~(1ULL << (i % 64));
    add(i < 64 ? ~0ULL : part, i < 64 ? part : ~0ULL);
  }
  // Duplicates (e.g. all-ones appears twice) overwrite, so the newest peer id for each address wins.
  for (size_t i = 0; i < inserted.size(); ++i) {
    size_t last = i;
    for (size_t j = i; j < inserted.size(); ++j) {
      if (inserted[j] == inserted[i]) last = j;
    }
    EXPECT_EQ(L(t, inserted[i]), static_cast<PeerId>(last + 1)) << inserted[i].str();
  }
  for (size_t i = 0; i < inserted.size(); ++i) t.remove_by_peer(static_cast<PeerId>(i + 1));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.entries().empty());
}

TEST(AllowedIpsKernel, PrefixesOfPeerAreMasked) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(pfx(ip4(192, 95, 5, 93), 27), a));
  ASSERT_TRUE(t.insert(pfx(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128), a));
  ASSERT_TRUE(t.insert(pfx(ip4(10, 1, 0, 20), 29), a));
  ASSERT_TRUE(t.insert(pfx(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83), a));
  ASSERT_TRUE(t.insert(pfx(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21), a));
  std::vector<Prefix> want = {
      pfx(ip4(10, 1, 0, 16), 29),
      pfx(ip4(192, 95, 5, 64), 27),
      pfx(ip6(0x26075000, 0, 0, 0), 21),
      pfx(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128),
      pfx(ip6(0x26075300, 0x6d8a6bf8, 0xdab1e000, 0), 83),
  };
  EXPECT_EQ(t.prefixes_of(a), want);
  EXPECT_TRUE(t.prefixes_of(b).empty());
}

// ---- API behaviour beyond the kernel cases ----

TEST(AllowedIps, HostBitsClearedOnInsert) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("10.1.2.3/8"), 7));
  ASSERT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.entries()[0].first, P("10.0.0.0/8"));
  EXPECT_EQ(t.find_exact(P("10.0.0.0/8")), 7u);
  EXPECT_EQ(t.find_exact(P("10.9.9.9/8")), 7u);  // queries are masked too
  EXPECT_TRUE(t.remove(P("10.200.0.1/8"), 7));   // and so are removals
  EXPECT_TRUE(t.empty());
}

TEST(AllowedIps, RejectsInvalidPrefixes) {
  AllowedIps t;
  Prefix unset;  // family 0
  EXPECT_FALSE(t.insert(unset, 1));
  Prefix v4 = P("10.0.0.0/8");
  v4.cidr = 33;
  EXPECT_FALSE(t.insert(v4, 1));
  Prefix v6 = P("fd00::/8");
  v6.cidr = 129;
  EXPECT_FALSE(t.insert(v6, 1));
  Prefix unix_family = P("10.0.0.0/8");
  unix_family.addr.family = AF_UNIX;
  EXPECT_FALSE(t.insert(unix_family, 1));
  EXPECT_FALSE(t.remove(unix_family, 1));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.insert(P("10.0.0.0/32"), 1));
  EXPECT_TRUE(t.insert(P("fd00::1/128"), 1));
  EXPECT_EQ(t.size(), 2u);
  const uint8_t raw[16] = {10, 0, 0, 0};
  EXPECT_EQ(t.lookup(AF_UNIX, raw), std::nullopt);
  EXPECT_EQ(t.lookup(AF_INET, raw), 1u);
}

TEST(AllowedIps, FamiliesAreSeparateAndAllPeerIdsValid) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("0.0.0.0/0"), 0));
  ASSERT_TRUE(t.insert(P("::/0"), UINT32_MAX));
  EXPECT_EQ(t.lookup(*IpAddr::parse("1.2.3.4")), 0u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("2001:db8::1")), UINT32_MAX);
  // ::/0 does not cover IPv4 and vice versa; the v4 address bytes padded with zero are not "::".
  EXPECT_TRUE(t.remove(P("0.0.0.0/0"), 0));
  EXPECT_EQ(t.lookup(*IpAddr::parse("0.0.0.0")), std::nullopt);
  EXPECT_EQ(t.lookup(*IpAddr::parse("::")), UINT32_MAX);
}

TEST(AllowedIps, GluePrefixIsNotAnEntryUntilInserted) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("10.0.0.0/24"), 1));
  ASSERT_TRUE(t.insert(P("10.0.1.0/24"), 2));  // the trie needs an internal 10.0.0.0/23 here
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find_exact(P("10.0.0.0/23")), std::nullopt);
  EXPECT_FALSE(t.remove(P("10.0.0.0/23"), 0));
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.2.1")), std::nullopt);
  EXPECT_EQ(t.node_count(), 3u);
  // Removing one side of a branch must remove the now useless branch node as well.
  EXPECT_TRUE(t.remove(P("10.0.1.0/24"), 2));
  EXPECT_EQ(t.node_count(), 1u);
  ASSERT_TRUE(t.insert(P("10.0.1.0/24"), 2));
  ASSERT_TRUE(t.insert(P("10.0.0.0/22"), 3));
  ASSERT_TRUE(t.insert(P("10.0.0.0/23"), 4));
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.2.1")), 3u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.1.1")), 2u);
  EXPECT_TRUE(t.remove(P("10.0.1.0/24"), 2));
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.1.1")), 4u);
  EXPECT_TRUE(t.remove(P("10.0.0.0/23"), 4));
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.1.1")), 3u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.1")), 1u);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.node_count(), 2u);  // /22 -> /24 (the emptied /23 was spliced out)
  EXPECT_TRUE(t.remove(P("10.0.0.0/24"), 1));
  EXPECT_EQ(t.node_count(), 1u);
  EXPECT_TRUE(t.remove(P("10.0.0.0/22"), 3));
  EXPECT_EQ(t.node_count(), 0u);
}

TEST(AllowedIps, OverwriteMovesPrefixBetweenPeers) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("192.168.1.0/24"), 1));
  ASSERT_TRUE(t.insert(P("192.168.1.77/24"), 2));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.prefixes_of(1).empty());
  EXPECT_EQ(t.prefixes_of(2), std::vector<Prefix>{P("192.168.1.0/24")});
  EXPECT_FALSE(t.remove(P("192.168.1.0/24"), 1));
}

TEST(AllowedIps, ReplacePeer) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("10.0.0.0/8"), 1));
  ASSERT_TRUE(t.insert(P("fd00::/64"), 1));
  ASSERT_TRUE(t.insert(P("172.16.0.0/12"), 2));
  ASSERT_TRUE(t.insert(P("192.168.0.0/16"), 3));
  Prefix bad = P("1.1.1.1/32");
  bad.cidr = 40;
  t.replace_peer(1, {P("172.16.0.0/12"), P("fd01::5/64"), bad, P("10.1.0.0/16")});
  EXPECT_EQ(t.prefixes_of(1), (std::vector<Prefix>{P("10.1.0.0/16"), P("172.16.0.0/12"), P("fd01::/64")}));
  EXPECT_TRUE(t.prefixes_of(2).empty());  // the prefix moved to peer 1
  EXPECT_EQ(t.prefixes_of(3), std::vector<Prefix>{P("192.168.0.0/16")});
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.2.0.1")), std::nullopt);
  EXPECT_EQ(t.lookup(*IpAddr::parse("fd00::1")), std::nullopt);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.1.0.1")), 1u);
  EXPECT_EQ(t.size(), 4u);
  t.replace_peer(1, {});
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.entries(), (std::vector<std::pair<Prefix, PeerId>>{{P("192.168.0.0/16"), 3}}));
}

TEST(AllowedIps, CopyIsIndependentAndClearResets) {
  AllowedIps t;
  ASSERT_TRUE(t.insert(P("10.0.0.0/8"), 1));
  ASSERT_TRUE(t.insert(P("fd00::/8"), 2));
  AllowedIps copy = t;
  ASSERT_TRUE(copy.insert(P("10.1.0.0/16"), 3));
  copy.remove_by_peer(2);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.1.0.1")), 1u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("fd00::1")), 2u);
  EXPECT_EQ(copy.lookup(*IpAddr::parse("10.1.0.1")), 3u);
  EXPECT_EQ(copy.lookup(*IpAddr::parse("fd00::1")), std::nullopt);
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.1.0.1")), std::nullopt);
  EXPECT_TRUE(t.insert(P("10.0.0.0/8"), 5));  // usable after clear
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.1.0.1")), 5u);
}

TEST(AllowedIps, ConcurrentReadersOfPublishedTable) {
  auto table = std::make_shared<AllowedIps>();
  for (uint32_t i = 0; i < 256; ++i) {
    ASSERT_TRUE(table->insert(pfx(ip4(10, static_cast<uint8_t>(i), 0, 0), 16), i));
  }
  std::shared_ptr<const AllowedIps> published = table;
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&, r] {
      for (int round = 0; round < 50; ++round) {
        for (uint32_t i = 0; i < 256; ++i) {
          uint8_t addr[4] = {10, static_cast<uint8_t>(i), static_cast<uint8_t>(round), 1};
          if (published->lookup(AF_INET, addr) != i) ++mismatches[r];
        }
      }
    });
  }
  for (auto& th : readers) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---- Randomized comparison against a naive linear table (fixed seeds) ----

class NaiveTable {
 public:
  bool insert(const Prefix& raw, PeerId peer) {
    Prefix p = raw.masked();
    for (auto& [q, owner] : list_) {
      if (q == p) {
        owner = peer;
        return true;
      }
    }
    list_.emplace_back(p, peer);
    return true;
  }
  bool remove(const Prefix& raw, PeerId peer) {
    auto it = std::find(list_.begin(), list_.end(), std::make_pair(raw.masked(), peer));
    if (it == list_.end()) return false;
    list_.erase(it);
    return true;
  }
  void remove_by_peer(PeerId peer) {
    std::erase_if(list_, [&](const auto& entry) { return entry.second == peer; });
  }
  std::optional<PeerId> lookup(const IpAddr& addr) const {
    std::optional<PeerId> best;
    int best_cidr = -1;
    for (const auto& [p, owner] : list_) {
      if (p.addr.family != addr.family || p.cidr <= best_cidr) continue;
      if (Prefix{addr, p.cidr}.masked().addr != p.addr) continue;
      best = owner;
      best_cidr = p.cidr;
    }
    return best;
  }
  std::vector<std::pair<Prefix, PeerId>> entries() const {
    auto out = list_;
    std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
      return std::tie(x.first.addr.family, x.first.addr.bytes, x.first.cidr) <
             std::tie(y.first.addr.family, y.first.addr.bytes, y.first.cidr);
    });
    return out;
  }
  const std::vector<std::pair<Prefix, PeerId>>& list() const { return list_; }

 private:
  std::vector<std::pair<Prefix, PeerId>> list_;
};

class RandomOps {
 public:
  explicit RandomOps(uint32_t seed) : rng_(seed) {}
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }

  // Half the time an address that shares a random-length prefix with an existing entry, so that nested
  // and diverging prefixes (glue nodes) are exercised as in the kernel's "mutated routes".
  IpAddr address(const NaiveTable& naive, int family) {
    IpAddr out;
    out.family = static_cast<uint8_t>(family);
    size_t len = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < len; ++i) out.bytes[i] = static_cast<uint8_t>(rng_());
    if (naive.list().empty() || below(2) == 0) return out;
    const Prefix& base = naive.list()[below(static_cast<uint32_t>(naive.list().size()))].first;
    if (base.addr.family != family) return out;
    unsigned keep = below(static_cast<uint32_t>(len * 8 + 1));
    for (unsigned i = 0; i < keep; ++i) {
      uint8_t m = static_cast<uint8_t>(0x80 >> (i % 8));
      out.bytes[i / 8] = static_cast<uint8_t>((out.bytes[i / 8] & ~m) | (base.addr.bytes[i / 8] & m));
    }
    return out;
  }
  Prefix prefix(const NaiveTable& naive, int family) {
    unsigned max = family == AF_INET ? 32 : 128;
    if (!few_lengths_) return Prefix{address(naive, family), static_cast<uint8_t>(below(max + 1))};
    // A VPN-like mix, few enough lengths for the hash index (LengthIndex) to serve lookups.
    static constexpr uint8_t kV4[] = {0, 8, 16, 24, 31, 32}, kV6[] = {0, 32, 48, 64, 127, 128};
    return Prefix{address(naive, family), family == AF_INET ? kV4[below(6)] : kV6[below(6)]};
  }
  void set_few_lengths(bool on) { few_lengths_ = on; }
  int family() { return below(2) == 0 ? AF_INET : AF_INET6; }
  // Same prefix with random bits set past the cidr; the table must treat it as the masked prefix.
  Prefix with_host_bits(Prefix p) {
    for (unsigned i = p.cidr; i < p.addr.len() * 8; ++i) {
      if (below(2) != 0) p.addr.bytes[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
    }
    return p;
  }

 private:
  std::mt19937 rng_;
  bool few_lengths_ = false;
};

void run_randomized(uint32_t seed, int ops, bool few_lengths = false) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  AllowedIps t;
  NaiveTable naive;
  RandomOps r(seed);
  r.set_few_lengths(few_lengths);
  constexpr uint32_t kPeers = 40;
  for (int op = 0; op < ops; ++op) {
    uint32_t dice = r.below(100);
    if (dice < 50) {
      Prefix p = r.prefix(naive, r.family());
      PeerId peer = r.below(kPeers);
      ASSERT_EQ(t.insert(p, peer), naive.insert(p, peer));
    } else if (dice < 62 && !naive.list().empty()) {  // exact removal of a live entry (maybe wrong peer)
      auto [p, owner] = naive.list()[r.below(static_cast<uint32_t>(naive.list().size()))];
      PeerId peer = r.below(4) == 0 ? r.below(kPeers) : owner;
      Prefix query = r.below(2) == 0 ? p : r.with_host_bits(p);
      ASSERT_EQ(t.remove(query, peer), naive.remove(query, peer)) << p.str();
    } else if (dice < 70) {
      Prefix p = r.prefix(naive, r.family());
      PeerId peer = r.below(kPeers);
      ASSERT_EQ(t.remove(p, peer), naive.remove(p, peer)) << p.str();
    } else if (dice < 72) {
      PeerId peer = r.below(kPeers);
      t.remove_by_peer(peer);
      naive.remove_by_peer(peer);
    } else if (dice < 74) {
      PeerId peer = r.below(kPeers);
      std::vector<Prefix> ps;
      for (uint32_t i = r.below(5); i > 0; --i) ps.push_back(r.prefix(naive, r.family()));
      t.replace_peer(peer, ps);
      naive.remove_by_peer(peer);
      for (const Prefix& p : ps) naive.insert(p, peer);
    } else {
      for (int q = 0; q < 8; ++q) {
        IpAddr addr = r.address(naive, r.family());
        ASSERT_EQ(t.lookup(addr), naive.lookup(addr)) << addr.str();
      }
    }
    ASSERT_EQ(t.size(), naive.list().size());
    // Removals must splice out branch nodes that no longer separate two subtrees.
    ASSERT_LE(t.node_count(), 2 * t.size());
    if (op % 256 == 0) {
      ASSERT_EQ(t.entries(), naive.entries());
      // Each peer's chain of prefixes (prefixes_of, count_of, remove_by_peer) and the
      // per-family counts agree with a walk of the whole table.
      std::map<PeerId, std::vector<Prefix>> want;
      size_t v4 = 0;
      for (const auto& [prefix, owner] : t.entries()) {
        want[owner].push_back(prefix);
        v4 += prefix.addr.family == AF_INET;
      }
      for (PeerId peer = 0; peer < kPeers; ++peer) {
        ASSERT_EQ(t.prefixes_of(peer), want[peer]) << "peer " << peer;
        ASSERT_EQ(t.count_of(peer), want[peer].size());
      }
      ASSERT_EQ(t.size(AF_INET), v4);
      ASSERT_EQ(t.size(AF_INET6), t.size() - v4);
    }
  }
  ASSERT_EQ(t.entries(), naive.entries());
  for (PeerId peer = 0; peer < kPeers; ++peer) t.remove_by_peer(peer);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.node_count(), 0u);
  EXPECT_TRUE(t.entries().empty());
}

TEST(AllowedIpsRandomized, MatchesNaiveTable) {
  for (uint32_t seed : {1u, 42u, 20240601u}) run_randomized(seed, 4000);
}

// The same with at most six lengths per family: lookups are served by the hash index, which
// must agree with the naive table (and the trie) through inserts, overwrites and removals.
TEST(AllowedIpsRandomized, HashIndexMatchesNaiveTable) {
  for (uint32_t seed : {3u, 77u, 20261204u}) run_randomized(seed, 6000, true);
}

// The index serves lookups only while at most LengthIndex::kMaxLengths lengths are in use; a
// seventh length hands lookups back to the trie, and removing it hands them back again.
TEST(AllowedIps, LookupsCrossBetweenIndexAndTrieAsLengthsComeAndGo) {
  AllowedIps t;
  for (int len = 8; len <= 28; len += 4)
    t.insert(*Prefix::parse("10.0.0.0/" + std::to_string(len)), static_cast<PeerId>(len));
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.1")), 28u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.200")), 24u);
  t.insert(P("10.0.0.1/32"), 32);  // seventh length
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.1")), 32u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.2")), 28u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.255.0.2")), 8u);
  ASSERT_TRUE(t.remove(P("10.0.0.1/32"), 32));
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.1")), 28u);
  t.remove_by_peer(28);
  EXPECT_EQ(t.lookup(*IpAddr::parse("10.0.0.1")), 24u);
  EXPECT_EQ(t.lookup(*IpAddr::parse("11.0.0.1")), std::nullopt);
}

// ---- Packet helpers ----

std::vector<uint8_t> v4_packet(const char* src, const char* dst, size_t len = 20) {
  std::vector<uint8_t> pkt(len, 0);
  pkt[0] = 0x45;  // version 4, IHL 5
  std::memcpy(&pkt[12], IpAddr::parse(src)->bytes.data(), 4);
  std::memcpy(&pkt[16], IpAddr::parse(dst)->bytes.data(), 4);
  return pkt;
}

std::vector<uint8_t> v6_packet(const char* src, const char* dst, size_t len = 40) {
  std::vector<uint8_t> pkt(len, 0);
  pkt[0] = 0x60;  // version 6
  std::memcpy(&pkt[8], IpAddr::parse(src)->bytes.data(), 16);
  std::memcpy(&pkt[24], IpAddr::parse(dst)->bytes.data(), 16);
  return pkt;
}

class AllowedIpsPackets : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(t.insert(P("10.0.0.2/32"), 1));
    ASSERT_TRUE(t.insert(P("10.0.0.0/24"), 2));
    ASSERT_TRUE(t.insert(P("fd00::2/128"), 1));
    ASSERT_TRUE(t.insert(P("fd00::/64"), 2));
  }
  AllowedIps t;
};

TEST_F(AllowedIpsPackets, RoutesByDestination) {
  auto p = v4_packet("10.0.0.2", "10.0.0.9");
  EXPECT_EQ(t.route_packet(p.data(), p.size()), 2u);
  p = v4_packet("10.0.0.9", "10.0.0.2");
  EXPECT_EQ(t.route_packet(p.data(), p.size()), 1u);
  p = v4_packet("10.0.0.2", "8.8.8.8", 1400);
  EXPECT_EQ(t.route_packet(p.data(), p.size()), std::nullopt);
  p = v6_packet("fd00::9", "fd00::2");
  EXPECT_EQ(t.route_packet(p.data(), p.size()), 1u);
  p = v6_packet("fd00::2", "fd00::77", 1280);
  EXPECT_EQ(t.route_packet(p.data(), p.size()), 2u);
  p = v6_packet("fd00::2", "fd01::1");
  EXPECT_EQ(t.route_packet(p.data(), p.size()), std::nullopt);
}

TEST_F(AllowedIpsPackets, SourceCheck) {
  auto p = v4_packet("10.0.0.2", "10.0.0.9");
  EXPECT_TRUE(t.source_allowed(1, p.data(), p.size()));
  EXPECT_FALSE(t.source_allowed(2, p.data(), p.size()));  // covered by 2's /24, but 1's /32 is longer
  p = v4_packet("10.0.0.5", "10.0.0.2");
  EXPECT_TRUE(t.source_allowed(2, p.data(), p.size()));
  EXPECT_FALSE(t.source_allowed(1, p.data(), p.size()));
  p = v4_packet("192.0.2.1", "10.0.0.2");
  EXPECT_FALSE(t.source_allowed(1, p.data(), p.size()));
  EXPECT_FALSE(t.source_allowed(2, p.data(), p.size()));
  p = v6_packet("fd00::2", "fd00::9");
  EXPECT_TRUE(t.source_allowed(1, p.data(), p.size()));
  EXPECT_FALSE(t.source_allowed(2, p.data(), p.size()));
  p = v6_packet("fd00::1234", "fd00::2");
  EXPECT_TRUE(t.source_allowed(2, p.data(), p.size()));
  EXPECT_FALSE(t.source_allowed(1, p.data(), p.size()));
}

TEST_F(AllowedIpsPackets, Ipv4WithOptionsStillUsesFixedOffsets) {
  auto p = v4_packet("10.0.0.2", "10.0.0.7", 24);
  p[0] = 0x46;  // IHL 6: one option word; addresses stay at 12/16
  EXPECT_EQ(t.route_packet(p.data(), p.size()), 2u);
  EXPECT_TRUE(t.source_allowed(1, p.data(), p.size()));
}

TEST_F(AllowedIpsPackets, TruncatedAndBogusPacketsRejected) {
  auto p4 = v4_packet("10.0.0.2", "10.0.0.2");
  EXPECT_EQ(t.route_packet(p4.data(), 19), std::nullopt);
  EXPECT_FALSE(t.source_allowed(1, p4.data(), 19));
  auto p6 = v6_packet("fd00::2", "fd00::2");
  EXPECT_EQ(t.route_packet(p6.data(), 39), std::nullopt);
  EXPECT_FALSE(t.source_allowed(1, p6.data(), 39));
  // An IPv6 packet must not be accepted on the IPv4 minimum length.
  EXPECT_EQ(t.route_packet(p6.data(), 20), std::nullopt);
  EXPECT_EQ(t.route_packet(p4.data(), 0), std::nullopt);
  EXPECT_EQ(t.route_packet(nullptr, 0), std::nullopt);
  EXPECT_FALSE(t.source_allowed(1, nullptr, 0));
  for (uint8_t version : {0, 1, 5, 7, 15}) {
    auto bogus = v6_packet("fd00::2", "fd00::2", 60);
    bogus[0] = static_cast<uint8_t>(version << 4);
    EXPECT_EQ(t.route_packet(bogus.data(), bogus.size()), std::nullopt) << int{version};
    EXPECT_FALSE(t.source_allowed(1, bogus.data(), bogus.size())) << int{version};
  }
  // Exact minimum lengths are fine.
  EXPECT_EQ(t.route_packet(p4.data(), 20), 1u);
  EXPECT_EQ(t.route_packet(p6.data(), 40), 1u);
}

// Device::snapshot takes each peer's prefixes from its chain (prefixes_of); it must agree with
// grouping a walk of the whole table by owner.
TEST(AllowedIps, PrefixChainsAgreeWithAWalkGroupedByPeer) {
  AllowedIps t;
  for (uint32_t i = 0; i < 300; ++i) {
    ASSERT_TRUE(t.insert(pfx(ip4(10, uint8_t(i >> 8), uint8_t(i), 0), 24), i % 7));
    ASSERT_TRUE(t.insert(pfx(ip6(0xfd000000, i, 0, 0), 64), i % 5));
  }
  ASSERT_TRUE(t.remove(pfx(ip4(10, 0, 3, 0), 24), 3));
  std::map<PeerId, std::vector<Prefix>> groups;
  for (const auto& [prefix, owner] : t.entries()) groups[owner].push_back(prefix);
  size_t total = 0;
  for (PeerId p = 0; p < 9; ++p) {
    auto it = groups.find(p);
    auto want = t.prefixes_of(p);
    if (want.empty()) {
      EXPECT_EQ(it, groups.end()) << "peer " << p;
      continue;
    }
    ASSERT_NE(it, groups.end()) << "peer " << p;
    EXPECT_EQ(it->second, want) << "peer " << p;
    EXPECT_EQ(t.count_of(p), want.size()) << "peer " << p;
    total += it->second.size();
  }
  EXPECT_EQ(total, t.size());
  EXPECT_EQ(groups.size(), 7u);
}

}  // namespace
}  // namespace xsktun::routing
