/* Every struct and constant shared by the XDP program (bpf/xsktun.bpf.c) and userspace.
 * C only (the BPF side is C); userspace includes it from C++. Fixed-width types from
 * <linux/types.h> so the layout is the same on both sides; never mirror these by hand. */
#ifndef XSKTUN_SHARED_H
#define XSKTUN_SHARED_H

#include <linux/types.h>

/* Pin directory: /sys/fs/bpf/xsktun/IFNAME/<map name>. */
#define XSKTUN_PIN_ROOT "/sys/fs/bpf/xsktun"

/* Configuration limits, the same in both modes: the device refuses a change that would exceed
 * one of them as a whole (ENOSPC), so the maps always hold what the configuration holds. The
 * hash maps are NO_PREALLOC (their bucket arrays, 16 bytes per slot, are the fixed cost: about
 * 2 MiB for peers and 8 MiB for sessions); the LPM tries allocate per entry only. */
#define XSKTUN_MAX_PEERS 131072
/* previous/current/next keypair per peer, plus one per peer for the moment a new keypair is
 * added before the one it replaces is removed */
#define XSKTUN_MAX_SESSIONS (4 * XSKTUN_MAX_PEERS)
#define XSKTUN_MAX_ALLOWED_IPS 1048576 /* per family (allowed_ips_v4, allowed_ips_v6) */
#define XSKTUN_MAX_QUEUES 64
#define XSKTUN_RATELIMIT_ENTRIES 16384

/* Handshake budget per source (IPv4 address or IPv6 /64), as the userspace rate limiter and
 * the kernel's ratelimiter.c: 20 per second, burst 5. */
#define XSKTUN_HS_PER_SECOND 20
#define XSKTUN_HS_BURST 5
#define XSKTUN_HS_COST_NS (1000000000ULL / XSKTUN_HS_PER_SECOND)

/* WireGuard message types and sizes (whitepaper 5.4; userspace: protocol/messages.h). */
#define XSKTUN_MSG_INITIATION 1
#define XSKTUN_MSG_RESPONSE 2
#define XSKTUN_MSG_COOKIE 3
#define XSKTUN_MSG_DATA 4
#define XSKTUN_INITIATION_LEN 148
#define XSKTUN_RESPONSE_LEN 92
#define XSKTUN_COOKIE_LEN 64
#define XSKTUN_DATA_MIN_LEN 32

/* allowed_ips_v4 / allowed_ips_v6: LPM tries, value = peer id. */
struct xsktun_lpm_v4 {
  __u32 prefixlen;
  __u8 addr[4];
};
struct xsktun_lpm_v6 {
  __u32 prefixlen;
  __u8 addr[16];
};

/* peers: peer id -> what bpftool should show about a peer. */
struct xsktun_peer {
  __u8 public_key[32];
  __u8 endpoint_addr[16]; /* IPv4 in the first 4 bytes */
  __u16 endpoint_port;    /* host byte order */
  __u8 endpoint_family;   /* AF_INET (2), AF_INET6 (10), 0 = none */
  __u8 pad;
};

/* sessions: receiver index (as on the wire, little-endian u32) -> peer id. */
struct xsktun_session {
  __u32 peer_id;
};

/* config: a one-element array. */
struct xsktun_config {
  __u16 listen_port; /* host byte order; 0 = nothing is ours (pass everything) */
  __u8 ratelimit_enabled;
  __u8 pad;
  /* Longest frame an AF_XDP socket can take (its UMEM frame size); longer data frames go to the
   * kernel socket instead of being dropped by the socket. 0 = no limit. */
  __u32 max_redirect_len;
};

/* ratelimit: LRU hash, source -> token bucket (nanoseconds of credit). */
struct xsktun_rl_key {
  __u8 family;
  __u8 pad[3];
  __u8 addr[16]; /* IPv6 keeps only the /64 */
};
struct xsktun_rl_value {
  __u64 tokens_ns;
  __u64 last_ns;
};

/* stats: per-CPU array indexed by enum xsktun_stat. One X-macro names each counter once: the
 * enum here, the keys of `xsktun show` and the tests are generated from it. Append only (the
 * JSON keys are a contract). The XDP program counts the xdp_* ones, the TUN filter the tun_* ones. */
#define XSKTUN_STATS(X)                                                                            \
  X(PASS_NOT_OURS, xdp_pass_not_ours)         /* not IP/UDP to the listen port: untouched */        \
  X(PASS_FRAGMENT, xdp_pass_fragment)         /* IP fragment: the stack reassembles */              \
  X(PASS_UNPARSED, xdp_pass_unparsed)         /* truncated or unparseable headers */                \
  X(REDIRECT_DATA, xdp_redirect_data)         /* data message to a live session -> AF_XDP */        \
  X(PASS_DATA_NO_XSK, xdp_pass_data_no_xsk)   /* live session, no socket on this queue -> stack */  \
  X(DROP_UNKNOWN_INDEX, xdp_drop_unknown_index) /* data message, receiver index not in sessions */  \
  X(DROP_MALFORMED, xdp_drop_malformed)       /* bad type, length or non-zero reserved bytes */     \
  X(PASS_HANDSHAKE, xdp_pass_handshake)       /* types 1-3 within budget -> kernel socket */        \
  X(DROP_HANDSHAKE_RATELIMITED, xdp_drop_handshake_ratelimited)                                   \
  X(PASS_TOO_BIG, xdp_pass_too_big)           /* data frame longer than an AF_XDP frame -> stack */ \
  X(TUN_DROP_NO_ROUTE, tun_drop_no_route)     /* outbound packet to no allowed IP: dropped in the */ \
                                              /* kernel by xsktun_tun_filter */

enum xsktun_stat {
#define XSKTUN_STAT_ENUM(upper, lower) XSKTUN_STAT_##upper,
  XSKTUN_STATS(XSKTUN_STAT_ENUM)
#undef XSKTUN_STAT_ENUM
  XSKTUN_STAT__MAX,
};

#endif /* XSKTUN_SHARED_H */
