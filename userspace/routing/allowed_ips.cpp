// Path-compressed binary trie per address family, stored in a flat node vector so the whole table is
// trivially copyable (the control plane copies, edits and republishes it). The shape mirrors the kernel's
// drivers/net/wireguard/allowedips.c: a node per stored prefix plus "glue" nodes where prefixes diverge,
// every walk is a loop bounded by the address width (no recursion), and lookup touches at most 129 nodes.
#include "xsktun/routing/allowed_ips.h"

#include <algorithm>
#include <tuple>

namespace xsktun::routing {
namespace {

constexpr size_t kMaxDepth = 130;  // nodes on any root-to-leaf path: one per cidr 0..128, plus slack

// Bit i (0 = most significant) of a 128-bit big-endian key.
inline unsigned bit_at(const std::array<uint64_t, 2>& k, unsigned i) {
  return static_cast<unsigned>((k[i >> 6] >> (63 - (i & 63))) & 1);
}

// Number of leading bits on which two keys agree (0..128).
inline unsigned common_bits(const std::array<uint64_t, 2>& a, const std::array<uint64_t, 2>& b) {
  uint64_t x = a[0] ^ b[0];
  if (x != 0) return static_cast<unsigned>(__builtin_clzll(x));
  x = a[1] ^ b[1];
  if (x != 0) return 64 + static_cast<unsigned>(__builtin_clzll(x));
  return 128;
}

// Clears every bit at position >= cidr (the "maskself" step of the kernel's insert).
inline std::array<uint64_t, 2> mask_key(const std::array<uint64_t, 2>& k, unsigned cidr) {
  return mask_lpm_key(k, cidr);
}

inline uint64_t load_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

inline void store_be64(uint64_t v, uint8_t* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// Locates the source or destination address inside an inner IP packet. Only the fixed header is needed:
// IPv4 (RFC 791) has saddr at 12 and daddr at 16 of a >= 20-byte header; IPv6 (RFC 8200) has saddr at 8
// and daddr at 24 of a 40-byte header. Anything else is not routable (the kernel drops it too).
bool packet_addr(const uint8_t* pkt, size_t len, bool source, int* family, const uint8_t** addr) {
  if (pkt == nullptr || len == 0) return false;
  unsigned version = pkt[0] >> 4;
  if (version == 4 && len >= 20) {
    *family = AF_INET;
    *addr = pkt + (source ? 12 : 16);
    return true;
  }
  if (version == 6 && len >= 40) {
    *family = AF_INET6;
    *addr = pkt + (source ? 8 : 24);
    return true;
  }
  return false;
}

}  // namespace

AllowedIps::Key AllowedIps::load_key(int family, const uint8_t* addr) {
  if (family == AF_INET) {
    uint64_t v = (uint64_t{addr[0]} << 24) | (uint64_t{addr[1]} << 16) | (uint64_t{addr[2]} << 8) | addr[3];
    return {v << 32, 0};
  }
  return {load_be64(addr), load_be64(addr + 8)};
}

Prefix AllowedIps::make_prefix(int family, const Key& key, uint8_t cidr) {
  uint8_t bytes[16];
  store_be64(key[0], bytes);
  store_be64(key[1], bytes + 8);
  Prefix p;
  p.addr = family == AF_INET ? IpAddr::v4(bytes) : IpAddr::v6(bytes);
  p.cidr = cidr;
  return p;
}

bool AllowedIps::parse_prefix(const Prefix& p, Key* key, uint8_t* cidr, int* family) {
  int fam = p.addr.family;
  if (fam != AF_INET && fam != AF_INET6) return false;
  if (p.cidr > (fam == AF_INET ? 32 : 128)) return false;
  *family = fam;
  *cidr = p.cidr;
  *key = mask_key(load_key(fam, p.addr.bytes.data()), p.cidr);
  return true;
}

uint32_t AllowedIps::alloc_node(const Key& key, uint8_t cidr, bool v6) {
  uint32_t idx;
  if (!free_.empty()) {
    idx = free_.back();
    free_.pop_back();
    nodes_[idx] = Node{};
  } else {
    idx = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  nodes_[idx].key = key;
  nodes_[idx].cidr = cidr;
  nodes_[idx].v6 = v6;
  return idx;
}

void AllowedIps::link(uint32_t idx, PeerId peer) {
  Node& n = nodes_[idx];
  n.peer = peer;
  n.has_peer = true;
  n.prev = kNil;
  auto [it, fresh] = heads_.try_emplace(peer, idx);
  n.next = fresh ? kNil : it->second;
  if (!fresh) {
    nodes_[it->second].prev = idx;
    it->second = idx;
  }
}

void AllowedIps::unlink(uint32_t idx) {
  Node& n = nodes_[idx];
  if (n.prev != kNil) {
    nodes_[n.prev].next = n.next;
  } else if (n.next != kNil) {
    heads_[n.peer] = n.next;
  } else {
    heads_.erase(n.peer);
  }
  if (n.next != kNil) nodes_[n.next].prev = n.prev;
  n.prev = n.next = kNil;
}

void AllowedIps::free_node(uint32_t idx) {
  nodes_[idx] = Node{};
  free_.push_back(idx);
}

// Points parent's link (or the root) that leads towards `via` at new_child. The side is chosen by the
// key, not by the old pointer, because an empty slot does not say which side it is.
void AllowedIps::set_link(Trie& t, uint32_t parent, const Key& via, uint32_t new_child) {
  if (parent == kNil) {
    t.root = new_child;
    return;
  }
  Node& p = nodes_[parent];
  p.child[bit_at(via, p.cidr)] = new_child;
}

bool AllowedIps::insert(const Prefix& p, PeerId peer) {
  Key key;
  uint8_t cidr;
  int family;
  if (!parse_prefix(p, &key, &cidr, &family)) return false;
  Trie& t = trie_for(family);
  uint32_t parent = kNil;
  uint32_t cur = t.root;
  for (;;) {
    if (cur == kNil) {  // empty slot: the prefix becomes a leaf here
      uint32_t leaf = alloc_node(key, cidr, family == AF_INET6);
      link(leaf, peer);
      set_link(t, parent, key, leaf);
      ++count_;
      ++t.count;
      t.index.set(key, cidr, peer);
      return true;
    }
    const Node& n = nodes_[cur];
    unsigned common = std::min({common_bits(key, n.key), unsigned{cidr}, unsigned{n.cidr}});
    if (common == n.cidr) {
      if (n.cidr == cidr) {  // exact prefix already present (maybe as glue): overwrite the owner
        Node& m = nodes_[cur];
        if (!m.has_peer) {
          ++count_, ++t.count;
        } else if (m.peer == peer) {
          return true;
        } else {
          unlink(cur);
        }
        link(cur, peer);
        t.index.set(key, cidr, peer);
        return true;
      }
      parent = cur;
      cur = n.child[bit_at(key, n.cidr)];
      continue;
    }
    // The new prefix and the subtree at `cur` diverge, or the new prefix covers the subtree.
    Key cur_key = n.key;
    uint32_t fresh =
        alloc_node(key, cidr, family == AF_INET6);  // may reallocate nodes_: `n` is dead from here on
    link(fresh, peer);
    ++count_;
    ++t.count;
    t.index.set(key, cidr, peer);
    if (common == cidr) {  // new prefix is a strict ancestor of cur
      nodes_[fresh].child[bit_at(cur_key, cidr)] = cur;
      set_link(t, parent, key, fresh);
      return true;
    }
    uint32_t glue = alloc_node(mask_key(key, common), static_cast<uint8_t>(common), family == AF_INET6);
    nodes_[glue].child[bit_at(key, common)] = fresh;
    nodes_[glue].child[bit_at(cur_key, common)] = cur;
    set_link(t, parent, key, glue);
    return true;
  }
}

uint32_t AllowedIps::find_node(const Trie& t, const Key& key, uint8_t cidr, uint32_t* path,
                               int* depth) const {
  *depth = 0;
  uint32_t cur = t.root;
  while (cur != kNil) {
    const Node& n = nodes_[cur];
    if (n.cidr > cidr || common_bits(key, n.key) < n.cidr) return kNil;
    if (n.cidr == cidr) return cur;  // key is masked, so agreeing on cidr bits means equal
    path[(*depth)++] = cur;
    cur = n.child[bit_at(key, n.cidr)];
  }
  return kNil;
}

// Drops the peer from node idx and restores the "glue has two children" invariant, so removals never
// leave chains of empty nodes behind (the kernel's remove_node does the same collapse).
void AllowedIps::erase_peer_at(Trie& t, uint32_t idx, const uint32_t* path, int depth) {
  --count_;
  --t.count;
  unlink(idx);
  t.index.erase(nodes_[idx].key, nodes_[idx].cidr);
  Node& n = nodes_[idx];
  n.has_peer = false;
  if (n.child[0] != kNil && n.child[1] != kNil) return;  // stays as glue
  uint32_t parent = depth > 0 ? path[depth - 1] : kNil;
  uint32_t only = n.child[0] != kNil ? n.child[0] : n.child[1];
  Key key = n.key;
  set_link(t, parent, key, only);
  free_node(idx);
  if (only != kNil || parent == kNil) return;
  // idx was a leaf; a glue parent now has a single child and must be spliced out too.
  Node& p = nodes_[parent];
  if (p.has_peer) return;
  uint32_t other = p.child[0] != kNil ? p.child[0] : p.child[1];
  Key pkey = p.key;
  set_link(t, depth > 1 ? path[depth - 2] : kNil, pkey, other);
  free_node(parent);
}

bool AllowedIps::remove(const Prefix& p, PeerId peer) {
  Key key;
  uint8_t cidr;
  int family;
  if (!parse_prefix(p, &key, &cidr, &family)) return false;
  Trie& t = trie_for(family);
  uint32_t path[kMaxDepth];
  int depth = 0;
  uint32_t idx = find_node(t, key, cidr, path, &depth);
  if (idx == kNil || !nodes_[idx].has_peer || nodes_[idx].peer != peer) return false;
  erase_peer_at(t, idx, path, depth);
  return true;
}

template <typename Fn>
void AllowedIps::for_each(const Trie& t, Fn&& fn) const {
  // Explicit pre-order stack instead of recursion; it never holds more than ~depth + 1 entries.
  std::vector<uint32_t> stack;
  if (t.root != kNil) stack.push_back(t.root);
  while (!stack.empty()) {
    uint32_t cur = stack.back();
    stack.pop_back();
    const Node& n = nodes_[cur];
    if (n.has_peer) fn(n);
    if (n.child[1] != kNil) stack.push_back(n.child[1]);
    if (n.child[0] != kNil) stack.push_back(n.child[0]);
  }
}

void AllowedIps::remove_by_peer(PeerId peer) {
  auto head = heads_.find(peer);
  if (head == heads_.end()) return;
  // Collect first: erasing frees and relinks nodes.
  std::vector<std::tuple<int, Key, uint8_t>> victims;
  for (uint32_t i = head->second; i != kNil; i = nodes_[i].next)
    victims.emplace_back(nodes_[i].v6 ? AF_INET6 : AF_INET, nodes_[i].key, nodes_[i].cidr);
  uint32_t path[kMaxDepth];
  for (const auto& [family, key, cidr] : victims) {
    Trie& t = trie_for(family);
    int depth = 0;
    uint32_t idx = find_node(t, key, cidr, path, &depth);
    if (idx != kNil) erase_peer_at(t, idx, path, depth);
  }
}

void AllowedIps::replace_peer(PeerId peer, const std::vector<Prefix>& prefixes) {
  remove_by_peer(peer);
  for (const Prefix& p : prefixes) insert(p, peer);
}

std::optional<PeerId> AllowedIps::lookup_key(const Trie& t, const Key& key) const {
  if (t.index.usable()) return t.index.lookup(key);
  std::optional<PeerId> best;
  uint32_t cur = t.root;
  while (cur != kNil) {
    const Node& n = nodes_[cur];
    if (common_bits(key, n.key) < n.cidr) break;
    if (n.has_peer) best = n.peer;  // deeper nodes are longer prefixes, so the last hit wins
    if (n.cidr >= t.bits) break;
    cur = n.child[bit_at(key, n.cidr)];
  }
  return best;
}

std::optional<PeerId> AllowedIps::lookup(int family, const uint8_t* addr) const {
  if (family != AF_INET && family != AF_INET6) return std::nullopt;
  const Trie& t = trie_for(family);
  if (t.root == kNil) return std::nullopt;
  return lookup_key(t, load_key(family, addr));
}

std::optional<PeerId> AllowedIps::lookup(const IpAddr& a) const { return lookup(a.family, a.bytes.data()); }

std::optional<PeerId> AllowedIps::find_exact(const Prefix& p) const {
  Key key;
  uint8_t cidr;
  int family;
  if (!parse_prefix(p, &key, &cidr, &family)) return std::nullopt;
  uint32_t path[kMaxDepth];
  int depth = 0;
  uint32_t idx = find_node(trie_for(family), key, cidr, path, &depth);
  if (idx == kNil || !nodes_[idx].has_peer) return std::nullopt;
  return nodes_[idx].peer;
}

bool AllowedIps::source_allowed(PeerId peer, const uint8_t* ip_packet, size_t len) const {
  int family = 0;
  const uint8_t* addr = nullptr;
  if (!packet_addr(ip_packet, len, /*source=*/true, &family, &addr)) return false;
  auto owner = lookup(family, addr);
  return owner && *owner == peer;
}

std::optional<PeerId> AllowedIps::route_packet(const uint8_t* ip_packet, size_t len) const {
  int family = 0;
  const uint8_t* addr = nullptr;
  if (!packet_addr(ip_packet, len, /*source=*/false, &family, &addr)) return std::nullopt;
  return lookup(family, addr);
}

std::vector<std::pair<Prefix, PeerId>> AllowedIps::entries() const {
  std::vector<std::pair<Prefix, PeerId>> out;
  out.reserve(count_);
  for (int family : {AF_INET, AF_INET6}) {
    for_each(trie_for(family),
             [&](const Node& n) { out.emplace_back(make_prefix(family, n.key, n.cidr), n.peer); });
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.addr.family, a.first.addr.bytes, a.first.cidr) <
           std::tie(b.first.addr.family, b.first.addr.bytes, b.first.cidr);
  });
  return out;
}

std::vector<Prefix> AllowedIps::prefixes_of(PeerId peer) const {
  std::vector<Prefix> out;
  if (auto head = heads_.find(peer); head != heads_.end())
    for (uint32_t i = head->second; i != kNil; i = nodes_[i].next)
      out.push_back(make_prefix(nodes_[i].v6 ? AF_INET6 : AF_INET, nodes_[i].key, nodes_[i].cidr));
  std::sort(out.begin(), out.end(), [](const Prefix& a, const Prefix& b) {
    return std::tie(a.addr.family, a.addr.bytes, a.cidr) < std::tie(b.addr.family, b.addr.bytes, b.cidr);
  });
  return out;
}

size_t AllowedIps::count_of(PeerId peer) const {
  size_t n = 0;
  if (auto head = heads_.find(peer); head != heads_.end())
    for (uint32_t i = head->second; i != kNil; i = nodes_[i].next) ++n;
  return n;
}

std::optional<Prefix> AllowedIps::normalize(const Prefix& p) {
  Key key;
  uint8_t cidr;
  int family;
  if (!parse_prefix(p, &key, &cidr, &family)) return std::nullopt;
  return make_prefix(family, key, cidr);
}

void AllowedIps::clear() {
  nodes_.clear();
  free_.clear();
  v4_.root = kNil;
  v6_.root = kNil;
  v4_.count = v6_.count = 0;
  v4_.index.clear();
  v6_.index.clear();
  heads_.clear();
  count_ = 0;
}

}  // namespace xsktun::routing
