// TUN offloads (IFF_VNET_HDR): the virtio-net header in front of every packet, splitting the
// kernel's TCP/UDP super-packets (TSO/USO) into MTU-sized packets on read, and coalescing runs of
// TCP segments into one super-packet on write (GRO). Pure functions on bytes: no I/O.
//
// Kernel facts this code relies on (include/linux/virtio_net.h, drivers/net/tun.c, 6.x):
//  - Header fields are in host byte order for a TUN without TUNSETVNETLE/BE
//    (tun_is_little_endian -> virtio_legacy_is_little_endian()).
//  - On read, hdr_len is only a hint (skb_headlen, up to the whole first fragment on the forward
//    path); the header length is recomputed from csum_start and the TCP data offset.
//  - A read super-packet carries CHECKSUM_PARTIAL: the L4 checksum field holds the folded
//    pseudo-header sum, complement not taken; segments get full checksums computed here.
//  - On write, gso_type TCPV4/6 with F_NEEDS_CSUM needs csum_offset 16 (tcphdr.check) and the
//    folded, uncomplemented pseudo-header sum over the FULL L4 length in the checksum field
//    (what __tcp_v4_send_check leaves for CHECKSUM_PARTIAL); tcp_gso_segment adjusts it per
//    segment. ip_rcv still verifies the IPv4 header checksum, so it must be right.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "xsktun/io/packet_io.h"

namespace xsktun::io::offload {

// struct virtio_net_hdr (include/uapi/linux/virtio_net.h), host byte order.
struct VirtioNetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};
inline constexpr size_t kVirtioNetHdrLen = 10;
static_assert(sizeof(VirtioNetHdr) == kVirtioNetHdrLen);

inline constexpr uint8_t kFlagNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr uint8_t kFlagDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpV4 = 1;
inline constexpr uint8_t kGsoUdp = 3;  // UFO: never negotiated here
inline constexpr uint8_t kGsoTcpV6 = 4;
inline constexpr uint8_t kGsoUdpL4 = 5;      // USO (Linux 6.2+)
inline constexpr uint8_t kGsoAccEcn = 0x10;  // AccECN (6.18): CWR stays on every segment
inline constexpr uint8_t kGsoEcn = 0x80;     // first segment carries CWR

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
// An IP packet (and so a super-packet) is at most 64 KiB: 16-bit IPv4 total length, and no
// IPv6 jumbograms through TUN.
inline constexpr size_t kMaxPacket = 65535;

// ---- Internet checksum (RFC 1071). Words are summed as loaded in host order; by the byte-order
// independence of the ones'-complement sum (RFC 1071 2.(B)) the folded result, stored back with
// a host-order 16-bit store, lands in network order. Partial sums combine by plain addition as
// long as each piece starts at an even offset of the checksummed range.

// Unfolded ones'-complement sum of `len` bytes added to `acc`.
uint64_t csum_add(const uint8_t* p, size_t len, uint64_t acc = 0);
// Folds to 16 bits, no complement (as csum_fold's ~ undone).
uint16_t csum_fold(uint64_t acc);
// Sum of the TCP/UDP pseudo-header (RFC 9293 3.1; RFC 8200 8.1) of IPv4/IPv6 packet `ip`.
uint64_t pseudo_header_sum(const uint8_t* ip, bool v6, uint8_t proto, size_t l4_len);
// True if the L4 checksum at l4_off of complete packet `pkt` verifies.
bool l4_checksum_ok(std::span<const uint8_t> pkt, size_t l4_off, uint8_t proto);
// Writes the IPv4 header checksum of the header at `ip`.
void set_ipv4_checksum(uint8_t* ip);

// ---- Read side.

// Completes a VIRTIO_NET_HDR_F_NEEDS_CSUM packet in software, as skb_checksum_help does: the
// field at csum_start + csum_offset already holds the pseudo-header sum. False if the offsets
// do not fit the packet.
bool complete_checksum(std::span<uint8_t> pkt, uint16_t csum_start, uint16_t csum_offset);

// A validated TCP (TSO) or UDP (USO) super-packet.
struct GsoPacket {
  bool v6 = false;
  uint8_t proto = 0;    // kProtoTcp or kProtoUdp
  size_t l4_off = 0;    // = IP header length (csum_start)
  size_t hdr_len = 0;   // IP + TCP/UDP header length
  size_t gso_size = 0;  // payload bytes per segment (the last may be shorter)
  size_t segments = 0;
  bool keep_cwr = false;  // AccECN: CWR is not cleared after the first segment
  // What every segment's checksums share, summed once per super-packet (unfolded, see
  // csum_add): the IPv4 header without its total length, ID and checksum; the pseudo-header's
  // addresses and protocol plus the L4 header without its checksum and (TCP) sequence number
  // and offset/flags word, (UDP) length. write_segment adds the per-segment fields by value
  // instead of summing bytes it has just stored.
  uint64_t ip_sum = 0;
  uint64_t l4_sum = 0;
};

