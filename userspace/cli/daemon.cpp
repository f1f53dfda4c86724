// The daemon: TUN + UDP socket + Device + Runner + UAPI and status sockets, signal handling,
// readiness reporting to the parent, and a teardown that leaves nothing behind.
#include "xsktun/cli/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>

#include "xsktun/cli/control_socket.h"
#include "xsktun/cli/dataplane.h"
#include "xsktun/cli/metrics.h"
#include "xsktun/cli/owner_lock.h"
#include "xsktun/cli/privileges.h"
#include "xsktun/cli/status.h"
#include "xsktun/common/log.h"
#include "xsktun/control/config_file.h"
#include "xsktun/control/uapi_server.h"
#include "xsktun/device/runner.h"
#include "xsktun/io/tun.h"
#include "xsktun/io/udp_group.h"
#include "xsktun/io/udp_socket.h"
#include "xsktun/xdp/map_sync.h"
#include "xsktun/xdp/nic.h"
#include "xsktun/xdp/xdp_plane.h"
#include "xsktun/xdp/xsk_bind.h"

namespace xsktun::cli {

namespace {

constexpr const char* kUapiDir = "/var/run/wireguard";

class DeviceUapi : public control::UapiHandler {
 public:
  explicit DeviceUapi(device::Device& d) : dev_(d) {}
  control::DeviceSnapshot get() override { return dev_.snapshot(); }
  control::UapiError set(const control::ConfigChange& c) override {
    std::string err;
    int rc = dev_.apply(c, &err);  // leaves this thread with no session key (it may seal)
    if (rc) XLOG_WARN("uapi set failed: %s", err.c_str());
    return control::UapiError{rc, err};
  }

 private:
  device::Device& dev_;
};

// Reports readiness (or the error) from the detached child to the waiting parent.
struct ReadyPipe {
  int fd = -1;
  void report(const std::string& msg) {
    if (fd < 0) return;
    (void)!write(fd, msg.data(), msg.size());
    close(fd);
    fd = -1;
  }
};

// Whether the XDP program this daemon attached is still on the NIC (XdpPlane::attached: a
// kernel id query, no fds). Once it was gone the answer stays false (see daemon_main), and the
// loss is logged once.
class XdpWatch {
 public:
  XdpWatch(const xdp::XdpPlane& plane, std::string nic, std::string ifname)
      : plane_(plane), nic_(std::move(nic)), ifname_(std::move(ifname)) {}

  bool attached() {
    std::lock_guard lock(mu_);
    if (lost_) return false;
    if (plane_.attached()) return true;
    lost_ = true;
    XLOG_ERROR(
        "the XDP program was detached from %s by someone else; received data now takes the kernel "
        "UDP socket (slower); `xsktun down %s` and `up` again to restore XDP",
        nic_.c_str(), ifname_.c_str());
    return false;
  }

