// Small helpers the unit tests share: recognisable keys, polling a condition, a temporary
// directory.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
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

// A fresh directory under /tmp (/tmp/PREFIX-XXXXXX), removed with all it holds when the object
// goes; path() is empty if it could not be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace xsktun::test_util
