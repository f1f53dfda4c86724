// Receive-side replay protection for transport data counters (whitepaper section 5.4.6).
// The algorithm is the RFC 6479 bitmap used by the kernel (drivers/net/wireguard/receive.c,
// counter_validate): a ring of 64-bit blocks where advancing the window zeroes whole blocks
// instead of shifting bits, so an update costs O(blocks skipped), never O(bits).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

class ReplayWindow {
 public:
  static constexpr size_t kBlockBits = 64;
  static constexpr size_t kBlocks = kReplayWindowBits / kBlockBits;  // 128
  // One block is "redundant" (RFC 6479 section 2): the block holding the top counter is partly in
  // the future, so only kReplayWindowBits - 64 counters behind the top are guaranteed tracked.
  static constexpr uint64_t kWindowSize = kReplayWindowBits - kBlockBits;  // 8128

  // Call ONLY after the packet authenticated (otherwise a forged counter would slide the window).
  // Returns true if `counter` is fresh (and records it), false if it is a replay, too old (more
  // than kWindowSize behind the greatest accepted counter), or >= kRejectAfterMessages.
  bool check_and_update(uint64_t counter);
  void reset();
  // Highest counter accepted so far (0 if none).
  uint64_t greatest() const { return top_ == 0 ? 0 : top_ - 1; }

 private:
  void advance_to(uint64_t pos);

  // Bit positions are counter + 1, so top_ == 0 means "nothing accepted yet" and counter 0 is
  // still an ordinary value. top_ is the position of the greatest accepted counter.
  uint64_t top_ = 0;
  std::array<uint64_t, kBlocks> bitmap_{};
};

static_assert((ReplayWindow::kBlocks & (ReplayWindow::kBlocks - 1)) == 0, "ring size must be a power of two");

}  // namespace xsktun::proto