 private:
  const xdp::XdpPlane& plane_;
  std::string nic_, ifname_;
  std::mutex mu_;
  bool lost_ = false;
};

// Frames over the NIC MTU take the kernel socket: follow MTU changes (checked every 200 ms).
void follow_nic_mtu(xdp::XskBind& xsk, const std::string& nic) {
  uint32_t mtu = xdp::nic_mtu(nic);
  if (mtu == 0 || mtu == xsk.nic_mtu()) return;
  XLOG_INFO("%s: MTU %u -> %u; longer frames go through the kernel socket", nic.c_str(), xsk.nic_mtu(), mtu);
  xsk.set_nic_mtu(mtu);
}

bool setup_xdp(const UpOptions& o, size_t workers, OwnerLock& lock, std::unique_ptr<io::UdpSocket>& udp,
               std::unique_ptr<xdp::XdpPlane>* plane, std::unique_ptr<xdp::XskBind>* bind, ModeInfo* mode,
               std::string* why) {
  if (o.nic.empty()) {
    *why = "--nic is required";
    return false;
  }
  // One AF_XDP socket per RX queue of the NIC, so no queue's data falls back to the kernel
  // socket; worker i transmits on queue i's and receives from queues i, i + workers, ...
  int nq = xdp::nic_rx_queues(o.nic);
  if (static_cast<int>(workers) > nq) {
    *why = "--queues " + std::to_string(workers) + ": " + o.nic + " has " + std::to_string(nq) +
           " RX queue(s) (ethtool -L " + o.nic + " combined N adds more)";
    return false;
  }
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
  for (int q = 0; q < nq; ++q) {
    xdp::XskOptions xo;
    xo.ifname = o.nic;
    xo.queue = static_cast<uint32_t>(q);
    xo.xsks_map_fd = p->object().xsks_fd();
    xo.zerocopy = o.zerocopy;
    auto xq = xdp::XskQueue::create(xo, why);
    if (!xq) return false;
    if (o.mode == DataMode::kAuto && !xq->zerocopy() && nic_segments_udp) {
      // The --mode auto rule (README, "Benchmark"). AF_XDP in copy mode moves every frame
      // through a copy; a NIC that segments UDP itself takes socket mode's 64 KB GSO sends
      // whole. scripts/bench.sh on veth as created (tx-udp-segmentation on) measured socket mode
      // ahead on bulk throughput; with it off (profile nogso) XDP mode matched or beat it.
      *why = o.nic + " segments UDP itself (tx-udp-segmentation) and AF_XDP has no zero-copy on queue " +
             std::to_string(q) + ": socket mode is faster for bulk traffic there (--mode xdp forces XDP)";
      return false;  // queues, then the program and its pins, are torn down on return
    }
    queues.push_back(std::move(xq));
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
  XLOG_INFO(
      "xdp mode on %s: %s attach, %d queue(s), %s, NIC MTU %u", o.nic.c_str(), mode->attach_mode.c_str(), nq,
      mode->zerocopy ? "zero-copy" : "copy mode (zero-copy not supported by the driver)", (*bind)->nic_mtu());
  *plane = std::move(p);
  return true;
}

int daemon_main(const UpOptions& o, const control::ConfigChange* initial, ReadyPipe& ready) {
  std::string err;
  // Block the stop signals in every thread; the main thread waits for them with sigtimedwait.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Held for the daemon's life: a later `up` tells a dead owner's leftovers from a live one's.
  OwnerLock lock;
  if (!lock.acquire(o.ifname, &err)) {
    ready.report(err);
    return 1;
  }
  size_t workers = worker_count(o, usable_cpus());
  bool mq = workers > 1;
  auto tun = io::TunDevice::create(o.ifname, o.mtu, &err, io::TunOffload::kAuto, mq);
  // A TUN of the same name whose owner just died is unregistered asynchronously and answers
  // EBUSY for a moment (seen right after a SIGKILLed daemon): give it up to 3 s.
  for (int i = 0; !tun && i < 30 && err.find(strerror(EBUSY)) != std::string::npos; ++i) {
    usleep(100 * 1000);
    err.clear();
    tun = io::TunDevice::create(o.ifname, o.mtu, &err, io::TunOffload::kAuto, mq);
  }
  if (!tun) {
    ready.report("cannot create TUN " + o.ifname + ": " + err);
    return 1;
  }
  uint16_t port = initial && initial->listen_port ? *initial->listen_port : 0;
  auto udp = io::UdpSocket::open(port, &err);
  if (!udp) {
    ready.report("cannot open UDP port " + std::to_string(port) + ": " + err);
    return 1;
  }
  // XDP mode: attach the program, open one AF_XDP socket per queue; the kernel socket stays
  // for handshakes and the slow path. In auto mode any failure falls back to socket mode.
  ModeInfo mode;
  std::unique_ptr<xdp::XdpPlane> plane;
  std::unique_ptr<xdp::XskBind> xsk;
  io::UdpIo* outer = udp.get();
  if (o.tries_xdp()) {
    std::string why;
    if (setup_xdp(o, workers, lock, udp, &plane, &xsk, &mode, &why)) {
      outer = xsk.get();
    } else if (o.mode == DataMode::kXdp) {
      ready.report("xdp mode: " + why);
      return 1;
    } else {
      XLOG_INFO("mode auto: not XDP on %s: %s; using socket mode", o.nic.c_str(), why.c_str());
    }
  } else if (o.mode == DataMode::kAuto) {
    XLOG_INFO("mode auto: no --nic (XSKTUN_NIC) given; using socket mode");
  }
  // Socket mode: one socket per worker, an SO_REUSEPORT group on the port just bound.
  std::unique_ptr<io::UdpGroup> group;
  if (!xsk) {
    uint16_t bound = udp->port();
    udp.reset();
    group = io::UdpGroup::open(bound, workers, &err);
    if (!group) {
      ready.report("cannot open UDP port " + std::to_string(bound) + ": " + err);
      return 1;
    }
    outer = group.get();
  }
  std::vector<std::unique_ptr<io::TunDevice>> tun_queues;
  if (!open_tun_queues(*tun, workers, plane ? &plane->object() : nullptr, &tun_queues, &err)) {
    ready.report("TUN " + o.ifname + ": " + err);
    return 1;
  }
  device::SystemClock clock;
  device::Device dev(*tun, *outer, clock);
  std::unique_ptr<xdp::MapSync> sync;
  if (plane) {
    xsk->set_counters(&dev.counters());
    // Everything the maps mirror, the listen port included, follows the device through MapSync.
    xdp::XdpObject& obj = plane->object();
    sync = std::make_unique<xdp::MapSync>(obj.map_fds(), &dev.counters(),
                                          [&obj](uint16_t port) { return obj.set_listen_port(port); });
    dev.set_observer(sync.get());
  }
  if (initial && dev.apply(*initial, &err) != 0) {
    ready.report("configuration rejected: " + err);
    return 1;
  }
  // Everything that needs more than the daemon's running set of capabilities exists now, and
  // no thread has been started yet (capabilities are per thread; new threads inherit them).
  if (!drop_privileges(plane != nullptr, o.user, &err)) {
    ready.report(err);
    return 1;
  }
  DeviceUapi handler(dev);
  control::UapiServer uapi(handler);
  mkdir(kUapiDir, 0755);
  std::string uapi_path = std::string(kUapiDir) + "/" + o.ifname + ".sock";
  if (!uapi.start(uapi_path, &err)) {
    ready.report("cannot open UAPI socket: " + err);
    return 1;
  }
  // Someone may detach the XDP program (`ip link set dev NIC xdp off`). The daemon does not
  // re-attach it: AF_XDP TX keeps working without it and received data then reaches the kernel
  // UDP socket, so the tunnel runs on, slower. The state latches: a program attached later by
  // someone else is not the one wired to our AF_XDP sockets and maps. `show` reports it as
  // "xdp_attached": false (and logs it once); `xsktun down` + `up` restores the fast path.
  std::optional<XdpWatch> xdp_watch;
  if (plane) xdp_watch.emplace(*plane, o.nic, o.ifname);
  StatusServer status;
  std::atomic<int> io_threads{0};  // set once the runner has started
  // "show": compact JSON; "show-pretty": what `xsktun show IF --json` prints (indented here so the
  // client copies it through instead of parsing and re-printing tens of MB for 100k peers);
  // "ping": a liveness check that builds nothing.
  auto status_json = [&]() {
    timespec w = clock.wall();
    auto j = build_status(o.ifname, mode, dev.snapshot(), dev.totals(), dev.mtu(), w.tv_sec);
    j["io_threads"] = io_threads.load();
    std::vector<const io::UdpSocket*> sockets;
    if (xsk) sockets.push_back(&xsk->kernel_socket());
    for (size_t i = 0; group && i < group->size(); ++i) sockets.push_back(&group->member(i));
    add_io_stats(j, *tun, tun_queues, sockets);
    add_worker_stats(j, dev);
    if (xsk) j["xdp"]["known_paths"] = xsk->known_paths();
    if (plane) {
      add_xdp_stats(j, plane->object().stats());
      add_xsk_stats(j, xsk->xsk_statistics());
      j["xdp_attached"] = xdp_watch->attached();
      j["xdp"]["nic_mtu"] = xsk->nic_mtu();
    }
    return j;
  };
  auto status_handler = [&](const std::string& cmd) -> std::string {
    if (cmd == "ping") return "{}\n";
    if (cmd != "show" && cmd != "show-pretty") return "{\"error\":\"unknown command\"}\n";
    return (cmd == "show-pretty" ? status_json().dump(2) : status_json().dump()) + "\n";
  };
  if (!status.start(status_socket_path(o.ifname), status_handler, &err)) {
    uapi.stop();
    ready.report(err);
    return 1;
  }
  MetricsServer metrics;
  if (!o.metrics_listen.empty() &&
      !metrics.start(
          o.metrics_listen, [&] { return prometheus_text(nlohmann::json::array({status_json()})); }, &err)) {
    uapi.stop();
    status.stop();
    ready.report(err);
    return 1;
  }
  {
    std::ofstream pid(pid_file_path(o.ifname));
    pid << getpid() << "\n";
  }
  device::Runner runner(dev);
  runner.set_single_io_thread(single_io_thread(o.io_threads, usable_cpus()));
  std::vector<std::unique_ptr<io::UdpIo>> lanes;
  for (size_t i = 0; i < workers; ++i) {
    device::Counters& c = dev.add_lane_counters();
    io::UdpIo* u = xsk ? lanes.emplace_back(xsk->lane(i, c)).get() : &group->member(i);
    runner.add_worker(i == 0 ? *tun : *tun_queues[i - 1], *u, &c);
  }
  if (xsk) add_xsk_receivers(runner, dev, *xsk, workers, lanes);
  runner.start();
  io_threads = runner.single_io_thread() ? 1 : 2;
  XLOG_INFO("%s up: mode %s, listening on UDP port %u, MTU %zu, TUN offloads: %s%s, %zu worker(s), %s%s",
            o.ifname.c_str(), mode.mode.c_str(), outer->port(), dev.mtu(),
            tun->features().tso ? "TSO/GRO" : "off", tun->features().uso ? "+USO" : "", workers,
            runner.single_io_thread() ? "each with one I/O thread for its TUN queue and UDP side"
                                      : "each with a thread for its TUN queue and one for its UDP side",
            xsk ? (runner.single_io_thread() ? " (and the AF_XDP queues)" : " (and each AF_XDP queue)") : "");
  ready.report("ok");
  // Under systemd (Type=notify): ready once the tunnel is up and, in XDP mode, the program is
  // attached and the AF_XDP sockets bound. A no-op without $NOTIFY_SOCKET.
  sd_notifyf(0, "READY=1\nSTATUS=%s up, mode %s, UDP port %u\nMAINPID=%d", o.ifname.c_str(),
             mode.mode.c_str(), outer->port(), getpid());

  std::string why = "signal";
  int rc = 0;
  for (;;) {
    timespec timeout{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&stop_set, nullptr, &timeout);
    if (sig > 0) {
      why = std::string("signal ") + sigabbrev_np(sig);
      break;
    }
    if (runner.failed()) {
      // The usual cause: `ip link del` of the TUN. Say so when it is gone from the namespace.
      why = if_nametoindex(o.ifname.c_str()) == 0 ? "the TUN device " + o.ifname + " was deleted"
                                                  : std::string("fatal I/O error (see above)");
      XLOG_ERROR("%s: %s; shutting down", o.ifname.c_str(), why.c_str());
      rc = 1;
      break;
    }
    if (uapi.socket_file_gone()) {
      why = "UAPI socket removed";
      break;
    }
    if (xdp_watch) xdp_watch->attached();  // logs a detach once
    if (xsk) follow_nic_mtu(*xsk, o.nic);
  }
  XLOG_INFO("%s down: %s", o.ifname.c_str(), why.c_str());
  sd_notify(0, "STOPPING=1");
  metrics.stop();
  runner.stop();
  uapi.stop();
  status.stop();
  dev.shutdown();
  dev.set_observer(nullptr);
  unlink(pid_file_path(o.ifname).c_str());
  return rc;
}

}  // namespace

bool single_io_thread(IoThreads io_threads, int cpus) {
  if (io_threads == IoThreads::kOne) return true;
  if (io_threads == IoThreads::kTwo) return false;
  return cpus <= 2;
}

bool valid_ifname(const std::string& name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '=' || c == '+'))
      return false;
  return true;
}

