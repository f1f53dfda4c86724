// Fuzz: data message open (auth, replay window, expiry) and the inner-packet checks the device
// applies after it (allowed-IPs source check on whatever bytes come out).
#include <cstring>
#include <vector>

#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/keypair.h"
#include "xsktun/routing/allowed_ips.h"

using namespace xsktun;
using namespace xsktun::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = crypto::init();
  (void)init;
  SessionKeys keys;
  Keypair kp(keys, 0);  // all-zero keys: the fuzzer can produce valid tags only by luck
  std::vector<uint8_t> buf(data, data + size);
  size_t plen = 0;
  if (open(kp, buf.data(), buf.size(), 1, &plen) == OpenResult::kOk) __builtin_trap();
  static routing::AllowedIps table = [] {
    routing::AllowedIps t;
    t.insert(*Prefix::parse("10.0.0.0/8"), 1);
    t.insert(*Prefix::parse("fd00::/8"), 2);
    return t;
  }();
  // The inner checks run on arbitrary bytes too (as after a successful open).
  table.source_allowed(1, data, size);
  table.route_packet(data, size);
  return 0;
}
