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
      tables_{std::make_unique<TableCopy>(), std::make_unique<TableCopy>()} {
  publish_copy(*tables_[front_]);
  proto::crypto::init();
}

Device::~Device() { shutdown(); }

Counters& Device::add_lane_counters() {
  std::lock_guard lock(lanes_mu_);
  return *lane_counters_.emplace_back(std::make_unique<Counters>());
}

size_t Device::lane_count() const {
  std::lock_guard lock(lanes_mu_);
  return lane_counters_.size();
}

const Counters& Device::lane_counters(size_t i) const {
  std::lock_guard lock(lanes_mu_);
  return *lane_counters_.at(i);
}

Counters& Device::lane_counters(size_t i) {
  std::lock_guard lock(lanes_mu_);
  return *lane_counters_.at(i);
}

CounterValues Device::totals() const {
  CounterValues out;
  counters_.add_to(out);
  std::lock_guard lock(lanes_mu_);
  for (const auto& c : lane_counters_) c->add_to(out);
  return out;
}

size_t Device::peer_count() const {
  std::shared_lock lock(peers_mu_);
  return peers_by_key_.size();
}

std::shared_ptr<Peer> Device::find_peer(const Key& pub) const {
  std::shared_lock lock(peers_mu_);
  auto it = peers_by_key_.find(key_str(pub));
  return it == peers_by_key_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Peer>> Device::all_peers() const {
  std::shared_lock lock(peers_mu_);
  std::vector<std::shared_ptr<Peer>> all;
  all.reserve(peers_by_key_.size());
  for (const auto& [key, p] : peers_by_key_) all.push_back(p);
  return all;
}

std::shared_ptr<Peer> Device::peer_by_id(uint32_t id) const {
  return peers_by_id_.find(id).value_or(nullptr);
}

uint32_t Device::new_index(std::shared_ptr<Peer> peer, std::shared_ptr<proto::Keypair> kp) {
  // Random indices (whitepaper 5.4.2) so they reveal nothing; retry on the rare collision.
  for (;;) {
    uint32_t idx = proto::crypto::random_u32();
    if (idx != 0 && index_.insert(idx, IndexEntry{peer, kp})) return idx;
  }
}

void Device::free_index(uint32_t index) {
  if (index == 0) return;
  auto entry = index_.find(index);
  if (!entry) return;
  // XDP must stop steering to the index before userspace forgets it.
  if (entry->keypair && observer_) observer_->session_removed(index);
  index_.erase(index);
}

void Device::set_observer(DeviceObserver* obs) {
  std::lock_guard lock(config_mu_);
  observer_ = obs;
  if (!obs) return;
  obs->listen_port_changed(udp_.port());
  std::vector<std::shared_ptr<Peer>> all = all_peers();
  for (auto& p : all) {
    std::lock_guard pl(p->mu);
    obs->peer_updated(p->id, p->public_key, p->endpoint);
  }
  std::vector<std::pair<uint32_t, uint32_t>> sessions;
  index_.for_each([&](uint32_t idx, const IndexEntry& e) {
    if (e.keypair) sessions.emplace_back(idx, e.peer->id);
  });
  for (auto& [idx, pid] : sessions) obs->session_added(idx, pid);
  std::vector<routing::PrefixChange> table;
  for (auto& [prefix, peer] : tables_[front_]->table.entries()) table.push_back({prefix, std::nullopt, peer});
  obs->allowed_ips_changed(table);
}

void Device::free_keypair_index(const std::shared_ptr<proto::Keypair>& kp) {
  if (kp) free_index(kp->local_index);
}

std::shared_ptr<Peer> Device::create_peer(const Key& pub, uint32_t id) {
  auto p =
      std::make_shared<Peer>(proto::crypto::random_u32() | (uint64_t{proto::crypto::random_u32()} << 32));
  p->public_key = pub;
  p->hs.remote_static = pub;
  p->hs.precompute(*identity_.load());
  p->cookie.set_remote_public_key(pub);
  watch_timers(p);
  std::unique_lock lock(peers_mu_);
  p->id = id;  // the id the change's plan gave it (device_config.cpp)
  next_peer_id_ = id + 1;
  peers_by_id_.assign(p->id, p);
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
  drop_staged(*p, Counter::drop_no_route);  // waiting for a handshake that won't come
  if (observer_) observer_->peer_removed(p->id);
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
  std::vector<std::shared_ptr<Peer>> all = all_peers();
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a->id < b->id; });
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
    ps.allowed_ips = table->prefixes_of(p->id);  // O(its prefixes): each peer's are chained
    s.peers.push_back(std::move(ps));
  }
  return s;
}

void Device::shutdown() {
  std::vector<std::shared_ptr<Peer>> all = all_peers();
  for (auto& p : all) {
    std::lock_guard pl(p->mu);
    zero_keys(*p);
    p->timers.stop();
    drop_staged(*p, Counter::drop_no_route);
  }
}

}  // namespace xsktun::device
