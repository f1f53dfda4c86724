#include "xsktun/common/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>

namespace xsktun::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
const char* const kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void set_level(Level l) { g_level = static_cast<int>(l); }
Level level() { return static_cast<Level>(g_level.load()); }

bool parse_level(std::string_view s, Level* out) {
  if (s == "silent") {
    *out = Level::kError;
    return true;
  }
  for (int i = 0; i < 4; ++i)
    if (s == kNames[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  return false;
}

void write(Level l, const char* fmt, ...) {
  if (static_cast<int>(l) > g_level.load()) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  localtime_r(&ts.tv_sec, &t);
  fprintf(stderr, "%02d:%02d:%02d.%03ld xsktun %s: %s\n", t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000,
          kNames[static_cast<int>(l)], msg);
}

}  // namespace xsktun::log
