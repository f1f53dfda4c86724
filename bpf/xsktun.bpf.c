// SPDX-License-Identifier: GPL-2.0
/* xsktun XDP classifier: steers WireGuard data messages for live sessions to the AF_XDP socket
 * of the receiving queue, rate-limits handshakes per source, and passes everything else to the
 * kernel untouched. Every verdict increments exactly one counter in `stats` (xsktun_shared.h).
 *
 * Parsing is deliberately conservative: whatever cannot be parsed safely is XDP_PASSed, so the
 * kernel stack (and the control plane's UDP socket) still sees it. Only frames that are provably
 * WireGuard messages to our listen port are ever dropped. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "xsktun_shared.h"
#include "xsktun_parse.h"


/* ---- Maps. Names are the pin names under XSKTUN_PIN_ROOT/IFNAME/; do not rename. ---- */

/* Kept by userspace for bpftool inspection; present here so they are created with BTF. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct xsktun_lpm_v4);
  __type(value, __u32);
  __uint(max_entries, XSKTUN_MAX_ALLOWED_IPS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} allowed_ips_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct xsktun_lpm_v6);
  __type(value, __u32);
  __uint(max_entries, XSKTUN_MAX_ALLOWED_IPS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} allowed_ips_v6 SEC(".maps");

/* Only userspace writes peers and sessions; NO_PREALLOC keeps an idle tunnel from reserving
 * ~10 MB up front, and costs nothing on the lookup path. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32);
  __type(value, struct xsktun_peer);
  __uint(max_entries, XSKTUN_MAX_PEERS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} peers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32); /* receiver index, raw wire bytes (little-endian) */
  __type(value, struct xsktun_session);
  __uint(max_entries, XSKTUN_MAX_SESSIONS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} sessions SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __type(key, __u32);
  __type(value, __u32);
  __uint(max_entries, XSKTUN_MAX_QUEUES);
} xsks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, XSKTUN_STAT__MAX);
} stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct xsktun_config);
  __uint(max_entries, 1);
} config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct xsktun_rl_key);
  __type(value, struct xsktun_rl_value);
  __uint(max_entries, XSKTUN_RATELIMIT_ENTRIES);
} ratelimit SEC(".maps");

/* libxdp dispatcher: run early, and let the next program see frames we XDP_PASS. */
struct {
  __uint(priority, 10);
  __uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(xsktun_xdp);

/* Parsers return this to mean "headers fine, go on"; anything else is the final stat. */
#define CONTINUE (-1)

/* Token bucket per source, the same shape as drivers/net/wireguard/ratelimiter.c: credit is
 * kept in nanoseconds, one packet costs XSKTUN_HS_COST_NS, the bucket holds HS_BURST packets.
 * No lock: a race between CPUs can at worst let a few extra handshakes through, which the
 * control plane's own (cookie-based) limiter still catches. */
static __always_inline int ratelimit_allow(const struct xsktun_rl_key *key)
{
  const __u64 max_ns = XSKTUN_HS_BURST * XSKTUN_HS_COST_NS;
  __u64 now = bpf_ktime_get_ns();
  struct xsktun_rl_value *bucket = bpf_map_lookup_elem(&ratelimit, key);

  if (!bucket) {
    struct xsktun_rl_value fresh = {.tokens_ns = max_ns - XSKTUN_HS_COST_NS, .last_ns = now};
    bpf_map_update_elem(&ratelimit, key, &fresh, BPF_NOEXIST);
    return 1;
  }
  /* Another CPU may have stored a later timestamp: never let the subtraction wrap. */
  __u64 elapsed = now > bucket->last_ns ? now - bucket->last_ns : 0;
  __u64 tokens = bucket->tokens_ns + elapsed;
  if (tokens > max_ns)
    tokens = max_ns;
  bucket->last_ns = now;
  if (tokens < XSKTUN_HS_COST_NS) {
    bucket->tokens_ns = tokens;
    return 0;
  }
  bucket->tokens_ns = tokens - XSKTUN_HS_COST_NS;
  return 1;
}

/* WireGuard message (whitepaper 5.4): type byte, three reserved zero bytes, then the body.
 * Handshake messages have fixed sizes; a data message is at least header + counter + tag. */
static __always_inline int classify_wireguard(struct xdp_md *ctx, const __u8 *msg, __u32 msg_len,
                                              const __u8 *end, const struct xsktun_config *cfg,
                                              const struct xsktun_rl_key *src, __u64 frame_len)
{
  if (msg_len < 4 || msg + 4 > end)
    return XSKTUN_STAT_DROP_MALFORMED;
  if (msg[1] | msg[2] | msg[3])
    return XSKTUN_STAT_DROP_MALFORMED;

  switch (msg[0]) {
  case XSKTUN_MSG_DATA: {
    if (msg_len < XSKTUN_DATA_MIN_LEN || msg + 8 > end)
      return XSKTUN_STAT_DROP_MALFORMED;
    __u32 receiver;
    __builtin_memcpy(&receiver, msg + 4, sizeof(receiver));
    if (!bpf_map_lookup_elem(&sessions, &receiver))
      return XSKTUN_STAT_DROP_UNKNOWN_INDEX;
    /* A frame longer than an AF_XDP frame would be dropped by the socket: the stack takes it. */
    if (cfg->max_redirect_len && frame_len > cfg->max_redirect_len)
      return XSKTUN_STAT_PASS_TOO_BIG;
    /* Fallback action XDP_PASS: no socket on this queue means the kernel socket gets it. */
    if (bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS) == XDP_REDIRECT)
      return XSKTUN_STAT_REDIRECT_DATA;
    return XSKTUN_STAT_PASS_DATA_NO_XSK;
  }
  case XSKTUN_MSG_INITIATION:
    if (msg_len != XSKTUN_INITIATION_LEN)
      return XSKTUN_STAT_DROP_MALFORMED;
    break;
  case XSKTUN_MSG_RESPONSE:
    if (msg_len != XSKTUN_RESPONSE_LEN)
      return XSKTUN_STAT_DROP_MALFORMED;
    break;
  case XSKTUN_MSG_COOKIE:
    if (msg_len != XSKTUN_COOKIE_LEN)
      return XSKTUN_STAT_DROP_MALFORMED;
    break;
  default:
    return XSKTUN_STAT_DROP_MALFORMED;
  }
  if (cfg->ratelimit_enabled && !ratelimit_allow(src))
    return XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED;
  return XSKTUN_STAT_PASS_HANDSHAKE;
}

