// The WireGuard device: peers, sessions and the protocol engine, on top of the batched I/O
// interfaces. It owns no threads: the daemon's loops (device/runner.h) or a test call
// process_tun / process_udp / process_handshakes / tick, with a clock that may be fake.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "xsktun/common/sharded_map.h"
#include "xsktun/control/config.h"
#include "xsktun/device/counters.h"
#include "xsktun/io/packet_io.h"
#include "xsktun/protocol/cookie.h"
#include "xsktun/protocol/keypair.h"
#include "xsktun/protocol/noise.h"
#include "xsktun/protocol/ratelimiter.h"
#include "xsktun/protocol/timers.h"
#include "xsktun/routing/allowed_ips.h"
#include "xsktun_shared.h"

namespace xsktun::device {

using proto::Nanos;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Nanos now() const = 0;      // monotonic
  virtual timespec wall() const = 0;  // CLOCK_REALTIME, for TAI64N and "latest handshake"
};
class SystemClock : public Clock {
 public:
  Nanos now() const override;
  timespec wall() const override;
};

// Inner packets waiting for a keypair, oldest first. A vector with a moving head instead of a
// std::deque, which allocates ~600 bytes per peer up front: 60 MB for 100,000 idle peers.
class StagedQueue {
 public:
  bool empty() const { return head_ == q_.size(); }
  size_t size() const { return q_.size() - head_; }
  std::vector<uint8_t>& front() { return q_[head_]; }
  void push_back(std::vector<uint8_t> pkt) { q_.push_back(std::move(pkt)); }
  void pop_front() {
    q_[head_++] = {};
    if (head_ == q_.size())
      clear();
    else if (head_ > 32 && head_ * 2 > q_.size())
      q_.erase(q_.begin(), q_.begin() + static_cast<long>(head_)), head_ = 0;
  }
  void clear() {
    q_ = {};  // frees the storage too: an idle peer holds none
    head_ = 0;
  }

 private:
  std::vector<std::vector<uint8_t>> q_;
  size_t head_ = 0;
};

struct Peer {
  uint32_t id = 0;  // routing::PeerId
  Key public_key{};
  std::atomic<uint64_t> rx_bytes{0}, tx_bytes{0};
  std::atomic<int64_t> last_handshake_sec{0}, last_handshake_nsec{0};

  std::mutex mu;  // everything below
  proto::Handshake hs;
  proto::CookieMaker cookie;
  proto::PeerTimers timers;
  proto::Keypairs keypairs;
  Endpoint endpoint;
  uint16_t persistent_keepalive = 0;
  StagedQueue staged;  // inner packets waiting for a keypair
  bool removed = false;

  explicit Peer(uint64_t seed) : timers(seed) {}
};

// What an index in receiver_index names: a peer's pending handshake or one of its keypairs.
struct IndexEntry {
  std::shared_ptr<Peer> peer;
  std::shared_ptr<proto::Keypair> keypair;  // null for a handshake index
};

// Told about every change the XDP maps mirror (sessions, peers, allowed IPs). Called outside
// the device's index and peer-table locks; implementations must be thread-safe.
class DeviceObserver {
 public:
  virtual ~DeviceObserver() = default;
  virtual void session_added(uint32_t index, uint32_t peer_id) = 0;
  virtual void session_removed(uint32_t index) = 0;
  virtual void peer_updated(uint32_t peer_id, const Key& public_key, const Endpoint& endpoint) = 0;
  virtual void peer_removed(uint32_t peer_id) = 0;
  // The prefixes whose owner changed, each once (the net effect of one configuration change;
  // set_observer replays the whole table this way).
  virtual void allowed_ips_changed(std::span<const routing::PrefixChange> delta) = 0;
  // The UDP port the device listens on, after a successful rebind (and on set_observer).
  virtual void listen_port_changed(uint16_t port) = 0;
};

// Configuration limits, by default the BPF maps' sizes (bpf/xsktun_shared.h) in both modes, so
// XDP mode's maps always hold the whole configuration. A change past one is refused whole.
struct Limits {
  size_t peers = XSKTUN_MAX_PEERS;
  size_t allowed_ips_v4 = XSKTUN_MAX_ALLOWED_IPS;
  size_t allowed_ips_v6 = XSKTUN_MAX_ALLOWED_IPS;
};

// One worker's own I/O (device/runner.h): the TUN queue it reads and writes, the UDP side (a
// socket of an SO_REUSEPORT group, or its AF_XDP queue) it receives from and sends on, and its
// counters. The data path touches only these, the peer and keypair of each run of packets,
// and the published allowed-IPs snapshot.
struct Lane {
  io::TunIo& tun;
  io::UdpIo& udp;
  Counters& counters;
};

class Device {
 public:
  Device(io::TunIo& tun, io::UdpIo& udp, const Clock& clock);
  ~Device();

