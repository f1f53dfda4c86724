// ReplayWindow against the kernel's own selftest table (drivers/net/wireguard/selftest/counter.c):
// the 34 numbered T(n, v) cases and the six bulk sweeps at the end of that file, plus a few
// properties the table does not pin down (greatest(), reset(), exact window edge after a wrap).
#include "xsktun/protocol/replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace xsktun::proto {
namespace {

constexpr uint64_t kWin = ReplayWindow::kWindowSize;  // kernel COUNTER_WINDOW_SIZE
constexpr uint64_t kLim = kWin + 1;                   // kernel T_LIM
constexpr uint64_t kReject = kRejectAfterMessages;

struct Step {
  uint64_t counter;
  bool fresh;
};

struct Scenario {
  std::string name;
  std::vector<Step> steps;  // applied in order to one freshly constructed window
};

std::ostream& operator<<(std::ostream& os, const Scenario& s) { return os << s.name; }

// The numbered cases 1..34, in order, on one window (kernel selftest "T_INIT; T(1)..T(34)").
Scenario numbered_cases() {
  return {"numbered",
          {
              /*  1 */ {0, true},
              /*  2 */ {1, true},
              /*  3 */ {1, false},
              /*  4 */ {9, true},
              /*  5 */ {8, true},
              /*  6 */ {7, true},
              /*  7 */ {7, false},
              /*  8 */ {kLim, true},
              /*  9 */ {kLim - 1, true},
              /* 10 */ {kLim - 1, false},
              /* 11 */ {kLim - 2, true},
              /* 12 */ {2, true},
              /* 13 */ {2, false},
              /* 14 */ {kLim + 16, true},
              /* 15 */ {3, false},
              /* 16 */ {kLim + 16, false},
              /* 17 */ {kLim * 4, true},
              /* 18 */ {kLim * 4 - (kLim - 1), true},
              /* 19 */ {10, false},
              /* 20 */ {kLim * 4 - kLim, false},
              /* 21 */ {kLim * 4 - (kLim + 1), false},
              /* 22 */ {kLim * 4 - (kLim - 2), true},
              /* 23 */ {kLim * 4 + 1 - kLim, false},
              /* 24 */ {0, false},
              /* 25 */ {kReject, false},
              /* 26 */ {kReject - 1, true},
              /* 27 */ {kReject, false},
              /* 28 */ {kReject - 1, false},
              /* 29 */ {kReject - 2, true},
              /* 30 */ {kReject + 1, false},
              /* 31 */ {kReject + 2, false},
              /* 32 */ {kReject - 2, false},
              /* 33 */ {kReject - 3, true},
              /* 34 */ {0, false},
          }};
}

// Appends T(i, true) for i = from, from+1, ..., to.
void ascending(std::vector<Step>& s, uint64_t from, uint64_t to) {
  for (uint64_t i = from; i <= to; ++i) s.push_back({i, true});
}
// Appends T(i, true) for i = from, from-1, ..., to.
void descending(std::vector<Step>& s, uint64_t from, uint64_t to) {
  for (uint64_t i = from + 1; i-- > to;) s.push_back({i, true});
}

// The six bulk sweeps at the end of counter.c, each starting from a fresh window.
std::vector<Scenario> bulk_cases() {
  std::vector<Scenario> out;
  {
    Scenario s{"forward_1_to_W_then_0", {}};  // 0 is exactly kWin behind: still inside
    ascending(s.steps, 1, kWin);
    s.steps.push_back({0, true});
    s.steps.push_back({0, false});
    out.push_back(s);
  }
  {
    Scenario s{"forward_2_to_W1_then_1_then_0", {}};  // 1 is at the edge, 0 one past it
    ascending(s.steps, 2, kWin + 1);
    s.steps.push_back({1, true});
    s.steps.push_back({0, false});
    out.push_back(s);
  }
  {
    Scenario s{"backward_W_to_0", {}};
    descending(s.steps, kWin, 0);
    out.push_back(s);
  }
  {
    Scenario s{"backward_W1_to_1_then_0", {}};
    descending(s.steps, kWin + 1, 1);
    s.steps.push_back({0, false});
    out.push_back(s);
  }
  {
    Scenario s{"backward_W_to_1_then_W1_then_0", {}};
    descending(s.steps, kWin, 1);
    s.steps.push_back({kWin + 1, true});
    s.steps.push_back({0, false});
    out.push_back(s);
  }
  {
    Scenario s{"backward_W_to_1_then_0_then_W1", {}};
    descending(s.steps, kWin, 1);
    s.steps.push_back({0, true});
    s.steps.push_back({kWin + 1, true});
    out.push_back(s);
  }
  return out;
}

std::vector<Scenario> all_cases() {
  std::vector<Scenario> all{numbered_cases()};
  for (auto& s : bulk_cases()) all.push_back(std::move(s));
  return all;
}

class KernelCounterSelftest : public ::testing::TestWithParam<Scenario> {};

TEST_P(KernelCounterSelftest, EveryStepMatches) {
  ReplayWindow w;
  const auto& steps = GetParam().steps;
  ASSERT_FALSE(steps.empty());
  for (size_t i = 0; i < steps.size(); ++i) {
    // Step numbers are 1-based, like the kernel's test_num within the scenario.
    EXPECT_EQ(w.check_and_update(steps[i].counter), steps[i].fresh)
        << "step " << (i + 1) << " counter " << steps[i].counter;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, KernelCounterSelftest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(ReplayWindow, KernelTableSizes) {
  // Guards against the table silently shrinking: 34 numbered cases, and the sweep lengths.
  EXPECT_EQ(numbered_cases().steps.size(), 34u);
  const auto bulk = bulk_cases();
  ASSERT_EQ(bulk.size(), 6u);
  EXPECT_EQ(bulk[0].steps.size(), kWin + 2);
  EXPECT_EQ(bulk[2].steps.size(), kWin + 1);
  EXPECT_EQ(kWin, 8128u);
}

TEST(ReplayWindow, GreatestTracksHighestAccepted) {
  ReplayWindow w;
  EXPECT_EQ(w.greatest(), 0u);
  EXPECT_TRUE(w.check_and_update(5));
  EXPECT_EQ(w.greatest(), 5u);
  EXPECT_TRUE(w.check_and_update(3));
  EXPECT_EQ(w.greatest(), 5u);
  EXPECT_FALSE(w.check_and_update(5));
  EXPECT_FALSE(w.check_and_update(kReject));
  EXPECT_EQ(w.greatest(), 5u);
  EXPECT_TRUE(w.check_and_update(1000));
  EXPECT_EQ(w.greatest(), 1000u);
}

TEST(ReplayWindow, ResetForgetsEverything) {
  ReplayWindow w;
  EXPECT_TRUE(w.check_and_update(0));
  EXPECT_TRUE(w.check_and_update(100000));
  EXPECT_FALSE(w.check_and_update(0));
  w.reset();
  EXPECT_EQ(w.greatest(), 0u);
  EXPECT_TRUE(w.check_and_update(0));
  EXPECT_TRUE(w.check_and_update(100000));
}

// After the ring has wrapped several times, the window is exactly [top - kWin, top]: every counter
// in it is accepted once (no stale bits left from earlier laps) and rejected the second time.
TEST(ReplayWindow, ExactWindowAfterWrap) {
  ReplayWindow w;
  for (uint64_t c = 0; c < 3 * kReplayWindowBits; c += 7) ASSERT_TRUE(w.check_and_update(c)) << c;
  const uint64_t top = 10 * kReplayWindowBits + 37;
  ASSERT_TRUE(w.check_and_update(top));
  EXPECT_FALSE(w.check_and_update(top - kWin - 1));
  for (uint64_t c = top - kWin; c < top; ++c) ASSERT_TRUE(w.check_and_update(c)) << c;
  for (uint64_t c = top - kWin; c <= top; ++c) ASSERT_FALSE(w.check_and_update(c)) << c;
}

// A small forward step only clears the blocks it moves into: bits already recorded inside the
// window must survive.
TEST(ReplayWindow, SmallAdvanceKeepsHistory) {
  ReplayWindow w;
  for (uint64_t c = 0; c < 200; ++c) ASSERT_TRUE(w.check_and_update(c));
  ASSERT_TRUE(w.check_and_update(300));
  for (uint64_t c = 0; c < 200; ++c) EXPECT_FALSE(w.check_and_update(c)) << c;
  for (uint64_t c = 200; c < 300; ++c) EXPECT_TRUE(w.check_and_update(c)) << c;
}

}  // namespace
}  // namespace xsktun::proto
