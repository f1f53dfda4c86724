// `xsktun up`: the daemon that owns one interface.
#pragma once

#include <optional>
#include <string>

namespace xsktun::cli {

struct UpOptions {
  std::string ifname;
  std::string config_file;
  std::string mode = "auto";  // auto | socket | xdp
  std::string nic;
  std::string xdp_mode = "auto";  // auto | native | generic
  int queues = 0;                 // 0 = every RX queue of the NIC
  std::string zerocopy = "auto";  // auto | on | off
  bool force = false;             // replace a stale xsktun XDP program / pins
  bool foreground = false;
  std::string log_level = "info";
  std::string log_file;
  size_t mtu = 1420;
  std::string io_threads = "auto";  // auto | 1 | 2 (see Runner::set_single_io_thread)
  std::string metrics_listen;       // ADDR:PORT for GET /metrics; empty = off
  std::string user;                 // run as this user after setup (privileges.h); empty = root
};

// `--io-threads auto`: one thread for the TUN and the UDP socket when this process may run on at
// most 2 CPUs, a thread each otherwise.
bool single_io_thread(const std::string& io_threads, int cpus);

// Runs the daemon; returns the process exit code. Without foreground it forks and returns in
// the parent once the interface is ready (or failed, with the child's error printed).
int run_up(const UpOptions& opts);
// Stops the daemon of ifname (SIGTERM, then waits for it to exit). Returns an exit code.
int run_down(const std::string& ifname);
// Prints the status of ifname (or all interfaces when empty): format "text", "json" or
// "prometheus" (metrics.h).
int run_show(const std::string& ifname, const std::string& format);

bool valid_ifname(const std::string& name);

}  // namespace xsktun::cli
