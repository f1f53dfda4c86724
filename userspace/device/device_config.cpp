// Configuration changes: all or nothing, at a cost proportional to what they change.
//
// The allowed-IPs table is kept twice (left-right): data-path readers use the published copy
// (through allowed_) without locks; apply() edits the writer's copy (back()), recording
// every prefix it changes. If the result passes the limits the edited copy is published, the
// observer (the BPF maps) gets the net changes, and once the last reader of the old copy has let
// go the same changes are replayed onto it, so both copies stay equal and no change ever costs a
// copy or a walk of the whole table. A change that fails is undone on back() from the record.
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "xsktun/device/device.h"
#include "xsktun/protocol/data_aead.h"

namespace xsktun::device {

namespace {

std::string key_bytes(const Key& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }

std::string prefix_key(const Prefix& p) {
  std::string k(reinterpret_cast<const char*>(p.addr.bytes.data()), p.addr.len());
  k.push_back(static_cast<char>(p.cidr));
  k.push_back(static_cast<char>(p.addr.family));
  return k;
}

int too_many(std::string* err, size_t n, const char* what, size_t limit) {
  if (err)
    *err = "the change would leave " + std::to_string(n) + " " + what + "; the limit is " +
           std::to_string(limit) + " (nothing was applied)";
  return ENOSPC;
}

// Sets a prefix's owner (nullopt: absent) in `t`, whose current owner is `now`.
void set_owner(routing::AllowedIps& t, const Prefix& p, std::optional<uint32_t> now,
               std::optional<uint32_t> want) {
  if (want)
    t.insert(p, *want);
  else if (now)
    t.remove(p, *now);
}

// The net effect of a record: one entry per prefix whose owner differs before and after.
std::vector<routing::PrefixChange> net_changes(const std::vector<routing::PrefixChange>& log) {
  std::vector<routing::PrefixChange> out;
  std::unordered_map<std::string, size_t> at;
  for (const auto& c : log) {
    auto [it, fresh] = at.try_emplace(prefix_key(c.prefix), out.size());
    if (fresh)
      out.push_back(c);
    else
      out[it->second].after = c.after;
  }
  std::erase_if(out, [](const routing::PrefixChange& c) { return c.before == c.after; });
  return out;
}

}  // namespace

void Device::edit_remove_peer(uint32_t id, std::vector<routing::PrefixChange>& log) {
  for (const auto& p : back().prefixes_of(id)) {
    back().remove(p, id);
    log.push_back({p, id, std::nullopt});
  }
}

bool Device::edit_insert(const Prefix& prefix, uint32_t id, std::vector<routing::PrefixChange>& log) {
  auto p = routing::AllowedIps::normalize(prefix);
  if (!p) return false;
  auto before = back().find_exact(*p);
  if (before == id) return true;
  back().insert(*p, id);
  log.push_back({*p, before, id});
  return true;
}

void Device::undo(const std::vector<routing::PrefixChange>& log) {
  for (auto it = log.rbegin(); it != log.rend(); ++it) set_owner(back(), it->prefix, it->after, it->before);
}

// Decides which peer every PeerChange names after the change (new peers get the ids create_peer
// will give them, in the order apply_peer creates them), edits back() accordingly and checks the
// limits. On failure back() is restored and nothing else was touched. config_mu_ held.
int Device::plan_change(const control::ConfigChange& change, ChangePlan* plan, std::string* err) {
  // The identity after the change: a peer carrying our own public key is never created, and an
  // existing one is removed (as wireguard-go does).
  std::optional<Key> own;
  bool key_changes = change.private_key && !change.private_key->equals(identity_.load()->private_key);
  if (key_changes && !change.private_key->is_zero()) {
    proto::StaticIdentity id;
    id.set_private(*change.private_key);
    own = id.public_key;
  } else if (!key_changes && identity_.load()->has_private) {
    own = identity_.load()->public_key;
  }
  size_t peers = change.replace_peers ? 0 : peer_count();
  std::unordered_map<std::string, std::optional<uint32_t>> touched;  // key -> id, nullopt: gone
  auto current_id = [&](const Key& k) -> std::optional<uint32_t> {
    if (auto it = touched.find(key_bytes(k)); it != touched.end()) return it->second;
    if (change.replace_peers) return std::nullopt;
    auto p = find_peer(k);
    return p ? std::optional<uint32_t>(p->id) : std::nullopt;
  };
  auto& log = plan->log;
  if (change.replace_peers) {
    for (auto& [prefix, peer] : back().entries()) log.push_back({prefix, peer, std::nullopt});
    back().clear();
  }
  if (key_changes && own)
    if (auto id = current_id(*own)) {
      edit_remove_peer(*id, log);
      --peers;
      touched[key_bytes(*own)] = std::nullopt;
    }
  uint32_t next_id = next_peer_id_;
  plan->new_ids.assign(change.peers.size(), std::nullopt);
  for (size_t i = 0; i < change.peers.size(); ++i) {
    const auto& pc = change.peers[i];
    auto id = current_id(pc.public_key);
    if (pc.remove) {
      if (id) {
        edit_remove_peer(*id, log);
        --peers;
        touched[key_bytes(pc.public_key)] = std::nullopt;
      }
      continue;
    }
    bool created = false;
    if (!id) {
      if (pc.update_only || (own && *own == pc.public_key)) continue;
      id = next_id++;
      plan->new_ids[i] = id;
      created = true;
      ++peers;
      touched[key_bytes(pc.public_key)] = id;
    }
    if (pc.replace_allowed_ips && !created) edit_remove_peer(*id, log);  // a new peer owns nothing
    for (const auto& prefix : pc.allowed_ips)
      if (!edit_insert(prefix, *id, log)) {
        undo(log);
        if (err) *err = "bad allowed IP " + prefix.str();
        return EINVAL;
      }
  }
  int rc = 0;
  if (peers > limits_.peers)
    rc = too_many(err, peers, "peers", limits_.peers);
  else if (back().size(AF_INET) > limits_.allowed_ips_v4)
    rc = too_many(err, back().size(AF_INET), "IPv4 allowed IPs", limits_.allowed_ips_v4);
  else if (back().size(AF_INET6) > limits_.allowed_ips_v6)
    rc = too_many(err, back().size(AF_INET6), "IPv6 allowed IPs", limits_.allowed_ips_v6);
  if (rc) undo(log);
  return rc;
}

void Device::publish_copy(TableCopy& copy) {
  copy.released.store(false, std::memory_order_relaxed);
  // The readers' shared_ptr owns nothing: when the last reader lets go, its deleter says so with
  // a release store that the writer's acquire load pairs with, so every read of that reader
  // happens before the writer's first edit (use_count() is a relaxed load and would not order
  // them).
  allowed_.store(
      std::shared_ptr<const routing::AllowedIps>(
          &copy.table,
          [&copy](const routing::AllowedIps*) { copy.released.store(true, std::memory_order_release); }),
      std::memory_order_release);
}

// Publishes the writer's copy and brings the old one up to date. config_mu_ held.
void Device::publish(const std::vector<routing::PrefixChange>& log) {
  auto delta = net_changes(log);
  if (delta.empty()) return;
  if (observer_) observer_->allowed_ips_changed(delta);
  TableCopy& old = *tables_[front_];
  front_ = 1 - front_;
  publish_copy(*tables_[front_]);
  // Readers load allowed_ once per batch: the old copy is free once the batches that took it
  // are done (microseconds; a `wg show` snapshot a little longer). Only this writer waits.
  while (!old.released.load(std::memory_order_acquire))
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  for (const auto& c : delta) set_owner(old.table, c.prefix, c.before, c.after);
}

void Device::apply_peer(const control::PeerChange& pc, std::optional<uint32_t> new_id) {
  auto p = find_peer(pc.public_key);
  if (pc.remove) {
    if (p) remove_peer_locked(p);
    return;
  }
  if (!p) {
    if (!new_id) return;  // update_only, or our own key (the plan decided)
    p = create_peer(pc.public_key, *new_id);
  }
  bool send_keepalive_now = false;
  std::lock_guard pl(p->mu);
  if (pc.preshared_key) p->hs.preshared_key = *pc.preshared_key;
  if (pc.endpoint) p->endpoint = *pc.endpoint;
  if (pc.persistent_keepalive) {
    send_keepalive_now = *pc.persistent_keepalive != 0 && p->persistent_keepalive == 0;
    p->persistent_keepalive = *pc.persistent_keepalive;
    p->timers.set_persistent_keepalive(*pc.persistent_keepalive * proto::kSecond);
  }
  if (send_keepalive_now && p->endpoint.valid()) send_keepalive(*p);
  if (observer_) observer_->peer_updated(p->id, p->public_key, p->endpoint);
}

void Device::change_identity(const SecretKey& key) {
  auto id = std::make_shared<proto::StaticIdentity>();
  if (!key.is_zero()) id->set_private(key);
  cookie_checker_.set_public_key(id->public_key);
  identity_.store(id);
  // A new identity invalidates every session and the precomputed static-static DH; a peer whose
  // key is now our own is removed (its prefixes already left the table in plan_change).
  std::vector<std::shared_ptr<Peer>> all = all_peers();
  for (auto& p : all) {
    if (id->has_private && p->public_key == id->public_key) {
      remove_peer_locked(p);
      continue;
    }
    std::lock_guard pl(p->mu);
    zero_keys(*p);
    p->hs.precompute(*id);
  }
}

bool Device::table_copies_agree() const {
  std::lock_guard lock(config_mu_);
  return tables_[0]->table.entries() == tables_[1]->table.entries() &&
         allowed_.load().get() == &tables_[front_]->table;
}

int Device::apply(const control::ConfigChange& change, std::string* err) {
  proto::aead::ForgetThreadKeyOnExit forget;  // the caller's thread keeps no session key after
  std::lock_guard lock(config_mu_);
  // Everything that can fail is decided before anything changes: the plan (limits, prefixes,
  // including a bad family)
  // edits only the writer's copy of the table and undoes itself on failure; the rebind, the
  // one step that can still fail, comes next and undoes the plan when it does.
  ChangePlan plan;
  if (int rc = plan_change(change, &plan, err)) return rc;
  if (change.listen_port && *change.listen_port != udp_.port()) {
    int rc = udp_.rebind(*change.listen_port);
    if (rc < 0) {
      undo(plan.log);
      if (err) *err = "cannot bind listen port " + std::to_string(*change.listen_port);
      return -rc;
    }
    if (observer_) observer_->listen_port_changed(udp_.port());
  }
  if (change.fwmark) {
    fwmark_ = *change.fwmark;
    udp_.set_fwmark(fwmark_);
  }
  // Setting the key it already has is a no-op (kernel netlink.c skip_set_private_key): every
  // `wg syncconf` sends the private key, and must not force new handshakes.
  if (change.private_key && !change.private_key->equals(identity_.load()->private_key))
    change_identity(*change.private_key);
  if (change.replace_peers) {
    std::vector<std::shared_ptr<Peer>> all = all_peers();
    for (auto& p : all) remove_peer_locked(p);
  }
  for (size_t i = 0; i < change.peers.size(); ++i) apply_peer(change.peers[i], plan.new_ids[i]);
  publish(plan.log);
  return 0;
}

}  // namespace xsktun::device
