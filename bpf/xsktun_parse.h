/* The one definition of the frames xsktun's data path takes: Ethernet, up to two VLAN tags,
 * IPv4 (options allowed, no fragments) or IPv6 (up to XSKTUN_MAX_IPV6_EXT skippable extension
 * headers, no fragment header), UDP. The XDP program (bpf/xsktun.bpf.c) decides what to redirect
 * with these functions and the userspace frame parser (userspace/xdp/frame.cpp) reads the
 * redirected frames with the same ones, so a frame the program steers to an AF_XDP socket is a
 * frame userspace can parse (tests/unit/xdp_prog_test.cpp runs every redirect case of the
 * BPF_PROG_TEST_RUN table through both).
 *
 * C that compiles as BPF (clang -target bpf; every access is bounds-checked against `end` before
 * it is made, as the verifier requires) and as C++. Fields are read byte by byte in network
 * order, so no byte-order helpers are needed on either side. */
#ifndef XSKTUN_PARSE_H
#define XSKTUN_PARSE_H

#include "xsktun_shared.h" /* the stat codes the parsers return */

#ifdef __bpf__
#define XSKTUN_PARSE_FN static __always_inline
#define XSKTUN_UNROLL _Pragma("unroll")
#else
#define XSKTUN_PARSE_FN static inline
#define XSKTUN_UNROLL
#endif

#define XSKTUN_PARSE_OK (-1) /* headers fine, go on; any other result is an enum xsktun_stat */

#define XSKTUN_ETH_HLEN 14
#define XSKTUN_VLAN_HLEN 4
#define XSKTUN_MAX_VLAN_TAGS 2 /* 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ) */
#define XSKTUN_MAX_IPV6_EXT 4  /* bounded so the verifier sees a finite walk */
#define XSKTUN_ETH_P_IP 0x0800
#define XSKTUN_ETH_P_IPV6 0x86dd
#define XSKTUN_ETH_P_8021Q 0x8100
#define XSKTUN_ETH_P_8021AD 0x88a8
#define XSKTUN_PROTO_UDP 17
#define XSKTUN_PROTO_HOPOPTS 0
#define XSKTUN_PROTO_ROUTING 43
#define XSKTUN_PROTO_FRAGMENT 44
#define XSKTUN_PROTO_DSTOPTS 60
#define XSKTUN_AF_INET 2
#define XSKTUN_AF_INET6 10

/* What the parser found. Pointers point into the frame. */
struct xsktun_frame {
  const __u8 *l3;     /* the IPv4 or IPv6 header */
  const __u8 *udp;    /* the UDP header (8 bytes are within the frame) */
  __u16 vlan_tci;     /* TCI of the innermost tag, 0 = untagged */
  __u8 family;        /* XSKTUN_AF_INET or XSKTUN_AF_INET6 */
};

XSKTUN_PARSE_FN __u16 xsktun_rd16(const __u8 *p) { return (__u16)(p[0] << 8 | p[1]); }

