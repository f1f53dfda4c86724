// Fuzz: the AF_XDP frame parser (userspace/xdp/frame.cpp over bpf/xsktun_parse.h, the same code
// the XDP program classifies with) on arbitrary frames a hostile network can send. Invariants:
// a parsed payload lies inside the frame and ends where the UDP length says; the reply path
// built from a parsed frame parses back to the same endpoints and path.
#include <cstdint>
#include <cstring>
#include <vector>

#include "xsktun/xdp/frame.h"

using namespace xsktun;
using namespace xsktun::xdp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> frame(data, data + size);  // exact size: ASan sees any read past the end
  ParsedFrame pf;
  if (!parse_frame(frame.data(), frame.size(), &pf)) return 0;
  const uint8_t* end = frame.data() + frame.size();
  if (pf.payload < frame.data() || pf.payload > end || pf.payload_len > static_cast<size_t>(end - pf.payload))
    __builtin_trap();
  if (pf.source.addr.family != AF_INET && pf.source.addr.family != AF_INET6) __builtin_trap();
  // Answer it: headers for the reply path in front of the same payload, then parse that.
  Path path = pf.reply;
  std::vector<uint8_t> reply(header_len(path, pf.source.addr.family) + pf.payload_len);
  std::memcpy(reply.data() + header_len(path, pf.source.addr.family), pf.payload, pf.payload_len);
  size_t n = build_headers(reply.data(), path, pf.source, pf.payload_len);
  if (n != reply.size()) __builtin_trap();
  ParsedFrame back;
  if (!parse_frame(reply.data(), reply.size(), &back)) __builtin_trap();
  if (back.payload_len != pf.payload_len || std::memcmp(back.payload, pf.payload, pf.payload_len) != 0)
    __builtin_trap();
  // Seen from the peer: the reply comes from our address and port, to the sender's.
  if (!(back.source.addr == path.src_ip) || back.source.port != path.src_port) __builtin_trap();
  if (!(back.reply.src_ip == pf.source.addr) || back.reply.src_port != pf.source.port) __builtin_trap();
  if (back.reply.vlan_tci != path.vlan_tci) __builtin_trap();
  return 0;
}
