// The whole-change check that runs before Device::apply changes anything: a change that would
// exceed a configuration limit (bpf/xsktun_shared.h, the BPF maps' sizes) or carries a prefix the
// table cannot hold is refused as a whole, so neither the userspace table nor the maps ever hold
// less than the configuration says.
#include <cerrno>
#include <optional>
#include <string>
#include <unordered_map>

#include "xsktun/device/device.h"

namespace xsktun::device {

namespace {

std::string key_bytes(const Key& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }

int too_many(std::string* err, size_t n, const char* what, size_t limit) {
  if (err)
    *err = "the change would leave " + std::to_string(n) + " " + what + "; the limit is " + std::to_string(limit) +
           " (nothing was applied)";
  return ENOSPC;
}

}  // namespace

// Replays the change on a copy of the table with provisional ids for new peers, counting peers
// and prefixes per family exactly as apply() will leave them. config_mu_ held.
int Device::check_change(const control::ConfigChange& change, std::string* err) const {
  // The identity after the change: a peer carrying our own public key is never created, and an
  // existing one is removed (apply's key change).
  std::optional<Key> own;
  bool key_changes = change.private_key && !change.private_key->equals(identity_.load()->private_key);
  if (key_changes && !change.private_key->is_zero()) {
    proto::StaticIdentity id;
    id.set_private(*change.private_key);
    own = id.public_key;
  } else if (!key_changes && identity_.load()->has_private) {
    own = identity_.load()->public_key;
  }

  routing::AllowedIps table;
  if (!change.replace_peers) table = *allowed_.load();
  size_t peers = change.replace_peers ? 0 : peer_count();
  // Peers this change touched: key -> id, nullopt once removed.
  std::unordered_map<std::string, std::optional<uint32_t>> touched;
  auto current_id = [&](const Key& k) -> std::optional<uint32_t> {
    if (auto it = touched.find(key_bytes(k)); it != touched.end()) return it->second;
    if (change.replace_peers) return std::nullopt;
    auto p = find_peer(k);
    return p ? std::optional<uint32_t>(p->id) : std::nullopt;
  };
  auto remove = [&](const Key& k, uint32_t id) {
    table.remove_by_peer(id);
    --peers;
    touched[key_bytes(k)] = std::nullopt;
  };
  if (key_changes && own)
    if (auto id = current_id(*own)) remove(*own, *id);

  uint32_t provisional = UINT32_MAX;  // real ids count up from 1: no clash
  for (const auto& pc : change.peers) {
    auto id = current_id(pc.public_key);
    bool created = false;
    if (pc.remove) {
      if (id) remove(pc.public_key, *id);
      continue;
    }
    if (!id) {
      if (pc.update_only || (own && *own == pc.public_key)) continue;
      id = provisional--;
      created = true;
      ++peers;
      touched[key_bytes(pc.public_key)] = id;
    }
    if (pc.replace_allowed_ips && !created) table.remove_by_peer(*id);  // as apply: a new peer owns nothing
    for (const auto& prefix : pc.allowed_ips)
      if (!table.insert(prefix, *id)) {
        if (err) *err = "bad allowed IP " + prefix.str();
        return EINVAL;
      }
  }
  if (peers > limits_.peers) return too_many(err, peers, "peers", limits_.peers);
  if (table.size(AF_INET) > limits_.allowed_ips_v4)
    return too_many(err, table.size(AF_INET), "IPv4 allowed IPs", limits_.allowed_ips_v4);
  if (table.size(AF_INET6) > limits_.allowed_ips_v6)
    return too_many(err, table.size(AF_INET6), "IPv6 allowed IPs", limits_.allowed_ips_v6);
  return 0;
}

}  // namespace xsktun::device