  // Applies a change atomically: either all of it or (on error) none. Returns 0 or an errno
  // (ENOSPC: past a limit; EINVAL: a bad prefix; the bind's error for a listen port in use).
  int apply(const control::ConfigChange& change, std::string* err);
  // Tests: whether the two copies of the allowed-IPs table are equal (device_config.cpp).
  bool table_copies_agree() const;
  // Lower limits for tests (before any peer exists).
  void set_limits(const Limits& l) { limits_ = l; }
  const Limits& limits() const { return limits_; }
  control::DeviceSnapshot snapshot() const;
  // The device's own counters (control plane, and the data path through the default lane).
  const Counters& counters() const { return counters_; }
  Counters& counters() { return counters_; }
  // A new set of counters for a worker's Lane, owned by the device (so `show` can sum it for
  // as long as the device lives). Call before the workers start.
  Counters& add_lane_counters();
  size_t lane_count() const;
  // Lane i's counters (i < lane_count()).
  const Counters& lane_counters(size_t i) const;
  Counters& lane_counters(size_t i);
  // counters() plus every lane's: what `show` prints.
  CounterValues totals() const;

  // Outbound: inner packets read from the TUN. Encrypted messages go out via udp.send_batch.
  // `bufs` must have kDataHeaderLen bytes of headroom before each data pointer.
  void process_tun(std::span<io::PacketBuf> bufs) { process_tun(bufs, default_lane_); }
  // The same through a worker's own TUN queue, UDP side and counters.
  void process_tun(std::span<io::PacketBuf> bufs, const Lane& lane);
  // Inbound: datagrams received on the UDP side. Data is decrypted in place and written to the
  // TUN; handshake messages are queued for process_handshakes (bounded).
  void process_udp(std::span<io::PacketBuf> bufs) { process_udp(bufs, default_lane_); }
  void process_udp(std::span<io::PacketBuf> bufs, const Lane& lane);
  // Handles queued handshake messages. Returns how many were handled.
  size_t process_handshakes();
  // Fires the timers that are due (device_timers.cpp: a heap of per-peer wakeups, no walk over
  // the peers). Returns when to call it next: the earliest wakeup, at most 1 s away.
  Nanos tick();
  // For the timer thread: sleeps until `until` (a clock_ time), or until an earlier wakeup is
  // scheduled or wake_timers() is called.
  void wait_timers(Nanos until);
  void wake_timers();
  // Wakeups in the heap (tests, diagnostics): with idle peers, one per armed peer at most.
  size_t pending_timers() const;

  struct TimerEntry {
    Nanos when;
    std::weak_ptr<Peer> peer;
  };
  // Drops all sessions and stops timers (device going down).
  void shutdown();

  size_t mtu() const { return tun_.mtu(); }
  // Installs the observer (before traffic starts) and replays the current state into it.
  void set_observer(DeviceObserver* obs);
  size_t peer_count() const;
  // For the daemon: blocks until a handshake is queued or timeout; true if work is pending.
  bool wait_handshakes(Nanos timeout);
  void wake_handshakes();

 private:
  struct QueuedHandshake {
    std::vector<uint8_t> bytes;
    Endpoint src;
  };

  // device_handshake.cpp
  void handle_handshake(const QueuedHandshake& q, bool under_load);
  void handle_initiation(const proto::MessageInitiation& msg, const Endpoint& src);
  void handle_response(const proto::MessageResponse& msg, const Endpoint& src);
  void handle_cookie_reply(const proto::MessageCookieReply& msg);
  void send_initiation(Peer& p, bool is_retry);               // p.mu held
  void send_keepalive(Peer& p);                               // p.mu held
  void flush_staged(Peer& p);                                 // p.mu held
  void install_keypair(Peer& p, std::shared_ptr<Peer> self);  // p.mu held; derives from p.hs
  void zero_keys(Peer& p);                                    // p.mu held
  void handle_timer_actions(Peer& p, proto::TimerActions a);  // p.mu held
  void send_to(Peer& p, uint8_t* data, size_t len);           // p.mu held
  bool under_load();
  // device_timers.cpp
  void schedule(std::weak_ptr<Peer> peer, Nanos when);
  void watch_timers(const std::shared_ptr<Peer>& p);  // before the peer's first timer event

  // device.cpp
  uint32_t new_index(std::shared_ptr<Peer> peer, std::shared_ptr<proto::Keypair> kp);
  void free_index(uint32_t index);
  void free_keypair_index(const std::shared_ptr<proto::Keypair>& kp);
  std::shared_ptr<Peer> find_peer(const Key& pub) const;
  std::shared_ptr<Peer> peer_by_id(uint32_t id) const;
  std::vector<std::shared_ptr<Peer>> all_peers() const;  // a copy of the peer list
  std::shared_ptr<Peer> create_peer(const Key& pub, uint32_t id);
  void remove_peer_locked(const std::shared_ptr<Peer>& p);  // config_mu_ held

