// The data path: TUN -> encrypt -> UDP and UDP -> decrypt -> TUN (whitepaper 5.4.6; kernel
// send.c and receive.c). Locks are taken per batch or per run of packets of one peer (keypair),
// never per packet, except the replay window's.
#include <arpa/inet.h>

#include <cstring>

#include "xsktun/device/device.h"

namespace xsktun::device {

using namespace proto;

namespace {
constexpr size_t kMaxStaged = kMaxStagedPackets;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
}  // namespace

bool Device::validate_inner(const uint8_t* pkt, size_t* len) {
  // The inner packet must be IPv4 or IPv6 whose length field fits what was decrypted; the
  // padding after it is trimmed (kernel receive.c wg_packet_consume_data_done).
  if (*len >= 20 && (pkt[0] >> 4) == 4) {
    size_t total = be16(pkt + 2);
    if (total < 20 || total > *len || (pkt[0] & 0xf) < 5) return false;
    *len = total;
    return true;
  }
  if (*len >= 40 && (pkt[0] >> 4) == 6) {
    size_t total = 40 + size_t{be16(pkt + 4)};
    if (total > *len) return false;
    *len = total;
    return true;
  }
  return false;
}

void Device::receive_run(std::span<io::PacketBuf> run, const routing::AllowedIps& table,
                         std::vector<io::PacketBuf>& to_tun, Counters& c) {
  // One index lookup, one replay-window lock and one peer lock for a run of messages to the
  // same receiver index; only the AEAD is per packet.
  Nanos now = clock_.now();
  uint32_t receiver;
  std::memcpy(&receiver, run[0].data + 4, 4);
  IndexEntry entry = index_.find(le32(receiver)).value_or(IndexEntry{});
  if (!entry.keypair) {
    c.add(Counter::drop_unknown_index, run.size());
    return;
  }
  // Per packet: plaintext length and counter once authenticated; the replay window then moves
  // over the run's counters under one lock (the window is shared by all receive workers).
  thread_local std::vector<uint32_t> plen;
  thread_local std::vector<uint64_t> counter;
  plen.assign(run.size(), 0);
  counter.assign(run.size(), proto::kReplayed);
  for (size_t i = 0; i < run.size(); ++i) {
    io::PacketBuf& b = run[i];
    size_t n = 0;
    switch (open_unwindowed(*entry.keypair, b.data, b.len, now, &n, &counter[i])) {
      case OpenResult::kOk: plen[i] = static_cast<uint32_t>(n); break;
      case OpenResult::kMalformed: c.add(Counter::drop_malformed); break;
      case OpenResult::kExpired: c.add(Counter::drop_keypair_expired); break;
      case OpenResult::kAuthFailed: c.add(Counter::drop_decrypt); break;
      case OpenResult::kReplay: c.add(Counter::drop_replay); break;
    }
  }
  size_t replayed = accept_counters(*entry.keypair, counter);
  if (replayed) c.add(Counter::drop_replay, replayed);
  size_t ok = 0, last_ok = 0, wire_bytes = 0;
  bool data = false;
  for (size_t i = 0; i < run.size(); ++i) {
    if (counter[i] == proto::kReplayed) continue;
    run[i].authenticated = true;
    data |= plen[i] > 0;
    wire_bytes += run[i].len;
    last_ok = i;
    ++ok;
  }
  if (ok == 0) return;
  Peer& p = *entry.peer;
  c.add(Counter::rx_packets, ok);
  p.rx_bytes.fetch_add(wire_bytes, std::memory_order_relaxed);
  if (!authenticated_from(p, entry.keypair, run[last_ok].endpoint, data, now)) {
    c.add(Counter::drop_unknown_index, ok);  // its peer was removed meanwhile: the session is gone
    return;
  }
  for (size_t i = 0; i < run.size(); ++i) {
    if (counter[i] == proto::kReplayed) continue;
    size_t n = plen[i];
    if (n == 0) {
      c.add(Counter::keepalives_rx);
      continue;
    }
    uint8_t* inner = run[i].data + kDataHeaderLen;
    if (!validate_inner(inner, &n)) {
      c.add(Counter::drop_inner_malformed);
      continue;
    }
    if (!table.source_allowed(p.id, inner, n)) {
      c.add(Counter::drop_disallowed_source);
      continue;
    }
    to_tun.push_back(io::PacketBuf{inner, n, n, {}});
  }
}

bool Device::authenticated_from(Peer& p, const std::shared_ptr<Keypair>& kp, const Endpoint& from, bool data,
                                Nanos now) {
  std::lock_guard pl(p.mu);
  if (p.removed) return false;
  std::shared_ptr<Keypair> dropped;
  if (p.keypairs.received_with(kp.get(), &dropped)) {
    // Responder: the initiator used the new keypair, so the handshake is complete.
    free_keypair_index(dropped);
    p.timers.handshake_complete(now);
    timespec w = clock_.wall();
    p.last_handshake_sec = w.tv_sec;
    p.last_handshake_nsec = w.tv_nsec;
    counters_.add(Counter::handshakes_completed);
    if (!p.staged.empty()) flush_staged(p);
  }
  // Roaming (whitepaper 2.1): the endpoint follows the last authenticated packet.
  if (!(p.endpoint == from)) {
    p.endpoint = from;
    if (observer_) observer_->peer_updated(p.id, p.public_key, p.endpoint);
  }
  p.timers.any_authenticated_packet_received(now);
  p.timers.any_authenticated_packet_traversal(now);
  if (data) p.timers.data_received(now);
  auto cur = p.keypairs.current();
  if (cur.get() == kp.get() && p.timers.want_rekey_on_receive(kp->birthdate, kp->i_am_initiator, now))
    send_initiation(p, false);
  return true;
}

void Device::process_udp(std::span<io::PacketBuf> bufs, const Lane& lane) {
  // Per-thread scratch: no allocation per batch once warmed up.
  thread_local std::vector<io::PacketBuf> to_tun;
  thread_local std::vector<MessageCookieReply> replies;
  thread_local std::vector<Endpoint> reply_to;
  to_tun.clear();
  replies.clear();
  reply_to.clear();
  auto table = allowed_.load(std::memory_order_acquire);
  int load = -1;  // under_load(), asked once per batch and only if a handshake is in it
  for (size_t i = 0; i < bufs.size();) {
    io::PacketBuf& b = bufs[i];
    uint8_t type = classify(b.data, b.len);
    if (type == kMessageData) {
      // A run: consecutive data messages to the same receiver index (a GRO batch from one peer).
      size_t j = i + 1;
      while (j < bufs.size() && classify(bufs[j].data, bufs[j].len) == kMessageData &&
             std::memcmp(bufs[j].data + 4, b.data + 4, 4) == 0)
        ++j;
      receive_run(bufs.subspan(i, j - i), *table, to_tun, lane.counters);
      i = j;
      continue;
    }
    if (type == kMessageHandshakeInitiation || type == kMessageHandshakeResponse) {
      size_t before = replies.size();
      if (load < 0) load = under_load() ? 1 : 0;
      if (!screen_handshake(b, replies, load == 1, lane.counters)) queue_handshake(b);
      if (replies.size() > before) reply_to.push_back(b.endpoint);
    } else if (type == kMessageHandshakeCookie) {
      queue_handshake(b);
    } else {
      lane.counters.add(Counter::drop_malformed);
    }
    ++i;
  }
  if (!replies.empty()) send_cookie_replies(replies, reply_to, lane);
  if (to_tun.empty()) return;
  uint64_t bytes = 0;
  for (auto& t : to_tun) bytes += t.len;
  int n = lane.tun.write_batch(to_tun);
  if (n < static_cast<int>(to_tun.size()))
    lane.counters.add(Counter::drop_tun_write, to_tun.size() - (n < 0 ? 0 : n));
  lane.counters.add(Counter::rx_bytes, bytes);
}

bool Device::screen_handshake(const io::PacketBuf& b, std::vector<MessageCookieReply>& replies, bool load,
                              Counters& c) {
  // A flood of initiations with valid mac1 would otherwise fill the queue, and a real peer's
  // messages would be dropped at the full queue with the flood's: both the initiation that
  // earns its cookie and the retry carrying it (found by tests/netns/flood.sh: handshakes took
  // 5-25 s). Answering here keeps the queue for messages that carry a valid cookie (whitepaper
  // 5.3), which the worker then rate-limits per source. Cookie replies are rate-limited per
  // source too (the handshake limiter's 20/s, burst 5): making one costs more than receiving a
  // message, and an unbounded cookie factory made the receive thread lose data messages
  // (ping loss 13-29% instead of 0-7% under a 220k/s flood from 8 sources). A real peer sends
  // at most one initiation per 5 s, so it always gets its cookie unless it shares its address
  // (NAT) with the flood, the trade-off the XDP program's per-source budget makes as well.
  if (!load) return false;
  Nanos now = clock_.now();
  // A source whose cookie budget is spent gets nothing more this time, so do not pay for its
  // MACs (two or three BLAKE2s: 60% of the receive thread under a valid-MAC1 flood, perf). Only
  // valid-MAC1 messages spend the budget, so junk cannot exhaust someone else's; a peer that
  // shares its address with a flood shares its budget, as above.
  if (!cookie_limiter_.would_allow(b.endpoint.addr, now)) {
    c.add(Counter::drop_handshake_ratelimited);
    return true;
  }
  MacState mac = cookie_checker_.validate(b.data, b.len, b.endpoint, now);
  if (mac == MacState::kInvalid) {
    c.add(Counter::drop_bad_mac);
    return true;
  }
  if (mac == MacState::kValidWithCookie) return false;
  if (!cookie_limiter_.allow(b.endpoint.addr, now)) {
    c.add(Counter::drop_handshake_ratelimited);
    return true;
  }
  uint32_t sender;
  std::memcpy(&sender, b.data + 4, 4);
  cookie_checker_.create_reply(&replies.emplace_back(), b.data, b.len, le32(sender), b.endpoint, now);
  return true;
}

void Device::send_cookie_replies(std::vector<MessageCookieReply>& replies, const std::vector<Endpoint>& to,
                                 const Lane& lane) {
  thread_local std::vector<io::PacketBuf> out;
  out.clear();
  for (size_t i = 0; i < replies.size(); ++i)
    out.push_back(
        io::PacketBuf{reinterpret_cast<uint8_t*>(&replies[i]), sizeof replies[i], sizeof replies[i], to[i]});
  int n = lane.udp.send_batch(out);
  if (n > 0) lane.counters.add(Counter::cookie_replies_tx, static_cast<uint64_t>(n));
  if (n < static_cast<int>(out.size()))
    lane.counters.add(Counter::drop_udp_send, out.size() - (n < 0 ? 0 : n));
}

void Device::queue_handshake(const io::PacketBuf& b) {
  std::lock_guard lock(hs_queue_mu_);
  if (hs_queue_.size() >= static_cast<size_t>(kMaxQueuedIncomingHandshakes)) {
    counters_.add(Counter::drop_handshake_queue_full);
    return;
  }
  hs_queue_.push_back(QueuedHandshake{std::vector<uint8_t>(b.data, b.data + b.len), b.endpoint});
  hs_queue_cv_.notify_one();
}

void Device::process_tun(std::span<io::PacketBuf> bufs, const Lane& lane) {
  Nanos now = clock_.now();
  auto table = allowed_.load(std::memory_order_acquire);
  thread_local std::vector<io::PacketBuf> out;
  thread_local std::vector<SentRun> runs;
  out.clear();
  runs.clear();
  size_t i = 0;
  std::optional<routing::PeerId> pid =
      bufs.empty() ? std::nullopt : table->route_packet(bufs[0].data, bufs[0].len);
  while (i < bufs.size()) {
    if (!pid) {
      lane.counters.add(Counter::drop_no_route);
      if (++i < bufs.size()) pid = table->route_packet(bufs[i].data, bufs[i].len);
      continue;
    }
    // A run of consecutive packets to the same peer shares one lock and one keypair lookup;
    // each packet is routed exactly once (the one ending a run starts the next).
    size_t j = i + 1;
    std::optional<routing::PeerId> next;
    while (j < bufs.size() && (next = table->route_packet(bufs[j].data, bufs[j].len)) == pid) ++j;
    auto peer = peer_by_id(*pid);
    if (peer) {
      size_t before = out.size();
      send_run(*peer, bufs.subspan(i, j - i), out, now, lane.counters);
      if (out.size() > before) runs.push_back(SentRun{std::move(peer), before, out.size()});
    } else {
      // The batch's table snapshot still routes to a peer removed since: its route is gone.
      lane.counters.add(Counter::drop_no_route, j - i);
    }
    i = j;
    pid = j < bufs.size() ? next : std::nullopt;
  }
  if (out.empty()) return;
  int n = lane.udp.send_batch(out);
  size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
  if (sent < out.size()) lane.counters.add(Counter::drop_udp_send, out.size() - sent);
  // Count only what left (kernel socket.c: tx_bytes only on success). A short send leaves the
  // tail unsent (the AF_XDP ring fills from the front; socket errors are rare and per datagram).
  uint64_t packets = 0, inner = 0;
  for (const auto& r : runs) {
    uint64_t wire = 0;
    for (size_t k = r.begin; k < r.end && k < sent; ++k) {
      wire += out[k].len;
      inner += out[k].len - kDataOverhead;  // padded inner length
      ++packets;
    }
    r.peer->tx_bytes.fetch_add(wire, std::memory_order_relaxed);
  }
  lane.counters.add(Counter::tx_packets, packets);
  lane.counters.add(Counter::tx_bytes, inner);
}

void Device::send_run(Peer& p, std::span<io::PacketBuf> run, std::vector<io::PacketBuf>& out, Nanos now,
                      Counters& c) {
  // Packets with no room for padding and tag are dropped before counters are reserved for them.
  size_t fit = 0;
  for (auto& b : run) fit += padded_len(b.len, mtu()) + kTagLen <= b.cap;
  std::shared_ptr<Keypair> kp;
  Endpoint to;
  uint64_t first = 0;
  size_t usable = 0;
  {
    // The peer's lock covers the decisions (keypair, endpoint, staging, timers) once per run;
    // the sealing happens outside it, so workers sending to the same peer seal in parallel.
    std::lock_guard pl(p.mu);
    if (p.removed) {
      c.add(Counter::drop_no_route, run.size());
      return;
    }
    kp = p.keypairs.current();
    if (!kp || !kp->can_send(now) || !p.endpoint.valid()) {
      stage(p, run, c);
      return;
    }
    if (fit < run.size()) c.add(Counter::drop_too_big, run.size() - fit);
    usable = reserve_send_counters(*kp, fit, now, &first);
    // Past REJECT_AFTER_MESSAGES the rest of the run cannot be sent with this keypair.
    if (usable < fit) c.add(Counter::drop_keypair_expired, fit - usable);
    to = p.endpoint;
    p.timers.data_sent(now);
    p.timers.any_authenticated_packet_sent(now);
    p.timers.any_authenticated_packet_traversal(now);
    if (p.timers.want_rekey_on_send(kp->send_counter.load(), kp->birthdate, kp->i_am_initiator, now))
      send_initiation(p, false);
  }
  // Counters first..first+usable go out in this run's order: one worker's packets of a flow
  // leave in counter order on its own ring; other workers' runs interleave within the
  // receiver's 8192-message window (whitepaper 5.4.6).
  size_t k = 0;
  for (auto& b : run) {
    if (k == usable) break;
    if (padded_len(b.len, mtu()) + kTagLen > b.cap) continue;
    uint8_t* hdr = b.data - kDataHeaderLen;
    size_t n = seal_at(*kp, first + k++, b.data, b.len, mtu(), hdr);
    out.push_back(io::PacketBuf{hdr, n, n, to});
  }
}

void Device::stage(Peer& p, std::span<io::PacketBuf> run, Counters& c) {
  // Whitepaper 6.2: stage while a handshake is pending; the oldest are dropped when full.
  for (auto& b : run) {
    if (p.staged.size() >= kMaxStaged) {
      p.staged.pop_front();
      c.add(Counter::drop_staged_full);
    }
    std::vector<uint8_t> pkt(kDataHeaderLen + b.len);
    std::memcpy(pkt.data() + kDataHeaderLen, b.data, b.len);
    p.staged.push_back(std::move(pkt));
  }
  send_initiation(p, false);
}

}  // namespace xsktun::device
