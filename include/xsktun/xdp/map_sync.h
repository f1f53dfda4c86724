// Keeps the pinned BPF maps (sessions, peers, allowed_ips_v4/v6, the listen port in config) in
// step with the device, as its DeviceObserver: every change the maps mirror arrives this way. The allowed-IPs
// maps mirror the userspace table (which the hot path reads without syscalls): each change writes only the
// prefixes whose owner changed.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "xsktun/device/device.h"
#include "xsktun/xdp/xdp_object.h"

namespace xsktun::xdp {

class MapSync : public device::DeviceObserver {
 public:
  // Failed map writes are counted in `counters` (map_update_errors), which `show` prints.
  // `set_port` writes the listen port into the program's config (XdpPlane owns that map: its
  // other fields are the plane's); 0 or -errno.
  using SetPort = std::function<int(uint16_t)>;
  MapSync(MapFds fds, device::Counters* counters, SetPort set_port = {})
      : fds_(fds), counters_(counters), set_port_(std::move(set_port)) {}
  void session_added(uint32_t index, uint32_t peer_id) override;
  void session_removed(uint32_t index) override;
  void peer_updated(uint32_t peer_id, const Key& public_key, const Endpoint& endpoint) override;
  void peer_removed(uint32_t peer_id) override;
  void allowed_ips_changed(std::span<const routing::PrefixChange> delta) override;
  void listen_port_changed(uint16_t port) override {
    if (set_port_ && set_port_(port) != 0) failed();
  }

 private:
  void write_prefix(const Prefix& p, uint32_t peer, bool remove);
  void failed() { counters_->add(device::Counter::map_update_errors); }

  MapFds fds_;
  device::Counters* counters_;
  SetPort set_port_;
};

// Reads an allowed-IPs map back (for the test that proves maps and table agree).
std::set<std::pair<std::string, uint32_t>> dump_allowed_map(int fd, int family);

}  // namespace xsktun::xdp
