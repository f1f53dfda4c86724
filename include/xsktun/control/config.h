// A configuration change, as produced by the UAPI "set=1" parser and by the config-file parser,
// and applied atomically by the device; and the snapshot that "get=1" and `xsktun show` print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "xsktun/common/ip.h"
#include "xsktun/common/secret.h"

namespace xsktun::control {

struct PeerChange {
  Key public_key{};
  bool remove = false;
  bool update_only = false;                // only change an existing peer, never create one
  std::optional<SecretKey> preshared_key;  // all-zero key = no PSK
  std::optional<Endpoint> endpoint;
  std::optional<uint16_t> persistent_keepalive;  // seconds, 0 = off
  bool replace_allowed_ips = false;
  std::vector<Prefix> allowed_ips;  // host bits may be set; the table masks them
};

struct ConfigChange {
  std::optional<SecretKey> private_key;  // all-zero key = remove the private key
  std::optional<uint16_t> listen_port;
  std::optional<uint32_t> fwmark;  // 0 = off
  bool replace_peers = false;
  std::vector<PeerChange> peers;
};

struct PeerSnapshot {
  Key public_key{};
  SecretKey preshared_key;
  std::optional<Endpoint> endpoint;
  int64_t last_handshake_sec = 0;  // wall clock, 0 = never
  int64_t last_handshake_nsec = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
  uint16_t persistent_keepalive = 0;
  std::vector<Prefix> allowed_ips;
};

struct DeviceSnapshot {
  std::optional<SecretKey> private_key;
  Key public_key{};
  uint16_t listen_port = 0;
  uint32_t fwmark = 0;
  std::vector<PeerSnapshot> peers;
};

}  // namespace xsktun::control
