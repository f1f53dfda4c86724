// Small helpers the unit tests share: recognisable keys and polling a condition.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

#include "xsktun/common/secret.h"

namespace xsktun::test_util {

// A key whose bytes count up from `start`: distinct, recognisable in hex and base64.
inline Key seq_key(uint8_t start) {
  Key k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(start + i);
  return k;
}

// Polls `cond` every millisecond for up to 10 s (a guard against a hang, not a timing assertion).
inline bool eventually(const std::function<bool()>& cond) {
  for (int i = 0; i < 10000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace xsktun::test_util
