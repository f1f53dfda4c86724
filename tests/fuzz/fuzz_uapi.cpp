// Fuzz: the UAPI set parser, and formatting whatever it accepts.
#include <string_view>

#include "xsktun/control/uapi.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = xsktun::control::parse_uapi_set(std::string_view(reinterpret_cast<const char*>(data), size));
  (void)r;
  return 0;
}
