// Device configuration, peer set, index table and snapshots.
#include "xsktun/device/device.h"

#include <cerrno>
#include <ctime>

#include "xsktun/protocol/crypto.h"

namespace xsktun::device {

namespace {
std::string key_str(const Key& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }
}  // namespace

Nanos SystemClock::now() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * proto::kSecond + ts.tv_nsec;
}

timespec SystemClock::wall() const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

Device::Device(io::TunIo& tun, io::UdpIo& udp, const Clock& clock)
    : tun_(tun),
      udp_(udp),
      clock_(clock),
      identity_(std::make_shared<const proto::StaticIdentity>()),
      allowed_(std::make_shared<const routing::AllowedIps>()) {
  proto::crypto::init();
}

Device::~Device() { shutdown(); }

size_t Device::peer_count() const {
  std::shared_lock lock(peers_mu_);
  return peers_by_id_.size();
}

std::shared_ptr<Peer> Device::find_peer(const Key& pub) const {
  std::shared_lock lock(peers_mu_);
  auto it = peers_by_key_.find(key_str(pub));
  return it == peers_by_key_.end() ? nullptr : it->second;
}

std::shared_ptr<Peer> Device::peer_by_id(uint32_t id) const {
  std::shared_lock lock(peers_mu_);
  auto it = peers_by_id_.find(id);
  return it == peers_by_id_.end() ? nullptr : it->second;
}

uint32_t Device::new_index(std::shared_ptr<Peer> peer, std::shared_ptr<proto::Keypair> kp) {
  std::unique_lock lock(index_mu_);
  // Random indices (whitepaper 5.4.2) so they reveal nothing; retry on the rare collision.
  for (;;) {
    uint32_t idx = proto::crypto::random_u32();
    if (idx == 0 || index_.count(idx)) continue;
    index_.emplace(idx, IndexEntry{std::move(peer), std::move(kp)});
    return idx;
  }
}

void Device::free_index(uint32_t index) {
  if (index == 0) return;
  bool was_session = false;
  {
    std::shared_lock lock(index_mu_);
    auto it = index_.find(index);
    if (it == index_.end()) return;
    was_session = it->second.keypair != nullptr;
  }
  // XDP must stop steering to the index before userspace forgets it.
  if (was_session && observer_) observer_->session_removed(index);
  std::unique_lock lock(index_mu_);
  index_.erase(index);
}

void Device::set_observer(DeviceObserver* obs) {
  std::lock_guard lock(config_mu_);
  observer_ = obs;
  if (!obs) return;
  std::vector<std::shared_ptr<Peer>> all;
  {
    std::shared_lock lock2(peers_mu_);
    for (auto& [id, p] : peers_by_id_) all.push_back(p);
  }
  for (auto& p : all) {
    std::lock_guard pl(p->mu);
    obs->peer_updated(p->id, p->public_key, p->endpoint);
  }
  std::vector<std::pair<uint32_t, uint32_t>> sessions;
  {
    std::shared_lock lock2(index_mu_);
    for (auto& [idx, e] : index_)
      if (e.keypair) sessions.emplace_back(idx, e.peer->id);
  }
  for (auto& [idx, pid] : sessions) obs->session_added(idx, pid);
  obs->allowed_ips_changed(*allowed_.load());
}

void Device::free_keypair_index(const std::shared_ptr<proto::Keypair>& kp) {
  if (kp) free_index(kp->local_index);
}

std::shared_ptr<Peer> Device::create_peer(const Key& pub) {
  auto p = std::make_shared<Peer>(proto::crypto::random_u32() | (uint64_t{proto::crypto::random_u32()} << 32));
  p->public_key = pub;
  p->hs.remote_static = pub;
  p->hs.precompute(*identity_.load());
  p->cookie.set_remote_public_key(pub);
  watch_timers(p);
  std::unique_lock lock(peers_mu_);
  p->id = next_peer_id_++;
  peers_by_id_[p->id] = p;
  peers_by_key_[key_str(pub)] = p;
  return p;
}

void Device::remove_peer_locked(const std::shared_ptr<Peer>& p) {
  {
    std::unique_lock lock(peers_mu_);
    peers_by_id_.erase(p->id);
    peers_by_key_.erase(key_str(p->public_key));
  }
  std::lock_guard pl(p->mu);
  p->removed = true;
  zero_keys(*p);
  p->timers.stop();
  p->staged.clear();
  if (observer_) observer_->peer_removed(p->id);
}

void Device::publish_allowed(std::shared_ptr<const routing::AllowedIps> t) {
  if (observer_) observer_->allowed_ips_changed(*t);
  allowed_.store(std::move(t));
}