int run_up(const UpOptions& o) {
  log::Level lvl;
  if (!log::parse_level(o.log_level, &lvl)) {
    std::cerr << "xsktun: unknown log level '" << o.log_level << "'\n";
    return 2;
  }
  log::set_level(lvl);
  if (!valid_ifname(o.ifname)) {
    std::cerr << "xsktun: invalid interface name '" << o.ifname << "' (1-15 of [A-Za-z0-9_=+.-])\n";
    return 2;
  }
  if (o.mode == DataMode::kXdp && o.nic.empty()) {
    std::cerr << "xsktun: --mode xdp needs --nic DEV (or XSKTUN_NIC)\n";
    return 2;
  }
  if (!o.user.empty() && !user_exists(o.user)) {
    std::cerr << "xsktun: --user: no such user '" << o.user << "'\n";
    return 2;
  }
  std::string reply, err;
  if (status_query(o.ifname, "ping", &reply, &err)) {
    std::cerr << "xsktun: " << o.ifname << " is already running\n";
    return 1;
  }
  // Parse the config before anything exists, so a bad file changes nothing.
  std::optional<control::ConfigChange> initial;
  if (!o.config_file.empty()) {
    auto parsed = control::load_config_file(o.config_file);
    if (auto* e = std::get_if<std::string>(&parsed)) {
      std::cerr << "xsktun: " << *e << "\n";
      return 1;
    }
    initial = std::get<control::ConfigChange>(std::move(parsed));
  }
  mkdir(kRunDir, 0755);
  ReadyPipe ready;
  if (o.foreground) return daemon_main(o, initial ? &*initial : nullptr, ready);

  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    std::cerr << "xsktun: pipe: " << strerror(errno) << "\n";
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::cerr << "xsktun: fork: " << strerror(errno) << "\n";
    return 1;
  }
  if (pid == 0) {
    close(p[0]);
    setsid();
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    int logfd = o.log_file.empty() ? devnull : open(o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(logfd < 0 ? devnull : logfd, STDERR_FILENO);
    ready.fd = p[1];
    _exit(daemon_main(o, initial ? &*initial : nullptr, ready));
  }
  close(p[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(p[0]);
  if (msg == "ok") return 0;
  std::cerr << "xsktun: " << (msg.empty() ? "daemon exited during startup" : msg) << "\n";
  waitpid(pid, nullptr, 0);
  return 1;
}

int run_down(const std::string& ifname) {
  if (!valid_ifname(ifname)) {
    std::cerr << "xsktun: invalid interface name '" << ifname << "'\n";
    return 2;
  }
  std::ifstream f(pid_file_path(ifname));
  pid_t pid = 0;
  if (!(f >> pid) || pid <= 0 || kill(pid, 0) != 0) {
    std::cerr << "xsktun: " << ifname << " is not running\n";
    return 1;
  }
  kill(pid, SIGTERM);
  // Done when the process is gone or a zombie (an init that reaps slowly keeps it around; a
  // zombie has closed every fd, so its TUN and sockets are gone).
  for (int i = 0; i < 200; ++i) {  // up to 10 s
    if (!process_running(pid)) return 0;
    usleep(50 * 1000);
  }
  std::cerr << "xsktun: " << ifname << " (pid " << pid << ") did not stop within 10 s\n";
  return 1;
}

int run_show(const std::string& ifname, const std::string& format) {
  bool json = format == "json";
  std::vector<std::string> names;
  if (!ifname.empty()) {
    names.push_back(ifname);
  } else if (DIR* d = opendir(kRunDir)) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.ends_with(".sock")) names.push_back(n.substr(0, n.size() - 5));
    }
    closedir(d);
    std::sort(names.begin(), names.end());
  }
  if (json && !ifname.empty()) {  // one interface: the daemon's indented JSON, byte for byte
    std::string reply, err;
    if (!status_query(ifname, "show-pretty", &reply, &err)) {
      std::cerr << "xsktun: " << err << "\n";
      return 1;
    }
    std::cout << reply;
    return 0;
  }
  nlohmann::json all = nlohmann::json::array();
  int rc = 0;
  for (const auto& n : names) {
    std::string reply, err;
    if (!status_query(n, "show", &reply, &err)) {
      std::cerr << "xsktun: " << err << "\n";
      rc = 1;
      continue;
    }
    auto j = nlohmann::json::parse(reply, nullptr, false);
    if (j.is_discarded()) {
      std::cerr << "xsktun: bad status reply from " << n << "\n";
      rc = 1;
      continue;
    }
    all.push_back(j);
  }
  if (format == "prometheus") {
    std::cout << prometheus_text(all);
  } else if (json) {
    std::cout << (ifname.empty() ? all.dump(2) : (all.empty() ? "null" : all[0].dump(2))) << "\n";
  } else {
    for (size_t i = 0; i < all.size(); ++i) std::cout << (i ? "\n" : "") << format_status_text(all[i]);
  }
  return rc;
}

}  // namespace xsktun::cli
