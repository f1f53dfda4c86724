// Cryptokey routing table ("allowed IPs"), whitepaper section 2: each peer owns a set of prefixes; the
// table maps an inner destination to the peer to encrypt for, and checks that a decrypted packet's
// source belongs to the peer it came from. Semantics follow drivers/net/wireguard/allowedips.c:
// longest-prefix match, host bits masked on insert, a prefix belongs to exactly one peer (inserting it
// for another peer moves it), exact-match removal.
//
// Concurrency model: the control plane builds a new table (the type is copyable) and publishes it via
// std::shared_ptr<const AllowedIps>; all const methods only read, so any number of threads may call them
// concurrently on a table nobody mutates. Lookups never allocate and never recurse.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xsktun/common/ip.h"
#include "xsktun/routing/length_index.h"

namespace xsktun::routing {

using PeerId = uint32_t;  // opaque peer handle chosen by the caller; every value is valid

// One prefix's owner before and after a change (nullopt: not in the table).
struct PrefixChange {
  Prefix prefix;  // normalized (host bits cleared)
  std::optional<PeerId> before, after;
};

class AllowedIps {
 public:
  AllowedIps() = default;

  // Inserts or overwrites prefix -> peer. Host bits beyond cidr are cleared first (10.1.2.3/8 stores
  // 10.0.0.0/8). Returns false for an invalid prefix (family not AF_INET/AF_INET6 or cidr too long).
  bool insert(const Prefix& p, PeerId peer);
  // Removes only if that exact (masked) prefix maps to `peer`; returns whether something was removed.
  bool remove(const Prefix& p, PeerId peer);
  // O(prefixes of the peer): every peer's prefixes are chained through their nodes.
  void remove_by_peer(PeerId peer);
  // remove_by_peer(peer) followed by insert() of every prefix; invalid prefixes are skipped. Readers never
  // see the intermediate state because they only see published (immutable) copies.
  void replace_peer(PeerId peer, const std::vector<Prefix>& prefixes);

  // Longest-prefix match; nullopt if nothing covers the address.
  std::optional<PeerId> lookup(const IpAddr& a) const;
  // Same, on raw network-order bytes (4 for AF_INET, 16 for AF_INET6): the data-path entry point.
  std::optional<PeerId> lookup(int family, const uint8_t* addr) const;
  // The peer owning exactly this (masked) prefix, if any. No longest-prefix fallback.
  std::optional<PeerId> find_exact(const Prefix& p) const;

  // Receive check for a decrypted inner IP packet: true iff its SOURCE address maps to `peer`.
  bool source_allowed(PeerId peer, const uint8_t* ip_packet, size_t len) const;
  // Send path: the peer for an inner packet's DESTINATION; nullopt if none or not a valid IPv4/IPv6 header.
  std::optional<PeerId> route_packet(const uint8_t* ip_packet, size_t len) const;

  std::vector<Prefix> prefixes_of(PeerId peer) const;  // sorted by (family, addr, cidr); O(its prefixes)
  size_t count_of(PeerId peer) const;                  // O(its prefixes)
  // The prefix as the table stores it (host bits cleared); nullopt if invalid.
  static std::optional<Prefix> normalize(const Prefix& p);
  std::vector<std::pair<Prefix, PeerId>> entries() const;  // everything, sorted by (family, addr, cidr)
  size_t size() const { return count_; }                   // number of prefixes mapped to a peer
  size_t size(int family) const { return trie_for(family).count; }  // of one family
  bool empty() const { return count_ == 0; }
  // Live trie nodes including internal branch ("glue") nodes; at most 2 * size() per family. Diagnostics.
  size_t node_count() const { return nodes_.size() - free_.size(); }
  void clear();

 private:
  // An address as a 128-bit big-endian number: w[0] holds the first 8 bytes. IPv4 sits in the top 32 bits
  // of w[0], so bit i of the key is bit i of the address for both families.
  using Key = std::array<uint64_t, 2>;
  static constexpr uint32_t kNil = UINT32_MAX;

  // Path-compressed binary trie node. Invariant: a child has a longer cidr than its parent, agrees with
  // the parent on the parent's cidr bits, and sits at child[bit parent.cidr of its key]. Nodes without a
  // peer ("glue") exist only where two subtrees diverge, so they always have two children.
  struct Node {
    Key key{};  // masked to cidr
    uint32_t child[2] = {kNil, kNil};
    PeerId peer = 0;
    // The peer's chain of prefixes (nodes with has_peer), so its prefixes are found without a
    // walk of the table (the kernel keeps a list per peer the same way).
    uint32_t prev = kNil, next = kNil;
    uint8_t cidr = 0;
    bool has_peer = false;
    bool v6 = false;  // which trie (a key alone does not say)
  };
  struct Trie {
    uint32_t root = kNil;
    uint8_t bits = 0;   // 32 or 128
    size_t count = 0;   // prefixes mapped to a peer
    LengthIndex index;  // the same prefixes, for lookups while few lengths are in use
  };

  static bool parse_prefix(const Prefix& p, Key* key, uint8_t* cidr, int* family);
  static Key load_key(int family, const uint8_t* addr);
  static Prefix make_prefix(int family, const Key& key, uint8_t cidr);

  Trie& trie_for(int family) { return family == AF_INET ? v4_ : v6_; }
  const Trie& trie_for(int family) const { return family == AF_INET ? v4_ : v6_; }
  uint32_t alloc_node(const Key& key, uint8_t cidr, bool v6);
  void link(uint32_t idx, PeerId peer);  // sets the node's peer and chains it
  void unlink(uint32_t idx);             // unchains the node from its peer's chain
  void free_node(uint32_t idx);
  // Index of the node with exactly (key, cidr); fills path[0..*depth) with its ancestors, root first.
  uint32_t find_node(const Trie& t, const Key& key, uint8_t cidr, uint32_t* path, int* depth) const;
  // Re-points parent's link towards `via` (or the root when parent == kNil) at new_child.
  void set_link(Trie& t, uint32_t parent, const Key& via, uint32_t new_child);
  void erase_peer_at(Trie& t, uint32_t idx, const uint32_t* path, int depth);
  std::optional<PeerId> lookup_key(const Trie& t, const Key& key) const;
  template <typename Fn>
  void for_each(const Trie& t, Fn&& fn) const;

  std::vector<Node> nodes_;
  std::vector<uint32_t> free_;                  // recycled slots in nodes_
  std::unordered_map<PeerId, uint32_t> heads_;  // first node of each peer's chain
  Trie v4_{kNil, 32, 0, {}};
  Trie v6_{kNil, 128, 0, {}};
  size_t count_ = 0;
};

}  // namespace xsktun::routing