int Device::apply_peer(const control::PeerChange& pc, routing::AllowedIps& table) {
  auto p = find_peer(pc.public_key);
  if (pc.remove) {
    if (p) {
      table.remove_by_peer(p->id);
      remove_peer_locked(p);
    }
    return 0;
  }
  bool created = false;
  if (!p) {
    if (pc.update_only) return 0;
    // A peer with our own public key makes no sense (wireguard-go ignores it too).
    auto id = identity_.load();
    if (id->has_private && id->public_key == pc.public_key) return 0;
    if (peer_count() >= limits_.peers) return ENOSPC;  // check_change refuses this first
    p = create_peer(pc.public_key);
    created = true;
  }
  bool send_keepalive_now = false;
  {
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
  // A new peer owns nothing yet; skipping the walk keeps adding N peers linear in N (remove_by_peer
  // walks the whole table).
  if (pc.replace_allowed_ips && !created) table.remove_by_peer(p->id);
  for (const auto& prefix : pc.allowed_ips)
    if (!table.insert(prefix, p->id)) return EINVAL;
  return 0;
}

int Device::apply(const control::ConfigChange& change, std::string* err) {
  std::lock_guard lock(config_mu_);
  // Everything that can fail is checked before anything changes; the rebind, the one step that
  // can still fail, comes first.
  for (const auto& pc : change.peers)
    for (const auto& prefix : pc.allowed_ips)
      if (prefix.addr.family != AF_INET && prefix.addr.family != AF_INET6) {
        if (err) *err = "bad allowed IP";
        return EINVAL;
      }
  if (int rc = check_change(change, err)) return rc;
  if (change.listen_port && *change.listen_port != udp_.port()) {
    int rc = udp_.rebind(*change.listen_port);
    if (rc < 0) {
      if (err) *err = "cannot bind listen port " + std::to_string(*change.listen_port);
      return -rc;
    }
  }
  if (change.fwmark) {
    fwmark_ = *change.fwmark;
    udp_.set_fwmark(fwmark_);
  }
  // Setting the key it already has is a no-op (kernel netlink.c skip_set_private_key): every
  // `wg syncconf` sends the private key, and must not force new handshakes.
  bool key_changes = change.private_key && !change.private_key->equals(identity_.load()->private_key);
  if (key_changes) {
    auto id = std::make_shared<proto::StaticIdentity>();
    if (!change.private_key->is_zero()) id->set_private(*change.private_key);
    cookie_checker_.set_public_key(id->public_key);
    identity_.store(std::move(id));
  }
  if (key_changes) {
    // A new identity invalidates every session and the precomputed static-static DH; a peer
    // whose key is now our own is removed (wireguard-go does the same).
    std::vector<std::shared_ptr<Peer>> all;
    {
      std::shared_lock lock2(peers_mu_);
      for (auto& [id, p] : peers_by_id_) all.push_back(p);
    }
    for (auto& p : all) {
      auto id = identity_.load();
      if (id->has_private && p->public_key == id->public_key) {
        remove_peer_locked(p);
        continue;
      }
      std::lock_guard pl(p->mu);
      zero_keys(*p);
      p->hs.precompute(*id);
    }
  }
  auto table = std::make_shared<routing::AllowedIps>(*allowed_.load());
  if (change.replace_peers) {
    std::vector<std::shared_ptr<Peer>> all;
    {
      std::shared_lock lock2(peers_mu_);
      for (auto& [id, p] : peers_by_id_) all.push_back(p);
    }
    for (auto& p : all) {
      table->remove_by_peer(p->id);
      remove_peer_locked(p);
    }
  }
  int rc = 0;
  for (const auto& pc : change.peers)
    if ((rc = apply_peer(pc, *table)) != 0) break;
  publish_allowed(std::move(table));
  if (rc && err) *err = "peer change failed";
  return rc;
}

control::DeviceSnapshot Device::snapshot() const {
  control::DeviceSnapshot s;
  {
    std::lock_guard lock(config_mu_);
    auto id = identity_.load();
    if (id->has_private) {
      s.private_key = id->private_key;
      s.public_key = id->public_key;
    }
    s.fwmark = fwmark_;
  }
  s.listen_port = udp_.port();
  auto table = allowed_.load();
  std::vector<std::shared_ptr<Peer>> all;
  {
    std::shared_lock lock(peers_mu_);
    for (auto& [id, p] : peers_by_id_) all.push_back(p);
  }
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a->id < b->id; });
  auto prefixes = table->by_peer();
  for (auto& p : all) {
    control::PeerSnapshot ps;
    ps.public_key = p->public_key;
    ps.rx_bytes = p->rx_bytes.load();
    ps.tx_bytes = p->tx_bytes.load();
    ps.last_handshake_sec = p->last_handshake_sec.load();
    ps.last_handshake_nsec = p->last_handshake_nsec.load();
    {
      std::lock_guard pl(p->mu);
      ps.preshared_key = p->hs.preshared_key;
      if (p->endpoint.valid()) ps.endpoint = p->endpoint;
      ps.persistent_keepalive = p->persistent_keepalive;
    }
    if (auto it = prefixes.find(p->id); it != prefixes.end()) ps.allowed_ips = std::move(it->second);
    s.peers.push_back(std::move(ps));
  }
  return s;
}

void Device::shutdown() {
  std::vector<std::shared_ptr<Peer>> all;
  {
    std::shared_lock lock(peers_mu_);
    for (auto& [id, p] : peers_by_id_) all.push_back(p);
  }
  for (auto& p : all) {
    std::lock_guard pl(p->mu);
    zero_keys(*p);
    p->timers.stop();
    p->staged.clear();
  }
}

}  // namespace xsktun::device
