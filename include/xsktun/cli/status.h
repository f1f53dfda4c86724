// `xsktun show`: the JSON status (a contract: interface, public_key, listen_port, mode, aead,
// peers, counters, xdp) and its human-readable rendering. "aead" is the data path's AEAD
// backend in use: "openssl" (RFC 8439 over OpenSSL's ChaCha20 and Poly1305) or "libsodium";
// "aead_fallbacks" counts messages the OpenSSL backend handed to libsodium.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "xsktun/control/config.h"
#include "xsktun/device/counters.h"

namespace xsktun::cli {

struct ModeInfo {
  std::string mode = "socket";  // "socket" or "xdp"
  std::string nic;              // xdp only
  std::string attach_mode;      // "native" / "generic"
  bool zerocopy = false;
  int queues = 0;
};

nlohmann::json build_status(const std::string& ifname, const ModeInfo& mode,
                            const control::DeviceSnapshot& snap, const device::CounterValues& counters,
                            size_t mtu, int64_t now_unix);
std::string format_status_text(const nlohmann::json& status);

}  // namespace xsktun::cli
