// The daemon's data plane, set up and reported: how many workers, the TUN's queues and BPF
// programs, the receivers beyond the workers, and the statistics of the data path for `show`.
#pragma once

#include <linux/if_xdp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "xsktun/cli/daemon.h"
#include "xsktun/cli/owner_lock.h"
#include "xsktun/cli/status.h"
#include "xsktun/device/device.h"
#include "xsktun/device/runner.h"
#include "xsktun/io/tun.h"
#include "xsktun/io/udp_group.h"
#include "xsktun/io/udp_socket.h"
#include "xsktun/xdp/xdp_object.h"
#include "xsktun/xdp/xdp_plane.h"
#include "xsktun/xdp/xsk_bind.h"
#include "xsktun_shared.h"

namespace xsktun::cli {

// CPUs this process may run on (its affinity mask, which a cpuset or taskset narrows).
int usable_cpus();
// `--queues`, or by default: in XDP mode the NIC's RX queues, in socket mode the CPUs, at most
// the CPUs this process may run on (more workers than CPUs only when asked for).
size_t worker_count(const UpOptions& o, int cpus);
// The TUN's queues beyond its first, one per further worker; in XDP mode the steering program
// (each flow to one worker, a peer's flows spread) and the no-route filter on the device.
bool open_tun_queues(io::TunDevice& tun, size_t workers, const xdp::XdpObject* bpf,
                     std::vector<std::unique_ptr<io::TunDevice>>* out, std::string* err);
// Worker 0 also reads the kernel socket (handshakes, the slow path: the bind's own receive
// side); the AF_XDP queues beyond the workers go round-robin to them, each through a lane (kept
// in `lanes`) that counts into its worker's counters.
void add_xsk_receivers(device::Runner& runner, device::Device& dev, xdp::XskBind& xsk, size_t workers,
                       std::vector<std::unique_ptr<io::UdpIo>>& lanes);

// `show` JSON, added to `counters` (and `workers` / `worker`):
// the XDP program's verdicts (xdp_*, tun_drop_no_route),
void add_xdp_stats(nlohmann::json& j, const std::array<uint64_t, XSKTUN_STAT__MAX>& st);
// the kernel's AF_XDP statistics (XDP_STATISTICS, summed over the queues) as xsk_* keys,
void add_xsk_stats(nlohmann::json& j, const xdp_statistics& s);
// the kernel's drop count of every UDP socket (full receive buffers) as udp_socket_drops
// (everything the sockets and TUN queues count themselves is in the device's counters),
void add_socket_drops(nlohmann::json& j, const std::vector<const io::UdpSocket*>& sockets);
// and per worker the packets and bytes it carried.
void add_worker_stats(nlohmann::json& j, const device::Device& dev);

// The packet I/O of one interface in the mode chosen: the TUN (a queue per worker) and either
// the XDP program with its AF_XDP sockets (the kernel socket beside them) or an SO_REUSEPORT
// group of UDP sockets. Members are destroyed in reverse: sockets close before the program is
// detached and its pins removed, the TUN last.
struct DataPlane {
  ModeInfo mode;
  size_t workers = 1;
  std::unique_ptr<io::TunDevice> tun;
  std::vector<std::unique_ptr<io::TunDevice>> tun_queues;  // workers 1..N-1
  std::unique_ptr<xdp::XdpPlane> plane;                    // XDP mode
  std::unique_ptr<xdp::XskBind> xsk;                       // XDP mode (owns the kernel socket)
  std::unique_ptr<io::UdpGroup> group;                     // socket mode
  io::UdpIo* outer = nullptr;                              // what the device sends through

  io::TunDevice& tun_queue(size_t worker) { return worker == 0 ? *tun : *tun_queues[worker - 1]; }
  // Every kernel UDP socket it reads (for their counters in `show`).
  std::vector<const io::UdpSocket*> sockets() const;
};

// Opens the TUN and the UDP port, then XDP mode when o.tries_xdp() (auto mode falls back to
// socket mode, logged), else socket mode. nullptr and *err (the user's message) on failure.
std::unique_ptr<DataPlane> open_data_plane(const UpOptions& o, uint16_t port, OwnerLock& lock,
                                           std::string* err);

// In XDP mode frames over the NIC MTU take the kernel socket: re-reads the MTU, logs a change.
void follow_nic_mtu(xdp::XskBind& xsk, const std::string& nic);

}  // namespace xsktun::cli