// Checks `hdr` (gso_type not NONE) against `pkt`; nullopt if malformed or not TCP/UDP over IP.
std::optional<GsoPacket> parse_gso(const VirtioNetHdr& hdr, std::span<const uint8_t> pkt);
// Shrinks the segment payload of TCP super-packet `g` (`pkt_len` bytes in all) so that every
// full segment is a whole number of `align` bytes, IP header included, if each segment loses at
// most 2% of its payload; UDP is left alone (its datagram boundaries are the sender's). Any
// segmentation of a TCP byte stream is valid TCP; this one exists for the AEAD (tun.h,
// kSegmentAlign). Recomputes g.segments.
void align_tcp_segments(GsoPacket& g, size_t pkt_len, size_t align);
// Writes segment `i` of super-packet `pkt` at `out` as a complete packet: IPv4 total length, ID
// (+i), header checksum / IPv6 payload length; TCP sequence number, FIN/PSH only on the last
// segment, CWR only on the first (tcp_gso_segment); UDP length; full L4 checksum. Returns its
// length, or 0 if it does not fit in `cap`.
size_t write_segment(const GsoPacket& g, std::span<const uint8_t> pkt, size_t i, uint8_t* out, size_t cap);

// ---- Write side (GRO), after wireguard-go tun/offload_linux.go and the kernel's
// tcp_gro_receive: segments of one TCP flow (addresses, ports, ACK number, IP version) merge
// when their sequence numbers are contiguous, the IP headers agree (TOS/traffic class, TTL/hop
// limit, DF; no IPv4 options or fragments, no IPv6 extension headers), the TCP options are
// byte-identical, flags are ACK or ACK|PSH with PSH only on the last, every payload but the
// last has the same size (the last may be smaller) and the result is <= 64 KiB. Unlike
// wireguard-go, checksums are not verified first: the merged packet is CHECKSUM_PARTIAL, so
// the kernel will not check them either, which is what kernel WireGuard does too (receive.c
// marks decrypted packets CHECKSUM_UNNECESSARY): every packet written passed a Poly1305 tag, so
// a bad checksum can only come from the peer's own stack. (tun ignores
// VIRTIO_NET_HDR_F_DATA_VALID on write, so a packet written alone is still checked; tried.)
// UDP (udp_gro_receive, wireguard-go's udpGRO), only if the TUN takes USO: datagrams of one flow
// (addresses, ports) and equal size merge into one GSO_UDP_L4 super-packet, the last may be
// shorter; the same IP header rules apply. Saves a write and a trip through
// the TUN per datagram; the kernel splits it again before any socket without UDP_GRO sees it.

inline constexpr size_t kMaxGroHeader = 40 + 60;  // IPv6 + TCP with full options
inline constexpr size_t kMaxGroSegments = 64;

struct GroGroup {
  uint32_t first = 0;  // index of the head packet in the input batch
  uint32_t last = 0;   // index of the last member
  uint32_t count = 1;  // 1: write `first` unchanged behind a zero header
  VirtioNetHdr vnet;   // count > 1: GSO header to write in front of `head`
  uint8_t head_len = 0;
  std::array<uint8_t, kMaxGroHeader> head{};  // count > 1: rewritten IP + TCP header

  // Bookkeeping while coalescing.
  bool open = false;  // a TCP/UDP candidate that may still take segments
  bool v6 = false;
  uint8_t proto = 0;  // kProtoTcp or kProtoUdp
  bool psh = false;   // the last member has PSH: nothing may follow
  uint8_t ip_len = 0;
  uint8_t tcp_len = 0;  // L4 header length (8 for UDP); 0: not a candidate
  uint32_t flow_hash = 0;
  uint32_t next_seq = 0;
  uint32_t gso_size = 0;      // payload of the head
  uint32_t last_payload = 0;  // payload of the last member
  uint32_t total_len = 0;     // IP length of the merged packet
};

struct GroBatch {
  std::vector<GroGroup> groups;  // in the order of their first packets
  std::vector<int32_t> next;     // next[i]: the member after packet i in its group, or -1
  void clear() {
    groups.clear();
    next.clear();
  }
};

// Groups `pkts` (whole IP packets, len = IP length) into `out`; reuses out's storage. UDP
// datagrams are merged only if `udp` (the TUN was given TUN_F_USO4|6).
void gro_coalesce(std::span<const PacketBuf> pkts, GroBatch& out, bool udp = false);
// Every packet on its own (offloads off): one group each.
void gro_singletons(size_t n, GroBatch& out);
// The bytes of group `g` as the kernel would see them after the virtio header (for tests).
std::vector<uint8_t> gro_flatten(const GroBatch& b, const GroGroup& g, std::span<const PacketBuf> pkts);

}  // namespace xsktun::io::offload
