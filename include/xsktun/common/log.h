// Minimal leveled logging to stderr. Never pass key material to it.
#pragma once

#include <cstdarg>
#include <string_view>

namespace xsktun::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_level(Level l);
Level level();
// "error", "warn", "info", "debug" (also "silent" = errors only); false if unknown.
bool parse_level(std::string_view s, Level* out);
void write(Level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace xsktun::log

#define XLOG_ERROR(...) ::xsktun::log::write(::xsktun::log::Level::kError, __VA_ARGS__)
#define XLOG_WARN(...) ::xsktun::log::write(::xsktun::log::Level::kWarn, __VA_ARGS__)
#define XLOG_INFO(...) ::xsktun::log::write(::xsktun::log::Level::kInfo, __VA_ARGS__)
#define XLOG_DEBUG(...)                                                \
  do {                                                                 \
    if (::xsktun::log::level() >= ::xsktun::log::Level::kDebug)        \
      ::xsktun::log::write(::xsktun::log::Level::kDebug, __VA_ARGS__); \
  } while (0)
