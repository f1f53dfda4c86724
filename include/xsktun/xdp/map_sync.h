// Keeps the pinned BPF maps (sessions, peers, allowed_ips_v4/v6) in step with the device, as its
// DeviceObserver. The allowed-IPs maps mirror the userspace table (which the hot path reads
// without syscalls): each change writes only the prefixes whose owner changed.
#pragma once

#include <mutex>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "xsktun/device/device.h"

namespace xsktun::xdp {

struct MapFds {
  int sessions = -1;
  int peers = -1;
  int allowed_v4 = -1;
  int allowed_v6 = -1;
};

class MapSync : public device::DeviceObserver {
 public:
  // Failed map writes are counted in `counters` (map_update_errors), which `show` prints.
  MapSync(MapFds fds, device::Counters* counters) : fds_(fds), counters_(counters) {}
  void session_added(uint32_t index, uint32_t peer_id) override;
  void session_removed(uint32_t index) override;
  void peer_updated(uint32_t peer_id, const Key& public_key, const Endpoint& endpoint) override;
  void peer_removed(uint32_t peer_id) override;
  void allowed_ips_changed(std::span<const routing::PrefixChange> delta) override;

 private:
  void write_prefix(const Prefix& p, uint32_t peer, bool remove);
  void failed() { counters_->add(device::Counter::map_update_errors); }

  MapFds fds_;
  device::Counters* counters_;
};

// Reads an allowed-IPs map back (for the test that proves maps and table agree).
std::set<std::pair<std::string, uint32_t>> dump_allowed_map(int fd, int family);

}  // namespace xsktun::xdp