/* IPv4 (RFC 791): IHL >= 5, options skipped; fragments go to the stack to reassemble. */
XSKTUN_PARSE_FN int xsktun_parse_ipv4(const __u8 *ip, const __u8 *end, struct xsktun_frame *f)
{
  if (ip + 20 > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  __u32 ihl = ip[0] & 0x0f;
  if ((ip[0] >> 4) != 4 || ihl < 5)
    return XSKTUN_STAT_PASS_UNPARSED;
  const __u8 *l4 = ip + ihl * 4;
  if (l4 > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  if (xsktun_rd16(ip + 6) & 0x3fff) /* MF flag or a fragment offset */
    return XSKTUN_STAT_PASS_FRAGMENT;
  if (ip[9] != XSKTUN_PROTO_UDP)
    return XSKTUN_STAT_PASS_NOT_OURS;
  f->udp = l4;
  return XSKTUN_PARSE_OK;
}

XSKTUN_PARSE_FN int xsktun_ipv6_ext_skippable(__u8 nexthdr)
{
  return nexthdr == XSKTUN_PROTO_HOPOPTS || nexthdr == XSKTUN_PROTO_ROUTING ||
         nexthdr == XSKTUN_PROTO_DSTOPTS;
}

/* IPv6 (RFC 8200 4.): hop-by-hop, routing and destination options headers are skipped, each
 * (hdrlen + 1) * 8 octets long; a fragment header means the stack must reassemble. */
XSKTUN_PARSE_FN int xsktun_parse_ipv6(const __u8 *ip, const __u8 *end, struct xsktun_frame *f)
{
  if (ip + 40 > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  if ((ip[0] >> 4) != 6)
    return XSKTUN_STAT_PASS_UNPARSED;
  __u8 nexthdr = ip[6];
  const __u8 *cur = ip + 40;

  XSKTUN_UNROLL
  for (int i = 0; i < XSKTUN_MAX_IPV6_EXT; i++) {
    if (!xsktun_ipv6_ext_skippable(nexthdr))
      break;
    if (cur + 2 > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    nexthdr = cur[0];
    cur += (cur[1] + 1) * 8;
  }
  if (nexthdr == XSKTUN_PROTO_FRAGMENT)
    return XSKTUN_STAT_PASS_FRAGMENT;
  if (xsktun_ipv6_ext_skippable(nexthdr)) /* a longer chain than we walk */
    return XSKTUN_STAT_PASS_UNPARSED;
  if (nexthdr != XSKTUN_PROTO_UDP)
    return XSKTUN_STAT_PASS_NOT_OURS;
  f->udp = cur;
  return XSKTUN_PARSE_OK;
}

/* Ethernet, tags, IP, down to a complete UDP header. Fills *f on XSKTUN_PARSE_OK. */
XSKTUN_PARSE_FN int xsktun_parse_to_udp(const __u8 *data, const __u8 *end, struct xsktun_frame *f)
{
  const __u8 *pos = data + 12; /* the EtherType after the two MAC addresses */
  int stat;

  if (data + XSKTUN_ETH_HLEN > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  __u16 proto = xsktun_rd16(pos);
  f->vlan_tci = 0;

  XSKTUN_UNROLL
  for (int i = 0; i < XSKTUN_MAX_VLAN_TAGS; i++) {
    if (proto != XSKTUN_ETH_P_8021Q && proto != XSKTUN_ETH_P_8021AD)
      break;
    if (pos + 2 + XSKTUN_VLAN_HLEN > end)
      return XSKTUN_STAT_PASS_UNPARSED;
    f->vlan_tci = xsktun_rd16(pos + 2);
    pos += XSKTUN_VLAN_HLEN;
    proto = xsktun_rd16(pos);
  }
  pos += 2;
  f->l3 = pos;
  if (proto == XSKTUN_ETH_P_IP) {
    f->family = XSKTUN_AF_INET;
    stat = xsktun_parse_ipv4(pos, end, f);
  } else if (proto == XSKTUN_ETH_P_IPV6) {
    f->family = XSKTUN_AF_INET6;
    stat = xsktun_parse_ipv6(pos, end, f);
  } else if (proto == XSKTUN_ETH_P_8021Q || proto == XSKTUN_ETH_P_8021AD) {
    return XSKTUN_STAT_PASS_UNPARSED; /* more tags than we walk */
  } else {
    return XSKTUN_STAT_PASS_NOT_OURS;
  }
  if (stat != XSKTUN_PARSE_OK)
    return stat;
  if (f->udp + 8 > end)
    return XSKTUN_STAT_PASS_UNPARSED;
  return XSKTUN_PARSE_OK;
}

/* The UDP payload's length from the UDP length field (RFC 768), not the frame's: Ethernet pads
 * short frames. -1 if the field is below the header size or reaches past the frame. */
XSKTUN_PARSE_FN long xsktun_udp_payload_len(const struct xsktun_frame *f, const __u8 *end)
{
  __u32 udp_len = xsktun_rd16(f->udp + 4);
  if (udp_len < 8 || f->udp + udp_len > end)
    return -1;
  return (long)udp_len - 8;
}

#endif /* XSKTUN_PARSE_H */
