// RFC 6479 replay window; see replay.h. Semantics match the kernel's counter_validate
// (drivers/net/wireguard/receive.c) and its selftest table (selftest/counter.c).
#include "xsktun/protocol/replay.h"

#include <algorithm>

namespace xsktun::proto {

bool ReplayWindow::check_and_update(uint64_t counter) {
  // Whitepaper 5.4.6 / kernel: counters at or past Reject-After-Messages are never valid. Because
  // such counters are never accepted, top_ itself can never reach the limit, and the +1 below
  // cannot overflow (kRejectAfterMessages < UINT64_MAX).
  if (counter >= kRejectAfterMessages) return false;
  const uint64_t pos = counter + 1;
  // Too old: behind the window. Written as an addition so nothing underflows near 0.
  if (pos + kWindowSize < top_) return false;
  if (pos > top_) advance_to(pos);
  uint64_t& block = bitmap_[(pos / kBlockBits) & (kBlocks - 1)];
  const uint64_t bit = uint64_t{1} << (pos % kBlockBits);
  if (block & bit) return false;  // replay
  block |= bit;
  return true;
}

// Moves the top of the window to `pos`: every block strictly after the current top's block, up to
// and including pos's block, now describes counters never seen, so it is zeroed. A jump of a full
// ring or more clears everything once rather than looping over the gap (RFC 6479 section 2).
void ReplayWindow::advance_to(uint64_t pos) {
  const uint64_t current_block = top_ / kBlockBits;
  const uint64_t new_block = pos / kBlockBits;
  const uint64_t to_clear = std::min<uint64_t>(new_block - current_block, kBlocks);
  for (uint64_t i = 1; i <= to_clear; ++i) bitmap_[(current_block + i) & (kBlocks - 1)] = 0;
  top_ = pos;
}

void ReplayWindow::reset() {
  top_ = 0;
  bitmap_.fill(0);
}

}  // namespace xsktun::proto