/* The rate-limit key of a frame's source: IPv4 address or IPv6 /64. */
static __always_inline int source_key(const struct xsktun_frame *f, const __u8 *end,
                                      struct xsktun_rl_key *src)
{
  src->family = f->family;
  if (f->family == XSKTUN_AF_INET) {
    if (f->l3 + 20 > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    __builtin_memcpy(src->addr, f->l3 + 12, 4);
  } else {
    /* The bucket key is the /64: one host owns a whole /64 far too often to key on less. */
    if (f->l3 + 40 > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    __builtin_memcpy(src->addr, f->l3 + 8, 8);
  }
  return XSKTUN_PARSE_OK;
}

static __always_inline int classify(struct xdp_md *ctx)
{
  const __u8 *data = (const __u8 *)(long)ctx->data;
  const __u8 *end = (const __u8 *)(long)ctx->data_end;
  struct xsktun_frame f;
  struct xsktun_rl_key src;
  __u32 zero = 0;
  int stat;

  __builtin_memset(&src, 0, sizeof(src));
  stat = xsktun_parse_to_udp(data, end, &f);
  if (stat != XSKTUN_PARSE_OK)
    return stat;
  const struct xsktun_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || cfg->listen_port == 0 || xsktun_rd16(f.udp + 2) != cfg->listen_port)
    return XSKTUN_STAT_PASS_NOT_OURS;
  long msg_len = xsktun_udp_payload_len(&f, end);
  if (msg_len < 0)
    return XSKTUN_STAT_PASS_UNPARSED;
  stat = source_key(&f, end, &src);
  if (stat != XSKTUN_PARSE_OK)
    return stat;
  return classify_wireguard(ctx, f.udp + 8, (__u32)msg_len, end, cfg, &src, (__u64)(end - data));
}

static __always_inline int action_of(int stat)
{
  switch (stat) {
  case XSKTUN_STAT_REDIRECT_DATA:
    return XDP_REDIRECT;
  case XSKTUN_STAT_DROP_UNKNOWN_INDEX:
  case XSKTUN_STAT_DROP_MALFORMED:
  case XSKTUN_STAT_DROP_HANDSHAKE_RATELIMITED:
    return XDP_DROP;
  default:
    return XDP_PASS;
  }
}

SEC("xdp")
int xsktun_xdp(struct xdp_md *ctx)
{
  __u32 stat = classify(ctx);
  __u64 *count = bpf_map_lookup_elem(&stats, &stat);

  if (count)
    *count += 1; /* per-CPU slot: no atomic needed */
  return action_of(stat);
}

/* ---- TUN programs (socket filters on the TUN device, drivers/net/tun.c): the skb of an
 * outbound packet starts at its inner IP header. ---- */

static __always_inline __u32 flow_mix(__u32 h, __u32 v)
{
  h ^= v;
  h *= 0x9e3779b1;
  return h ^ (h >> 15);
}

/* murmur3's finalizer: every input bit reaches the low bits, which `% queues` keeps. */
static __always_inline __u32 flow_final(__u32 h)
{
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  return h ^ (h >> 16);
}

static __always_inline __u32 flow_ports(struct __sk_buff *skb, __u32 h, __u8 proto, __u32 off)
{
  __u32 ports;

  if ((proto == 6 || proto == 17) && bpf_skb_load_bytes(skb, off, &ports, sizeof(ports)) == 0)
    h = flow_mix(h, ports);
  return h;
}

/* Looks the destination up in allowed_ips_v4/v6 (the same longest-prefix match as the
 * userspace table they mirror): 1 and *peer on a match. With want_hash, *hash is the flow's
 * hash: peer, addresses, protocol and, for TCP and UDP, ports. Fragments and IPv6 packets with
 * extension headers hash without ports (as the kernel's flow dissector does): all fragments
 * of a packet stay together. */
static __always_inline int tun_route(struct __sk_buff *skb, __u32 *peer, __u32 *hash, int want_hash)
{
  __u8 ip[40];
  __u32 *id, a;

  if (bpf_skb_load_bytes(skb, 0, ip, 20) < 0)
    return 0;
  if ((ip[0] >> 4) == 4) {
    struct xsktun_lpm_v4 key = {.prefixlen = 32};

    __builtin_memcpy(key.addr, ip + 16, 4);
    id = bpf_map_lookup_elem(&allowed_ips_v4, &key);
    if (!id)
      return 0;
    *peer = *id;
    if (!want_hash)
      return 1;
    __u32 h = flow_mix(*id, ip[9]);
    __builtin_memcpy(&a, ip + 12, 4);
    h = flow_mix(h, a);
    __builtin_memcpy(&a, ip + 16, 4);
    h = flow_mix(h, a);
    if (((ip[6] << 8 | ip[7]) & 0x3fff) == 0) /* not a fragment: MF clear, offset 0 */
      h = flow_ports(skb, h, ip[9], (__u32)(ip[0] & 0xf) * 4);
    *hash = flow_final(h);
    return 1;
  }
  if ((ip[0] >> 4) != 6 || bpf_skb_load_bytes(skb, 0, ip, 40) < 0)
    return 0;
  struct xsktun_lpm_v6 key6 = {.prefixlen = 128};

  __builtin_memcpy(key6.addr, ip + 24, 16);
  id = bpf_map_lookup_elem(&allowed_ips_v6, &key6);
  if (!id)
    return 0;
  *peer = *id;
  if (!want_hash)
    return 1;
  __u32 h = flow_mix(*id, ip[6]);
#pragma unroll
  for (int i = 8; i < 40; i += 4) {
    __builtin_memcpy(&a, ip + i, 4);
    h = flow_mix(h, a);
  }
  *hash = flow_final(flow_ports(skb, h, ip[6], 40));
  return 1;
}

/* TUNSETSTEERINGEBPF: the queue (worker) that reads the packet, returned modulo the queues by
 * the driver. A flow always gets the same worker, so its packets are sealed and sent in order;
 * a peer's flows spread over all workers. No match: queue 0 (the filter drops it anyway). */
SEC("socket")
int xsktun_tun_steer(struct __sk_buff *skb)
{
  __u32 peer = 0, hash = 0;

  if (!tun_route(skb, &peer, &hash, 1))
    return 0;
  return (int)(hash & 0x7fffffff);
}

/* TUNSETFILTEREBPF: a packet no peer's allowed IPs cover is dropped in the kernel before it
 * is copied to userspace (counted as tun_drop_no_route; the device's TX drops too). */
SEC("socket")
int xsktun_tun_filter(struct __sk_buff *skb)
{
  __u32 peer = 0, hash = 0, stat = XSKTUN_STAT_TUN_DROP_NO_ROUTE;

  if (tun_route(skb, &peer, &hash, 0))
    return (int)skb->len;
  __u64 *count = bpf_map_lookup_elem(&stats, &stat);
  if (count)
    *count += 1;
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