  // device_config.cpp (config_mu_ held throughout)
  struct ChangePlan {
    std::vector<std::optional<uint32_t>> new_ids;  // per change.peers[i]: the id it creates with
    std::vector<routing::PrefixChange> log;        // edits made to back(), in order
  };
  int plan_change(const control::ConfigChange& change, ChangePlan* plan, std::string* err);
  void edit_remove_peer(uint32_t id, std::vector<routing::PrefixChange>& log);
  bool edit_insert(const Prefix& prefix, uint32_t id, std::vector<routing::PrefixChange>& log);
  void undo(const std::vector<routing::PrefixChange>& log);
  void publish(const std::vector<routing::PrefixChange>& log);
  void apply_peer(const control::PeerChange& pc, std::optional<uint32_t> new_id);
  void change_identity(const SecretKey& key);

  // device_data.cpp
  struct SentRun {  // out[begin, end) were sealed for peer
    std::shared_ptr<Peer> peer;
    size_t begin, end;
  };
  void receive_run(std::span<io::PacketBuf> run, const routing::AllowedIps& table,
                   std::vector<io::PacketBuf>& to_tun, Counters& c);
  // Bookkeeping after packets of `p` authenticated with `kp` (the last from `from`): keypair
  // confirmation, roaming, timers. False if the peer was removed meanwhile.
  bool authenticated_from(Peer& p, const std::shared_ptr<proto::Keypair>& kp, const Endpoint& from, bool data,
                          Nanos now);
  void queue_handshake(const io::PacketBuf& b);
  // Under load, in the receive thread: drops bad mac1, answers a missing mac2 with a cookie reply
  // (appended to `replies`), so only messages with a valid cookie reach the queue. False: queue it.
  bool screen_handshake(const io::PacketBuf& b, std::vector<proto::MessageCookieReply>& replies, bool load,
                        Counters& c);
  void send_cookie_replies(std::vector<proto::MessageCookieReply>& replies, const std::vector<Endpoint>& to,
                           const Lane& lane);
  void send_run(Peer& p, std::span<io::PacketBuf> run, std::vector<io::PacketBuf>& out, Nanos now,
                Counters& c);
  void stage(Peer& p, std::span<io::PacketBuf> run, Counters& c);  // p.mu held
  void drop_staged(Peer& p, Counter why);                          // p.mu held; counted as `why`
  bool validate_inner(const uint8_t* pkt, size_t* len);

  io::TunIo& tun_;
  io::UdpIo& udp_;
  const Clock& clock_;
  Counters counters_;
  Lane default_lane_{tun_, udp_, counters_};
  mutable std::mutex lanes_mu_;
  std::vector<std::unique_ptr<Counters>> lane_counters_;

  mutable std::mutex config_mu_;  // serializes apply(), identity changes, peer set changes
  // Published like the allowed-IPs table: readers load a snapshot, so taking it never orders
  // against a peer's lock; a replaced identity is wiped when its last reader lets go.
  std::atomic<std::shared_ptr<const proto::StaticIdentity>> identity_;
  proto::CookieChecker cookie_checker_;
  proto::HandshakeRateLimiter ratelimiter_;
  // Cookie replies per source under load: a flood must not turn the receive thread into a
  // cookie factory that starves the data messages behind it (see screen_handshake).
  proto::HandshakeRateLimiter cookie_limiter_;
  uint32_t fwmark_ = 0;
  Limits limits_;

  // Writers change both peer maps under peers_mu_; the workers' lookup by id (once per run)
  // takes only its shard's lock, so workers serving different peers share no lock line.
  mutable std::shared_mutex peers_mu_;
  ShardedMap<uint32_t, std::shared_ptr<Peer>> peers_by_id_;
  std::unordered_map<std::string, std::shared_ptr<Peer>> peers_by_key_;  // key bytes as string
  uint32_t next_peer_id_ = 1;

  // Receiver index -> session or handshake: looked up once per received run, by every worker.
  ShardedMap<uint32_t, IndexEntry> index_;

  // The allowed-IPs table, twice (device_config.cpp): readers load allowed_ (the front copy)
  // once per batch; apply() edits the back copy and swaps. tables_/front_ only under config_mu_.
  struct TableCopy {
    routing::AllowedIps table;
    std::atomic<bool> released{true};  // no reader holds it (set by the published deleter)
  };
  std::array<std::unique_ptr<TableCopy>, 2> tables_;
  size_t front_ = 0;
  routing::AllowedIps& back() { return tables_[1 - front_]->table; }
  void publish_copy(TableCopy& copy);
  // Declared after tables_: destroyed first, so its deleter never outlives the copies.
  std::atomic<std::shared_ptr<const routing::AllowedIps>> allowed_;
  DeviceObserver* observer_ = nullptr;

  mutable std::mutex timer_mu_;  // the three below
  std::condition_variable timer_cv_;
  std::vector<TimerEntry> timer_heap_;  // min-heap by `when`
  bool timer_wake_ = false;
  Nanos last_gc_ = 0;  // timer thread only

  std::mutex hs_queue_mu_;
  std::condition_variable hs_queue_cv_;
  std::deque<QueuedHandshake> hs_queue_;
  // Read by the receive threads too (screen_handshake).
  std::atomic<Nanos> last_under_load_{0};
  std::atomic<bool> was_under_load_{false};
};

}  // namespace xsktun::device
