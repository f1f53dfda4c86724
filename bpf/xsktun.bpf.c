// SPDX-License-Identifier: GPL-2.0
/* xsktun XDP classifier: steers WireGuard data messages for live sessions to the AF_XDP socket
 * of the receiving queue, rate-limits handshakes per source, and passes everything else to the
 * kernel untouched. Every verdict increments exactly one counter in `stats` (xsktun_shared.h).
 *
 * Parsing is deliberately conservative: whatever cannot be parsed safely is XDP_PASSed, so the
 * kernel stack (and the control plane's UDP socket) still sees it. Only frames that are provably
 * WireGuard messages to our listen port are ever dropped. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <xdp/xdp_helpers.h>

#include "xsktun_shared.h"

/* Kernel-internal constants (include/net/ip.h, include/linux/socket.h) absent from UAPI. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define XSKTUN_AF_INET 2
#define XSKTUN_AF_INET6 10

#define MAX_VLAN_TAGS 2     /* 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ) */
#define MAX_IPV6_EXT_HDRS 4 /* bounded so the verifier sees a finite walk */

/* 802.1Q tag as it follows the MAC addresses (include/linux/if_vlan.h is not UAPI). */
struct vlan_hdr {
  __be16 tci;
  __be16 encap_proto;
};

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

/* IPv4 (RFC 791): IHL >= 5 with options skipped; fragments go to the stack to reassemble. */
static __always_inline int parse_ipv4(void **pos, void *end, struct xsktun_rl_key *src)
{
  struct iphdr *ip = *pos;

  if ((void *)(ip + 1) > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  if (ip->version != 4 || ip->ihl < 5)
    return XSKTUN_STAT_PASS_UNPARSED;
  __u32 hlen = ip->ihl * 4;
  if (*pos + hlen > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
    return XSKTUN_STAT_PASS_FRAGMENT;
  if (ip->protocol != IPPROTO_UDP)
    return XSKTUN_STAT_PASS_NOT_OURS;
  src->family = XSKTUN_AF_INET;
  __builtin_memcpy(src->addr, &ip->saddr, 4);
  *pos += hlen;
  return CONTINUE;
}

static __always_inline int is_skippable_ipv6_ext(__u8 nexthdr)
{
  return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS;
}

/* IPv6 (RFC 8200 4.): skip hop-by-hop, routing and destination options headers, whose length
 * is (hdrlen + 1) * 8 octets; a fragment header means the stack must reassemble. */
static __always_inline int parse_ipv6(void **pos, void *end, struct xsktun_rl_key *src)
{
  struct ipv6hdr *ip6 = *pos;
  void *cur;
  __u8 nexthdr;

  if ((void *)(ip6 + 1) > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  if (ip6->version != 6)
    return XSKTUN_STAT_PASS_UNPARSED;
  nexthdr = ip6->nexthdr;
  /* The bucket key is the /64: one host owns a whole /64 far too often to key on less. */
  src->family = XSKTUN_AF_INET6;
  __builtin_memcpy(src->addr, &ip6->saddr, 8);
  cur = ip6 + 1;

#pragma unroll
  for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
    if (!is_skippable_ipv6_ext(nexthdr))
      break;
    struct ipv6_opt_hdr *opt = cur;
    if ((void *)(opt + 1) > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    nexthdr = opt->nexthdr;
    cur += (opt->hdrlen + 1) * 8;
  }
  if (nexthdr == IPPROTO_FRAGMENT)
    return XSKTUN_STAT_PASS_FRAGMENT;
  if (is_skippable_ipv6_ext(nexthdr)) /* longer chain than we walk */
    return XSKTUN_STAT_PASS_UNPARSED;
  if (nexthdr != IPPROTO_UDP)
    return XSKTUN_STAT_PASS_NOT_OURS;
  *pos = cur;
  return CONTINUE;
}

/* Ethernet, up to MAX_VLAN_TAGS tags, then IPv4/IPv6; leaves *pos at the L4 header. */
static __always_inline int parse_l2_l3(void **pos, void *end, struct xsktun_rl_key *src)
{
  struct ethhdr *eth = *pos;
  __be16 proto;

  if ((void *)(eth + 1) > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  proto = eth->h_proto;
  *pos = eth + 1;

#pragma unroll
  for (int i = 0; i < MAX_VLAN_TAGS; i++) {
    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
      break;
    struct vlan_hdr *vlan = *pos;
    if ((void *)(vlan + 1) > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    proto = vlan->encap_proto;
    *pos = vlan + 1;
  }
  if (proto == bpf_htons(ETH_P_IP))
    return parse_ipv4(pos, end, src);
  if (proto == bpf_htons(ETH_P_IPV6))
    return parse_ipv6(pos, end, src);
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
    return XSKTUN_STAT_PASS_UNPARSED; /* more tags than we walk */
  return XSKTUN_STAT_PASS_NOT_OURS;
}

/* WireGuard message (whitepaper 5.4): type byte, three reserved zero bytes, then the body.
 * Handshake messages have fixed sizes; a data message is at least header + counter + tag. */
static __always_inline int classify_wireguard(struct xdp_md *ctx, __u8 *msg, __u32 msg_len,
                                              void *end, const struct xsktun_config *cfg,
                                              const struct xsktun_rl_key *src)
{
  if (msg_len < 4 || (void *)(msg + 4) > end)
    return XSKTUN_STAT_DROP_MALFORMED;
  if (msg[1] | msg[2] | msg[3])
    return XSKTUN_STAT_DROP_MALFORMED;

  switch (msg[0]) {
  case XSKTUN_MSG_DATA: {
    if (msg_len < XSKTUN_DATA_MIN_LEN || (void *)(msg + 8) > end)
      return XSKTUN_STAT_DROP_MALFORMED;
    __u32 receiver;
    __builtin_memcpy(&receiver, msg + 4, sizeof(receiver));
    if (!bpf_map_lookup_elem(&sessions, &receiver))
      return XSKTUN_STAT_DROP_UNKNOWN_INDEX;
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

static __always_inline int classify(struct xdp_md *ctx)
{
  void *pos = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct xsktun_rl_key src;
  __u32 zero = 0;
  int stat;

  __builtin_memset(&src, 0, sizeof(src));
  stat = parse_l2_l3(&pos, end, &src);
  if (stat != CONTINUE)
    return stat;

  struct udphdr *udp = pos;
  if ((void *)(udp + 1) > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  const struct xsktun_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || cfg->listen_port == 0 || udp->dest != bpf_htons(cfg->listen_port))
    return XSKTUN_STAT_PASS_NOT_OURS;
  /* The UDP length, not the frame length: Ethernet pads short frames (RFC 768). */
  __u32 udp_len = bpf_ntohs(udp->len);
  if (udp_len < sizeof(*udp) || (void *)udp + udp_len > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  return classify_wireguard(ctx, (__u8 *)(udp + 1), udp_len - sizeof(*udp), end, cfg, &src);
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

char LICENSE[] SEC("license") = "GPL";
