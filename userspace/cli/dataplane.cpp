#include "xsktun/cli/dataplane.h"

#include <sched.h>

#include <algorithm>
#include <cstring>

#include "xsktun/common/log.h"
#include "xsktun/xdp/nic.h"

namespace xsktun::cli {

// CPUs this process may run on (its affinity mask, which a cpuset or taskset narrows).
int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return CPU_COUNT(&set);
}

// Adds the XDP program's verdict counters to the `counters` object as xdp_* keys.
void add_xdp_stats(nlohmann::json& j, const std::array<uint64_t, XSKTUN_STAT__MAX>& st) {
  static const char* const kNames[XSKTUN_STAT__MAX] = {
#define XSKTUN_STAT_KEY(upper, key) #key,
      XSKTUN_STATS(XSKTUN_STAT_KEY)
#undef XSKTUN_STAT_KEY
  };
  for (int i = 0; i < XSKTUN_STAT__MAX; ++i) j["counters"][kNames[i]] = st[static_cast<size_t>(i)];
}

// Adds the kernel's AF_XDP statistics (XDP_STATISTICS, summed over the queues) as xsk_* keys.
void add_xsk_stats(nlohmann::json& j, const xdp_statistics& s) {
  auto& c = j["counters"];
  c["xsk_rx_dropped"] = s.rx_dropped;                     // frames the socket dropped (no room, too long)
  c["xsk_rx_invalid_descs"] = s.rx_invalid_descs;         // bad fill ring addresses
  c["xsk_tx_invalid_descs"] = s.tx_invalid_descs;         // TX descriptors the kernel refused
  c["xsk_rx_ring_full"] = s.rx_ring_full;                 // frames dropped: RX ring full
  c["xsk_fill_ring_empty"] = s.rx_fill_ring_empty_descs;  // times no fill buffer was posted
  c["xsk_tx_ring_empty"] = s.tx_ring_empty_descs;         // times the kernel found the TX ring empty
}

// `--queues`, or by default: in XDP mode the NIC's RX queues, in socket mode the CPUs, at most
// the CPUs this process may run on (more workers than CPUs only when asked for).
size_t worker_count(const UpOptions& o, int cpus) {
  if (o.queues > 0) return static_cast<size_t>(o.queues);
  int n = o.tries_xdp() ? std::min(xdp::nic_rx_queues(o.nic), cpus) : cpus;
  return static_cast<size_t>(std::clamp(n, 1, XSKTUN_MAX_QUEUES));
}

// The TUN's queues beyond its first, one per further worker; in XDP mode the steering program
// (each flow to one worker, a peer's flows spread) and the no-route filter on the device.
bool open_tun_queues(io::TunDevice& tun, size_t workers, const xdp::XdpObject* bpf,
                     std::vector<std::unique_ptr<io::TunDevice>>* out, std::string* err) {
  for (size_t i = 1; i < workers; ++i) {
    auto q = tun.open_queue(err);
    if (!q) return false;
    out->push_back(std::move(q));
  }
  if (!bpf) return true;  // socket mode: the kernel's flow hash picks the queue
  // A kernel without them (before 4.19/4.20) still runs the tunnel: the device drops what has no
  // route (drop_no_route) and the kernel's flow hash keeps each flow on one queue.
  if (int rc = tun.set_filter_bpf(bpf->tun_filter_fd()); rc < 0)
    XLOG_WARN("TUNSETFILTEREBPF on %s: %s; unrouted packets are dropped in userspace instead",
              tun.name().c_str(), strerror(-rc));
  if (int rc = workers > 1 ? tun.set_steering_bpf(bpf->tun_steer_fd()) : 0; rc < 0)
    XLOG_WARN("TUNSETSTEERINGEBPF on %s: %s; the kernel's flow hash picks each packet's worker",
              tun.name().c_str(), strerror(-rc));
  return true;
}

// Worker 0 also reads the kernel socket (handshakes, the slow path: the bind's own receive
// side); the AF_XDP queues beyond the workers go round-robin to them, each through a lane of its
// own that counts into its worker's counters.
void add_xsk_receivers(device::Runner& runner, device::Device& dev, xdp::XskBind& xsk, size_t workers,
                       std::vector<std::unique_ptr<io::UdpIo>>& lanes) {
  runner.add_receiver(0, xsk);
  for (size_t q = workers; q < xsk.queue_count(); ++q) {
    device::Counters& c = dev.lane_counters(q % workers);
    runner.add_receiver(q % workers, *lanes.emplace_back(xsk.lane(q, c)));
  }
}

// What the TUN queues and UDP sockets count themselves (io/ must not depend on device/, so they
// keep their own atomics), summed into `counters` with the device's.
void add_io_stats(nlohmann::json& j, const io::TunDevice& tun,
                  const std::vector<std::unique_ptr<io::TunDevice>>& more,
                  const std::vector<const io::UdpSocket*>& sockets) {
  uint64_t read_drops = tun.read_drops(), write_errors = tun.write_errors(), split = tun.split_packets(),
           coalesced = tun.coalesced_packets();
  for (const auto& q : more) {
    read_drops += q->read_drops();
    write_errors += q->write_errors();
    split += q->split_packets();
    coalesced += q->coalesced_packets();
  }
  uint64_t drops = 0, send_errors = 0, truncated = 0, gso = 0, gro = 0;
  for (const auto* s : sockets) {
    drops += s->receive_drops();
    send_errors += s->send_errors();
    truncated += s->truncated();
    gso += s->gso_sends();
    gro += s->gro_receives();
  }
  auto& c = j["counters"];
  c["udp_socket_drops"] = drops;           // full receive buffers (SO_MEMINFO)
  c["udp_send_errors"] = send_errors;      // datagrams the kernel refused (also in drop_udp_send)
  c["udp_truncated"] = truncated;          // datagrams longer than a buffer (also in drop_malformed)
  c["udp_gso_sends"] = gso;                // UDP_SEGMENT messages sent
  c["udp_gro_receives"] = gro;             // coalesced super-datagrams received
  c["tun_read_drops"] = read_drops;        // malformed reads (bad virtio header or offsets)
  c["tun_write_errors"] = write_errors;    // packets the TUN refused (also in drop_tun_write)
  c["tun_split_packets"] = split;          // super-packets read and split
  c["tun_coalesced_packets"] = coalesced;  // packets written merged into a super-packet
}

// `workers` and, per worker, the packets and bytes it carried: how the load spreads.
void add_worker_stats(nlohmann::json& j, const device::Device& dev) {
  using device::Counter;
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < dev.lane_count(); ++i) {
    const auto& c = dev.lane_counters(i);
    arr.push_back({{"rx_packets", c.get(Counter::rx_packets)},
                   {"rx_bytes", c.get(Counter::rx_bytes)},
                   {"tx_packets", c.get(Counter::tx_packets)},
                   {"tx_bytes", c.get(Counter::tx_bytes)}});
  }
  j["workers"] = dev.lane_count();
  j["worker"] = std::move(arr);
}

}  // namespace xsktun::cli
