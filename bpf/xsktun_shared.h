/* Every struct and constant shared by the XDP program (bpf/xsktun.bpf.c) and userspace.
 * C only (the BPF side is C); userspace includes it from C++. Fixed-width types from
 * <linux/types.h> so the layout is the same on both sides; never mirror these by hand. */
#ifndef XSKTUN_SHARED_H
#define XSKTUN_SHARED_H

#include <linux/types.h>

/* Pin directory: /sys/fs/bpf/xsktun/IFNAME/<map name>. */
#define XSKTUN_PIN_ROOT "/sys/fs/bpf/xsktun"

#define XSKTUN_MAX_PEERS 65536
#define XSKTUN_MAX_SESSIONS (3 * XSKTUN_MAX_PEERS) /* previous/current/next keypair per peer */
#define XSKTUN_MAX_ALLOWED_IPS 131072
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

/* stats: per-CPU array indexed by these. */
enum xsktun_stat {
  XSKTUN_STAT_PASS_NOT_OURS = 0,  /* not IP/UDP to the listen port: untouched */
  XSKTUN_STAT_PASS_FRAGMENT,      /* IP fragment: the stack reassembles */
  XSKTUN_STAT_PASS_UNPARSED,      /* truncated or unparseable headers */
  XSKTUN_STAT_REDIRECT_DATA,      /* data message to a live session -> AF_XDP */
  XSKTUN_STAT_PASS_DATA_NO_XSK,   /* live session but no socket on this queue -> stack */
  XSKTUN_STAT_DROP_UNKNOWN_INDEX, /* data message, receiver index not in sessions */
  XSKTUN_STAT_DROP_MALFORMED,     /* bad type, length or non-zero reserved bytes */
  XSKTUN_STAT_PASS_HANDSHAKE,     /* types 1-3 within budget -> kernel socket */
  XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED,
  XSKTUN_STAT__MAX,
};

#endif /* XSKTUN_SHARED_H */
