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

// Blocks the stop signals in every thread (threads inherit the mask); the main thread waits
// for them with sigtimedwait.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// The daemon's main thread once it is up: every 200 ms, a stop signal, a failed worker, a
// removed UAPI socket, a detached XDP program (logged) or a changed NIC MTU. Returns why it
// stopped; *rc = 1 for a failure.
std::string wait_for_stop(const sigset_t& stop_set, const UpOptions& o, device::Runner& runner,
                          control::UapiServer& uapi, XdpWatch* xdp_watch, xdp::XskBind* xsk, int* rc) {
  for (;;) {
    timespec timeout{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&stop_set, nullptr, &timeout);
    if (sig > 0) return std::string("signal ") + sigabbrev_np(sig);
    if (runner.failed()) {
      // The usual cause: `ip link del` of the TUN. Say so when it is gone from the namespace.
      std::string why = if_nametoindex(o.ifname.c_str()) == 0 ? "the TUN device " + o.ifname + " was deleted"
                                                              : std::string("fatal I/O error (see above)");
      XLOG_ERROR("%s: %s; shutting down", o.ifname.c_str(), why.c_str());
      *rc = 1;
      return why;
    }
    if (uapi.socket_file_gone()) return "UAPI socket removed";
    if (xdp_watch) xdp_watch->attached();  // logs a detach once
    if (xsk) follow_nic_mtu(*xsk, o.nic);
  }
}

int daemon_main(const UpOptions& o, const control::ConfigChange* initial, ReadyPipe& ready) {
  std::string err;
  const sigset_t stop_set = block_stop_signals();

  // Held for the daemon's life: a later `up` tells a dead owner's leftovers from a live one's.
  OwnerLock lock;
  if (!lock.acquire(o.ifname, &err)) {
    ready.report(err);
    return 1;
  }
  uint16_t port = initial && initial->listen_port ? *initial->listen_port : 0;
  auto dp = open_data_plane(o, port, lock, &err);
  if (!dp) {
    ready.report(err);
    return 1;
  }
  const size_t workers = dp->workers;
  io::TunDevice& tun = *dp->tun;
  xdp::XdpPlane* plane = dp->plane.get();
  xdp::XskBind* xsk = dp->xsk.get();
  io::UdpGroup* group = dp->group.get();
  io::UdpIo* outer = dp->outer;
  const ModeInfo& mode = dp->mode;
  device::SystemClock clock;
  device::Device dev(tun, *outer, clock);
  std::unique_ptr<xdp::MapSync> sync;
  if (plane) {
    xsk->set_counters(&dev.counters());  // and its kernel socket's
    // Everything the maps mirror, the listen port included, follows the device through MapSync.
    xdp::XdpObject& obj = plane->object();
    sync = std::make_unique<xdp::MapSync>(obj.map_fds(), &dev.counters(),
                                          [&obj](uint16_t port) { return obj.set_listen_port(port); });
    dev.set_observer(sync.get());
  }
  // Last in, first out: the device stops (and tells the observer) before MapSync goes.
  struct ShutdownDevice {
    device::Device& dev;
    ~ShutdownDevice() {
      dev.shutdown();
      dev.set_observer(nullptr);
    }
  } shutdown_device{dev};
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
  std::atomic<int> io_threads{0};  // set once the runner has started
  // "show": compact JSON; "show-pretty": what `xsktun show IF --json` prints (indented here so the
  // client copies it through instead of parsing and re-printing tens of MB for 100k peers);
  // "ping": a liveness check that builds nothing.
  auto status_json = [&]() {
    timespec w = clock.wall();
    auto j = build_status(o.ifname, mode, dev.snapshot(), dev.totals(), dev.mtu(), w.tv_sec);
    j["io_threads"] = io_threads.load();
    std::vector<const io::UdpSocket*> sockets = dp->sockets();
    add_socket_drops(j, sockets);
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
  StatusServer status;  // after what its handler uses: its thread stops first
  if (!status.start(status_socket_path(o.ifname), status_handler, &err)) {
    ready.report(err);
    return 1;
  }
  MetricsServer metrics;
  if (!o.metrics_listen.empty() &&
      !metrics.start(
          o.metrics_listen, [&] { return prometheus_text(nlohmann::json::array({status_json()})); }, &err)) {
    ready.report(err);
    return 1;
  }
  {
    std::ofstream pid(pid_file_path(o.ifname));
    pid << getpid() << "\n";
  }
  std::vector<std::unique_ptr<io::UdpIo>> lanes;  // before the runner: its threads use them
  device::Runner runner(dev);
  runner.set_single_io_thread(single_io_thread(o.io_threads, usable_cpus()));
  for (size_t i = 0; i < workers; ++i) {
    device::Counters& c = dev.add_lane_counters();
    dp->tun_queue(i).set_counters(&c);  // each counts where its worker does (one counter set)
    if (group) group->member(i).set_counters(&c);
    io::UdpIo* u = xsk ? lanes.emplace_back(xsk->lane(i, c)).get() : &group->member(i);
    runner.add_worker(dp->tun_queue(i), *u, &c);
  }
  if (xsk) add_xsk_receivers(runner, dev, *xsk, workers, lanes);
  runner.start();
  io_threads = runner.single_io_thread() ? 1 : 2;
  XLOG_INFO("%s up: mode %s, listening on UDP port %u, MTU %zu, TUN offloads: %s%s, %zu worker(s), %s%s",
            o.ifname.c_str(), mode.mode.c_str(), outer->port(), dev.mtu(),
            tun.features().tso ? "TSO/GRO" : "off", tun.features().uso ? "+USO" : "", workers,
            runner.single_io_thread() ? "each with one I/O thread for its TUN queue and UDP side"
                                      : "each with a thread for its TUN queue and one for its UDP side",
            xsk ? (runner.single_io_thread() ? " (and the AF_XDP queues)" : " (and each AF_XDP queue)") : "");
  ready.report("ok");
  // Under systemd (Type=notify): ready once the tunnel is up and, in XDP mode, the program is
  // attached and the AF_XDP sockets bound. A no-op without $NOTIFY_SOCKET.
  sd_notifyf(0, "READY=1\nSTATUS=%s up, mode %s, UDP port %u\nMAINPID=%d", o.ifname.c_str(),
             mode.mode.c_str(), outer->port(), getpid());

  int rc = 0;
  std::string why = wait_for_stop(stop_set, o, runner, uapi, xdp_watch ? &*xdp_watch : nullptr, xsk, &rc);
  XLOG_INFO("%s down: %s", o.ifname.c_str(), why.c_str());
  sd_notify(0, "STOPPING=1");
  // The rest in reverse order of creation, by their destructors: workers, metrics, status and
  // UAPI servers, the device, the data plane (sockets, XDP program, pins, TUN), the lock.
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
