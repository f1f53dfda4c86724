// The daemon's one set of event and drop counters: the device's, the TUN queues' and the UDP
// sockets' (io objects count into the Counters of the worker that owns them). The names are
// printed as the `counters` object of `xsktun show --json` (a contract), so add new ones at the
// end and never rename. Here, not in device/, so that io/ can count without depending on device/.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace xsktun {

#define XSKTUN_COUNTERS(X)                                                                       \
  X(rx_packets) /* data messages authenticated */                                                \
  X(rx_bytes)   /* inner bytes written to the TUN */                                             \
  X(tx_packets) /* data messages sent (keepalives included) */                                   \
  X(tx_bytes)   /* inner bytes sent, with their padding */                                       \
  X(keepalives_rx)                                                                               \
  X(keepalives_tx)                                                                               \
  X(handshake_initiations_rx)                                                                    \
  X(handshake_initiations_tx)                                                                    \
  X(handshake_responses_rx)                                                                      \
  X(handshake_responses_tx)                                                                      \
  X(cookie_replies_rx)                                                                           \
  X(cookie_replies_tx)                                                                           \
  X(handshakes_completed)                                                                        \
  X(drop_malformed)        /* bad length, type or reserved bytes */                              \
  X(drop_bad_mac)          /* mac1 wrong */                                                      \
  X(drop_handshake_failed) /* Noise rejected it (unknown peer, bad DH, decrypt) */               \
  X(drop_handshake_replay) /* initiation timestamp not newer */                                  \
  X(drop_handshake_flood)  /* second initiation from a peer within 20 ms */                      \
  X(drop_handshake_ratelimited)                                                                  \
  X(drop_handshake_queue_full)                                                                   \
  X(drop_cookie_invalid) /* cookie reply for no mac1 we sent, or forged */                       \
  X(drop_unknown_index)  /* receiver index is no live session */                                 \
  X(drop_decrypt)        /* data failed authentication */                                        \
  X(drop_replay)         /* counter seen before or behind the window */                          \
  X(drop_keypair_expired)                                                                        \
  X(drop_inner_malformed)   /* inner packet not IPv4/IPv6, or its length field lies */           \
  X(drop_disallowed_source) /* inner source not in the peer's allowed IPs */                     \
  X(drop_no_route)          /* outbound destination matches no peer */                           \
  X(drop_no_endpoint)       /* peer has no known endpoint */                                     \
  X(drop_staged_full)       /* staged queue full while waiting for a handshake */                \
  X(drop_staged_expired)    /* staged packets dropped when the handshake gave up */              \
  X(drop_tun_write)                                                                              \
  X(drop_udp_send)                                                                               \
  X(drop_too_big)        /* outbound inner packet larger than the buffers */                     \
  X(slowpath_tx_packets) /* XDP mode: sent through the kernel socket instead */                  \
  X(xsk_rx_packets)                                                                              \
  X(xsk_tx_packets)                                                                              \
  X(handshake_mac2_ok)     /* under load: handshake message with a valid mac2, let through */    \
  X(slowpath_rx_packets)   /* XDP mode: datagrams read from the kernel socket (handshakes, */    \
                           /* reassembled fragments, frames the program passed) */               \
  X(slowpath_tx_too_big)   /* XDP mode: frame over the NIC MTU or a UMEM frame, sent through */  \
                           /* the kernel socket, which fragments it (in slowpath_tx_packets) */  \
  X(drop_xsk_tx_full)      /* XDP mode: no free UMEM frame or TX ring slot (in drop_udp_send) */ \
  X(drop_xsk_too_big)      /* XDP mode: frame longer than a UMEM frame (in drop_udp_send) */     \
  X(drop_xsk_unparsed)     /* XDP mode: a frame on an AF_XDP socket that does not parse */       \
  X(map_update_errors)     /* XDP mode: a BPF map write failed (the map disagrees) */            \
  X(udp_send_errors)       /* datagrams the kernel refused (also in drop_udp_send) */            \
  X(udp_truncated)         /* datagrams longer than a buffer (also in drop_malformed) */         \
  X(udp_gso_sends)         /* UDP_SEGMENT messages sent */                                       \
  X(udp_gro_receives)      /* coalesced super-datagrams received */                              \
  X(tun_read_drops)        /* malformed TUN reads (bad virtio header or offsets) */              \
  X(tun_write_errors)      /* packets the TUN refused (also in drop_tun_write) */                \
  X(tun_split_packets)     /* super-packets read and split */                                    \
  X(tun_coalesced_packets) /* packets written merged into a super-packet */

enum class Counter : int {
#define XSKTUN_COUNTER_ENUM(name) name,
  XSKTUN_COUNTERS(XSKTUN_COUNTER_ENUM)
#undef XSKTUN_COUNTER_ENUM
      kCount
};

inline const char* counter_name(Counter c) {
  static const char* const kNames[] = {
#define XSKTUN_COUNTER_NAME(name) #name,
      XSKTUN_COUNTERS(XSKTUN_COUNTER_NAME)
#undef XSKTUN_COUNTER_NAME
  };
  return kNames[static_cast<int>(c)];
}

// A sum of Counters (the device's own plus every worker's), read by `show`.
struct CounterValues {
  std::array<uint64_t, static_cast<size_t>(Counter::kCount)> v{};
  uint64_t get(Counter c) const { return v[static_cast<size_t>(c)]; }
};

// Relaxed atomics: each is an independent statistic. Hot paths batch their increments. Each
// worker has a set of its own (device.h, Lane), aligned so that no two sets share a cache line:
// workers never write the same line for their per-batch counts.
class alignas(64) Counters {
 public:
  void add(Counter c, uint64_t n = 1) { v_[static_cast<int>(c)].fetch_add(n, std::memory_order_relaxed); }
  uint64_t get(Counter c) const { return v_[static_cast<int>(c)].load(std::memory_order_relaxed); }
  void add_to(CounterValues& out) const {
    for (size_t i = 0; i < out.v.size(); ++i) out.v[i] += v_[i].load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> v_[static_cast<int>(Counter::kCount)]{};
};

}  // namespace xsktun
