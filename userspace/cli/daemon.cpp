// The daemon: TUN + UDP socket + Device + Runner + UAPI and status sockets, signal handling,
// readiness reporting to the parent, and a teardown that leaves nothing behind.
#include "xsktun/cli/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "xsktun/cli/control_socket.h"
#include "xsktun/cli/status.h"
#include "xsktun/common/log.h"
#include "xsktun/control/config_file.h"
#include "xsktun/control/uapi_server.h"
#include "xsktun/device/runner.h"
#include "xsktun/io/tun.h"
#include "xsktun/io/udp_socket.h"

namespace xsktun::cli {

namespace {

constexpr const char* kUapiDir = "/var/run/wireguard";

class DeviceUapi : public control::UapiHandler {
 public:
  explicit DeviceUapi(device::Device& d) : dev_(d) {}
  control::DeviceSnapshot get() override { return dev_.snapshot(); }
  control::UapiError set(const control::ConfigChange& c) override {
    std::string err;
    int rc = dev_.apply(c, &err);
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

bool read_file(const std::string& path, std::string* out, std::string* err) {
  std::ifstream f(path);
  if (!f) {
    *err = "cannot read " + path + ": " + strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
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

  auto tun = io::TunDevice::create(o.ifname, o.mtu, &err);
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
  device::SystemClock clock;
  device::Device dev(*tun, *udp, clock);
  if (initial && dev.apply(*initial, &err) != 0) {
    ready.report("configuration rejected: " + err);
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
  ModeInfo mode;
  StatusServer status;
  auto status_handler = [&](const std::string& cmd) -> std::string {
    if (cmd != "show") return "{\"error\":\"unknown command\"}\n";
    timespec w = clock.wall();
    return build_status(o.ifname, mode, dev.snapshot(), dev.counters(), dev.mtu(), w.tv_sec).dump() + "\n";
  };
  if (!status.start(status_socket_path(o.ifname), status_handler, &err)) {
    uapi.stop();
    ready.report(err);
    return 1;
  }
  {
    std::ofstream pid(pid_file_path(o.ifname));
    pid << getpid() << "\n";
  }
  device::Runner runner(dev, *tun, *udp);
  runner.start();
  XLOG_INFO("%s up: mode %s, listening on UDP port %u, MTU %zu", o.ifname.c_str(), mode.mode.c_str(),
            udp->port(), dev.mtu());
  ready.report("ok");

  const char* why = "signal";
  for (;;) {
    timespec timeout{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&stop_set, nullptr, &timeout);
    if (sig > 0) break;
    if (runner.failed()) {
      why = "I/O failure (TUN deleted?)";
      break;
    }
    if (uapi.socket_file_gone()) {
      why = "UAPI socket removed";
      break;
    }
  }
  XLOG_INFO("%s down: %s", o.ifname.c_str(), why);
  runner.stop();
  uapi.stop();
  status.stop();
  dev.shutdown();
  unlink(pid_file_path(o.ifname).c_str());
  return 0;
}

}  // namespace

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
  if (o.mode == "xdp") {
    std::cerr << "xsktun: --mode xdp is not implemented yet; use --mode socket (or auto)\n";
    return 2;
  }
  if (o.mode != "auto" && o.mode != "socket") {
    std::cerr << "xsktun: unknown mode '" << o.mode << "' (auto, socket, xdp)\n";
    return 2;
  }
  if (o.mode == "auto") XLOG_INFO("mode auto: using socket mode (XDP mode is not available in this build)");
  std::string reply, err;
  if (status_query(o.ifname, "show", &reply, &err)) {
    std::cerr << "xsktun: " << o.ifname << " is already running\n";
    return 1;
  }
  // Parse the config before anything exists, so a bad file changes nothing.
  std::optional<control::ConfigChange> initial;
  if (!o.config_file.empty()) {
    std::string text;
    if (!read_file(o.config_file, &text, &err)) {
      std::cerr << "xsktun: " << err << "\n";
      return 1;
    }
    auto parsed = control::parse_config_file(text);
    if (auto* e = std::get_if<std::string>(&parsed)) {
      std::cerr << "xsktun: " << o.config_file << ": " << *e << "\n";
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
  for (int i = 0; i < 100; ++i) {  // up to 10 s
    if (kill(pid, 0) != 0) return 0;
    usleep(100 * 1000);
  }
  std::cerr << "xsktun: " << ifname << " (pid " << pid << ") did not stop within 10 s\n";
  return 1;
}

int run_show(const std::string& ifname, bool json) {
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
  if (json) {
    std::cout << (ifname.empty() ? all.dump(2) : (all.empty() ? "null" : all[0].dump(2))) << "\n";
  } else {
    for (size_t i = 0; i < all.size(); ++i) std::cout << (i ? "\n" : "") << format_status_text(all[i]);
  }
  return rc;
}

}  // namespace xsktun::cli
