// Fuzz: the wg-style config file parser (no DNS: hostnames resolve to a fixed address).
#include <string_view>

#include "xsktun/control/config_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto resolver = [](const std::string&, uint16_t port) -> std::variant<xsktun::Endpoint, std::string> {
    return xsktun::Endpoint{*xsktun::IpAddr::parse("192.0.2.9"), port};
  };
  auto r = xsktun::control::parse_config_file(std::string_view(reinterpret_cast<const char*>(data), size),
                                              resolver);
  (void)r;
  return 0;
}
