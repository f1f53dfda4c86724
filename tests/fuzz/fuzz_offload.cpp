// Fuzz: the TUN offload code on arbitrary bytes. The write side (GRO) coalesces packets that a
// peer sent (authenticated, but the peer may be hostile); the read side (TSO/USO split) parses
// the kernel's virtio-net header. Input: one selector byte, then packets each behind a 2-byte
// length (read side: the first 10 bytes of the rest are the virtio-net header).
#include <cstring>
#include <vector>

#include "xsktun/io/offload.h"

using namespace xsktun;
using namespace xsktun::io::offload;

namespace {

void write_side(const uint8_t* data, size_t size, bool udp) {
  std::vector<io::PacketBuf> pkts;
  std::vector<std::vector<uint8_t>> store;
  while (size >= 2 && pkts.size() < 64) {
    size_t len = std::min<size_t>(size - 2, size_t{data[0]} << 8 | data[1]);
    store.emplace_back(data + 2, data + 2 + len);
    data += 2 + len;
    size -= 2 + len;
  }
  for (auto& s : store) pkts.push_back({s.data(), s.size(), s.size()});
  GroBatch b;
  gro_coalesce(pkts, b, udp);
  size_t members = 0;
  for (const auto& g : b.groups) {
    auto bytes = gro_flatten(b, g, pkts);
    members += g.count;
    // A merged packet is one IP packet the kernel must accept: at most 64 KiB, at most
    // kMaxGroSegments members.
    if (g.count > kMaxGroSegments || bytes.size() > 65535) __builtin_trap();
  }
  if (members != pkts.size()) __builtin_trap();  // every packet written exactly once
}

void read_side(const uint8_t* data, size_t size) {
  if (size < kVirtioNetHdrLen) return;
  VirtioNetHdr h;
  std::memcpy(&h, data, sizeof h);
  std::vector<uint8_t> pkt(data + kVirtioNetHdrLen, data + size);
  if (h.gso_type == kGsoNone) {
    if (h.flags & kFlagNeedsCsum) complete_checksum(pkt, h.csum_start, h.csum_offset);
    return;
  }
  auto g = parse_gso(h, pkt);
  if (!g) return;
  align_tcp_segments(*g, pkt.size(), 64);
  std::vector<uint8_t> out(2048);
  size_t payload = 0;
  for (size_t i = 0; i < g->segments; ++i) {
    size_t len = write_segment(*g, pkt, i, out.data(), out.size());
    if (len == 0) return;  // larger than the buffer: the caller drops the rest
    if (len < g->hdr_len || len > out.size()) __builtin_trap();
    // The checksums, built from precomputed sums and field values, verify when summed over the
    // bytes actually written.
    std::span<const uint8_t> seg(out.data(), len);
    if (!g->v6 && csum_fold(csum_add(seg.data(), g->l4_off)) != 0xffff) __builtin_trap();
    if (!l4_checksum_ok(seg, g->l4_off, g->proto)) __builtin_trap();
    payload += len - g->hdr_len;
  }
  if (payload != pkt.size() - g->hdr_len) __builtin_trap();  // the segments carry every byte once
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 3) {
    case 0: write_side(data + 1, size - 1, false); break;
    case 1: write_side(data + 1, size - 1, true); break;
    default: read_side(data + 1, size - 1); break;
  }
  return 0;
}
