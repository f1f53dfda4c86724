// Handshake messages, session installation and timers (whitepaper 5.4, 6; kernel receive.c,
// send.c and timers.c for the order of events).
#include <cstring>

#include "xsktun/device/device.h"
#include "xsktun/protocol/crypto.h"

namespace xsktun::device {

using namespace proto;

bool Device::under_load() {
  // Kernel receive.c: under load while the queue is 1/8 full, and for a second after.
  Nanos now = clock_.now();
  size_t depth;
  {
    std::lock_guard lock(hs_queue_mu_);
    depth = hs_queue_.size();
  }
  if (depth >= static_cast<size_t>(kMaxQueuedIncomingHandshakes) / 8) {
    last_under_load_.store(now, std::memory_order_relaxed);
    was_under_load_.store(true, std::memory_order_relaxed);
    return true;
  }
  return was_under_load_.load(std::memory_order_relaxed) &&
         now - last_under_load_.load(std::memory_order_relaxed) < kSecond;
}

bool Device::wait_handshakes(Nanos timeout) {
  std::unique_lock lock(hs_queue_mu_);
  return hs_queue_cv_.wait_for(lock, std::chrono::nanoseconds(timeout), [&] { return !hs_queue_.empty(); });
}

void Device::wake_handshakes() { hs_queue_cv_.notify_all(); }

size_t Device::process_handshakes() {
  size_t handled = 0;
  for (;;) {
    bool load = under_load();
    QueuedHandshake q;
    {
      std::lock_guard lock(hs_queue_mu_);
      if (hs_queue_.empty()) break;
      q = std::move(hs_queue_.front());
      hs_queue_.pop_front();
    }
    handle_handshake(q, load);
    ++handled;
  }
  return handled;
}

void Device::handle_handshake(const QueuedHandshake& q, bool load) {
  const uint8_t* buf = q.bytes.data();
  MessageType type = classify(buf, q.bytes.size());
  Nanos now = clock_.now();
  if (type == kMessageHandshakeCookie) {
    MessageCookieReply reply;
    std::memcpy(&reply, buf, sizeof reply);
    handle_cookie_reply(reply);
    return;
  }
  // Whitepaper 5.3: mac1 always; under load, a valid mac2 (a cookie for this source) is
  // required, and sources without one get a cookie reply instead of a handshake.
  MacState mac = cookie_checker_.validate(buf, q.bytes.size(), q.src, now);
  if (mac == MacState::kInvalid) {
    counters_.add(Counter::drop_bad_mac);
    return;
  }
  if (load) {
    if (mac != MacState::kValidWithCookie) {
      uint32_t sender;
      std::memcpy(&sender, buf + 4, 4);
      MessageCookieReply reply;
      cookie_checker_.create_reply(&reply, buf, q.bytes.size(), le32(sender), q.src, now);
      io::PacketBuf out{reinterpret_cast<uint8_t*>(&reply), sizeof reply, sizeof reply, q.src};
      if (udp_.send_batch(std::span(&out, 1)) == 1) counters_.add(Counter::cookie_replies_tx);
      return;
    }
    if (!ratelimiter_.allow(q.src.addr, now)) {
      counters_.add(Counter::drop_handshake_ratelimited);
      return;
    }
    // Proof for the DoS test (tests/netns/flood.sh) that a peer got through by the cookie path.
    counters_.add(Counter::handshake_mac2_ok);
  }
  if (type == kMessageHandshakeInitiation) {
    MessageInitiation msg;
    std::memcpy(&msg, buf, sizeof msg);
    handle_initiation(msg, q.src);
  } else {
    MessageResponse msg;
    std::memcpy(&msg, buf, sizeof msg);
    handle_response(msg, q.src);
  }
}

void Device::handle_initiation(const MessageInitiation& msg, const Endpoint& src) {
  counters_.add(Counter::handshake_initiations_rx);
  Nanos now = clock_.now();
  std::shared_ptr<Peer> peer;
  auto lookup = [&](const Key& k) -> Handshake* {
    peer = find_peer(k);
    if (!peer) return nullptr;
    peer->mu.lock();  // released below: the handshake state is written under the peer's lock
    return &peer->hs;
  };
  Handshake* hs = nullptr;
  HandshakeError e;
  {
    auto id = identity_.load();
    e = consume_initiation(msg, *id, lookup, now, &hs);
    if (peer) {
      std::unique_lock pl(peer->mu, std::adopt_lock);
      if (e == HandshakeError::kOk && !peer->removed) {
        peer->endpoint = src;
        peer->rx_bytes.fetch_add(sizeof msg, std::memory_order_relaxed);
        uint32_t idx = new_index(peer, nullptr);
        MessageResponse resp;
        free_index(peer->hs.local_index);  // a previous handshake index of ours is superseded
        if (create_response(&resp, peer->hs, *id, idx) == HandshakeError::kOk) {
          peer->cookie.add_macs(reinterpret_cast<uint8_t*>(&resp), sizeof resp, now);
          install_keypair(*peer, peer);  // the keypair takes over idx
          send_to(*peer, reinterpret_cast<uint8_t*>(&resp), sizeof resp);
          counters_.add(Counter::handshake_responses_tx);
          peer->timers.handshake_response_sent(now);
          peer->timers.any_authenticated_packet_received(now);
          peer->timers.any_authenticated_packet_traversal(now);
          peer->timers.any_authenticated_packet_sent(now);
        } else {
          free_index(idx);
        }
        return;
      }
    }
  }
  if (e == HandshakeError::kStaleTimestamp)
    counters_.add(Counter::drop_handshake_replay);
  else if (e == HandshakeError::kFlood)
    counters_.add(Counter::drop_handshake_flood);
  else
    counters_.add(Counter::drop_handshake_failed);
}

void Device::handle_response(const MessageResponse& msg, const Endpoint& src) {
  counters_.add(Counter::handshake_responses_rx);
  Nanos now = clock_.now();
  auto entry = index_.find(le32(msg.receiver_index));
  std::shared_ptr<Peer> peer = entry && !entry->keypair ? entry->peer : nullptr;
  if (!peer) {
    counters_.add(Counter::drop_unknown_index);
    return;
  }
  auto id = identity_.load();
  std::lock_guard pl(peer->mu);
  if (peer->removed || consume_response(msg, *id, peer->hs) != HandshakeError::kOk) {
    counters_.add(Counter::drop_handshake_failed);
    return;
  }
  peer->endpoint = src;
  peer->rx_bytes.fetch_add(sizeof msg, std::memory_order_relaxed);
  free_index(peer->hs.local_index);
  install_keypair(*peer, peer);
  peer->timers.any_authenticated_packet_received(now);
  peer->timers.any_authenticated_packet_traversal(now);
  peer->timers.handshake_complete(now);
  timespec w = clock_.wall();
  peer->last_handshake_sec = w.tv_sec;
  peer->last_handshake_nsec = w.tv_nsec;
  counters_.add(Counter::handshakes_completed);
  // Kernel send.c: the initiator confirms the session at once, with staged data or a keepalive.
  if (peer->staged.empty())
    send_keepalive(*peer);
  else
    flush_staged(*peer);
}

void Device::handle_cookie_reply(const MessageCookieReply& msg) {
  counters_.add(Counter::cookie_replies_rx);
  auto entry = index_.find(le32(msg.receiver_index));
  std::shared_ptr<Peer> peer = entry ? entry->peer : nullptr;
  if (!peer) {
    counters_.add(Counter::drop_unknown_index);
    return;
  }
  std::lock_guard pl(peer->mu);
  if (!peer->cookie.consume_reply(msg, clock_.now())) counters_.add(Counter::drop_cookie_invalid);
}

void Device::install_keypair(Peer& p, std::shared_ptr<Peer> self) {
  SessionKeys keys;
  uint32_t hs_index = p.hs.local_index;
  if (!derive_session(p.hs, &keys)) return;
  auto kp = std::make_shared<Keypair>(keys, clock_.now());
  // The keypair takes over the handshake's index: the peer answers data to it.
  index_.assign(hs_index, IndexEntry{self, kp});
  if (observer_) observer_->session_added(hs_index, self->id);
  auto dropped = p.keypairs.add(kp);
  free_keypair_index(dropped.a);
  free_keypair_index(dropped.b);
  p.hs.local_index = 0;
  p.timers.session_derived(clock_.now());
}

void Device::zero_keys(Peer& p) {
  for (auto& kp : p.keypairs.clear()) free_keypair_index(kp);
  free_index(p.hs.local_index);
  p.hs.local_index = 0;
  p.hs.clear();
}

void Device::send_to(Peer& p, uint8_t* data, size_t len) {
  if (!p.endpoint.valid()) {
    counters_.add(Counter::drop_no_endpoint);
    return;
  }
  io::PacketBuf out{data, len, len, p.endpoint};
  if (udp_.send_batch(std::span(&out, 1)) != 1)
    counters_.add(Counter::drop_udp_send);
  else
    p.tx_bytes.fetch_add(len, std::memory_order_relaxed);  // like the kernel: every message
}

void Device::send_initiation(Peer& p, bool is_retry) {
  Nanos now = clock_.now();
  if (!is_retry && !p.timers.request_handshake(now)) return;
  if (is_retry && !p.timers.may_send_initiation(now)) return;
  if (!p.endpoint.valid()) {
    counters_.add(Counter::drop_no_endpoint);
    return;
  }
  auto id = identity_.load();
  free_index(p.hs.local_index);
  uint32_t idx = new_index(find_peer(p.public_key), nullptr);
  uint8_t ts[kTimestampLen];
  timespec w = clock_.wall();
  tai64n(ts, w.tv_sec, static_cast<uint32_t>(w.tv_nsec));
  MessageInitiation msg;
  if (create_initiation(&msg, p.hs, *id, idx, ts) != HandshakeError::kOk) {
    // No private key, or a low-order peer key: never send anything to it.
    free_index(idx);
    p.hs.local_index = 0;
    return;
  }
  p.cookie.add_macs(reinterpret_cast<uint8_t*>(&msg), sizeof msg, now);
  send_to(p, reinterpret_cast<uint8_t*>(&msg), sizeof msg);
  counters_.add(Counter::handshake_initiations_tx);
  p.timers.handshake_initiated(now);
  p.timers.any_authenticated_packet_traversal(now);
  p.timers.any_authenticated_packet_sent(now);
}

void Device::send_keepalive(Peer& p) {
  Nanos now = clock_.now();
  auto kp = p.keypairs.current();
  if (!kp || !kp->can_send(now)) {
    send_initiation(p, false);
    return;
  }
  uint8_t msg[kDataOverhead];
  if (seal(*kp, nullptr, 0, mtu(), msg, now) == 0) return;
  send_to(p, msg, sizeof msg);
  counters_.add(Counter::keepalives_tx);
  counters_.add(Counter::tx_packets);
  p.timers.any_authenticated_packet_sent(now);
  p.timers.any_authenticated_packet_traversal(now);
}

void Device::flush_staged(Peer& p) {
  Nanos now = clock_.now();
  auto kp = p.keypairs.current();
  if (!kp || !kp->can_send(now)) {
    send_initiation(p, false);
    return;
  }
  while (!p.staged.empty()) {
    auto& pkt = p.staged.front();
    size_t inner = pkt.size() - kDataHeaderLen;
    pkt.resize(sealed_len(inner, mtu()));
    size_t n = seal(*kp, pkt.data() + kDataHeaderLen, inner, mtu(), pkt.data(), now);
    if (n == 0) break;
    send_to(p, pkt.data(), n);
    counters_.add(Counter::tx_packets);
    counters_.add(Counter::tx_bytes, inner);
    p.staged.pop_front();
  }
  p.timers.data_sent(now);
  p.timers.any_authenticated_packet_sent(now);
  p.timers.any_authenticated_packet_traversal(now);
}

void Device::drop_staged(Peer& p, Counter why) {
  counters_.add(why, p.staged.size());
  p.staged.clear();
}

void Device::handle_timer_actions(Peer& p, TimerActions a) {
  if (a.has(TimerAction::kZeroKeys)) zero_keys(p);
  if (a.has(TimerAction::kDropStaged)) {
    drop_staged(p, Counter::drop_staged_expired);
  }
  if (a.has(TimerAction::kSendInitiation)) send_initiation(p, true);
  if (a.has(TimerAction::kSendKeepalive)) send_keepalive(p);
}

}  // namespace xsktun::device
