#include "xsktun/cli/dataplane.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xsktun/common/log.h"
#include "xsktun/io/udp_socket.h"
#include "xsktun/xdp/nic.h"
#include "xsktun/xdp/xsk_queue.h"

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
  // XDP mode: a worker per NIC queue. More (transmit-only sockets sharing a queue) measured no
  // faster on a 1-queue NIC with 2 CPUs (README, "Benchmark"), so they are asked for, not given.
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
void add_socket_drops(nlohmann::json& j, const std::vector<const io::UdpSocket*>& sockets) {
  uint64_t drops = 0;
  for (const auto* s : sockets) drops += s->receive_drops();
  j["counters"]["udp_socket_drops"] = drops;  // full receive buffers (SO_MEMINFO, the kernel's count)
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

// Frames over the NIC MTU take the kernel socket: follow MTU changes (checked every 200 ms).
void follow_nic_mtu(xdp::XskBind& xsk, const std::string& nic) {
  uint32_t mtu = xdp::nic_mtu(nic);
  if (mtu == 0 || mtu == xsk.nic_mtu()) return;
  XLOG_INFO("%s: MTU %u -> %u; longer frames go through the kernel socket", nic.c_str(), xsk.nic_mtu(), mtu);
  xsk.set_nic_mtu(mtu);
}

namespace {

// XDP mode: attach the program, open one AF_XDP socket per queue; the kernel socket (`udp`,
// moved into the bind) stays for handshakes and the slow path. false and *why on failure, with
// everything it made torn down.
bool setup_xdp(const UpOptions& o, OwnerLock& lock, std::unique_ptr<io::UdpSocket>& udp, DataPlane* dp,
               std::string* why) {
  const size_t workers = dp->workers;
  ModeInfo* mode = &dp->mode;
  std::unique_ptr<xdp::XskBind>* bind = &dp->xsk;
  if (o.nic.empty()) {
    *why = "--nic is required";
    return false;
  }
  // One AF_XDP socket per RX queue of the NIC, so no queue's data falls back to the kernel
  // socket; worker i transmits on queue i's and receives from queues i, i + workers, ...
  // Workers beyond the NIC's queues get a transmit-only socket on queue i % queues.
  int nq = xdp::nic_rx_queues(o.nic);
  if (nq > XSKTUN_MAX_QUEUES) {
    // The xsks map has XSKTUN_MAX_QUEUES slots; frames on the queues beyond reach the kernel
    // socket (the program's fallback, counted as xdp_pass_data_no_xsk).
    XLOG_WARN("%s has %d RX queues; AF_XDP sockets on the first %d only", o.nic.c_str(), nq,
              XSKTUN_MAX_QUEUES);
    nq = XSKTUN_MAX_QUEUES;
  }
  xdp::XdpPlaneOptions po;
  po.tun_ifname = o.ifname;
  po.nic = o.nic;
  po.mode = o.xdp_mode;
  // What a dead xsktun left on the NIC (its program, its pins) is taken over; a live owner's
  // is not, unless --force says so.
  if (!o.force)
    if (auto owner = live_owner_of_nic(o.nic, o.ifname)) {
      *why = o.nic + " carries the XDP program of xsktun " + *owner +
             ", which is running; stop it first (--force replaces it)";
      return false;
    }
  po.force = true;
  lock.record_nic(o.nic);
  po.listen_port = udp->port();
  auto p = xdp::XdpPlane::create(po, why);
  if (!p) return false;
  bool nic_segments_udp = xdp::nic_udp_segmentation(o.nic).value_or(false);
  std::vector<std::unique_ptr<xdp::XskQueue>> queues;
  const size_t nqs = static_cast<size_t>(nq);
  for (int q = 0; q < nq; ++q) {
    xdp::XskOptions xo;
    xo.ifname = o.nic;
    xo.queue = static_cast<uint32_t>(q);
    xo.xsks_map_fd = p->object().xsks_fd();
    xo.zerocopy = o.zerocopy;
    // Workers q + nq, q + 2 nq, ... transmit on this queue too.
    xo.siblings = workers > nqs + static_cast<size_t>(q) ? static_cast<uint32_t>((workers - 1 - q) / nqs) : 0;
    auto xq = xdp::XskQueue::create(xo, why);
    if (!xq) return false;
    if (o.mode == DataMode::kAuto && !xq->zerocopy() && nic_segments_udp) {
      // The --mode auto rule (its measurements: README, "Benchmark"). AF_XDP in copy mode moves
      // every frame through a copy; a NIC that segments UDP itself takes socket mode's 64 KB GSO
      // sends whole.
      *why = o.nic + " segments UDP itself (tx-udp-segmentation) and AF_XDP has no zero-copy on queue " +
             std::to_string(q) + ": socket mode is faster for bulk traffic there (--mode xdp forces XDP)";
      return false;  // queues, then the program and its pins, are torn down on return
    }
    queues.push_back(std::move(xq));
  }
  for (size_t w = nqs; w < workers; ++w) {  // worker w's socket is queues[w]
    auto sib = xdp::XskQueue::create_sibling(*queues[w % nqs], why);
    if (!sib) return false;
    queues.push_back(std::move(sib));
  }
  *bind = std::make_unique<xdp::XskBind>(std::move(udp), std::move(queues));
  // Longer frames go to the kernel socket both ways: in, the program passes data frames the
  // sockets could not take; out, frames over the NIC MTU are sent (and fragmented) by the kernel.
  if (p->object().set_max_redirect_len((*bind)->max_rx_frame()) != 0) {
    *why = "cannot write the config map";
    return false;
  }
  (*bind)->set_nic_mtu(xdp::nic_mtu(o.nic));
  mode->mode = "xdp";
  mode->nic = o.nic;
  mode->attach_mode = p->attach_mode();
  mode->zerocopy = (*bind)->zerocopy();
  mode->queues = nq;
  XLOG_INFO("xdp mode on %s: %s attach, %d queue(s), %zu transmit-only socket(s), %s, NIC MTU %u",
            o.nic.c_str(), mode->attach_mode.c_str(), nq, workers > nqs ? workers - nqs : 0,
            mode->zerocopy ? "zero-copy" : "copy mode (zero-copy not supported by the driver)",
            (*bind)->nic_mtu());
  dp->plane = std::move(p);
  return true;
}

}  // namespace

std::unique_ptr<DataPlane> open_data_plane(const UpOptions& o, uint16_t port, OwnerLock& lock,
                                           std::string* err) {
  auto dp = std::make_unique<DataPlane>();
  dp->workers = worker_count(o, usable_cpus());
  bool mq = dp->workers > 1;
  dp->tun = io::TunDevice::create(o.ifname, o.mtu, err, io::TunOffload::kAuto, mq);
  // A TUN of the same name whose owner just died is unregistered asynchronously and answers
  // EBUSY for a moment (seen right after a SIGKILLed daemon): give it up to 3 s.
  for (int i = 0; !dp->tun && i < 30 && err->find(strerror(EBUSY)) != std::string::npos; ++i) {
    usleep(100 * 1000);
    err->clear();
    dp->tun = io::TunDevice::create(o.ifname, o.mtu, err, io::TunOffload::kAuto, mq);
  }
  if (!dp->tun) {
    *err = "cannot create TUN " + o.ifname + ": " + *err;
    return nullptr;
  }
  auto udp = io::UdpSocket::open(port, err);
  if (!udp) {
    *err = "cannot open UDP port " + std::to_string(port) + ": " + *err;
    return nullptr;
  }
  // In auto mode any failure of XDP mode falls back to socket mode.
  if (o.tries_xdp()) {
    std::string why;
    if (setup_xdp(o, lock, udp, dp.get(), &why)) {
      dp->outer = dp->xsk.get();
    } else if (o.mode == DataMode::kXdp) {
      *err = "xdp mode: " + why;
      return nullptr;
    } else {
      XLOG_INFO("mode auto: not XDP on %s: %s; using socket mode", o.nic.c_str(), why.c_str());
    }
  } else if (o.mode == DataMode::kAuto) {
    XLOG_INFO("mode auto: no --nic (XSKTUN_NIC) given; using socket mode");
  }
  // Socket mode: one socket per worker, an SO_REUSEPORT group on the port just bound.
  if (!dp->xsk) {
    uint16_t bound = udp->port();
    udp.reset();
    dp->group = io::UdpGroup::open(bound, dp->workers, err);
    if (!dp->group) {
      *err = "cannot open UDP port " + std::to_string(bound) + ": " + *err;
      return nullptr;
    }
    dp->outer = dp->group.get();
  }
  if (!open_tun_queues(*dp->tun, dp->workers, dp->plane ? &dp->plane->object() : nullptr, &dp->tun_queues,
                       err)) {
    *err = "TUN " + o.ifname + ": " + *err;
    return nullptr;
  }
  return dp;
}

std::vector<const io::UdpSocket*> DataPlane::sockets() const {
  std::vector<const io::UdpSocket*> out;
  if (xsk) out.push_back(&xsk->kernel_socket());
  for (size_t i = 0; group && i < group->size(); ++i) out.push_back(&group->member(i));
  return out;
}

}  // namespace xsktun::cli
