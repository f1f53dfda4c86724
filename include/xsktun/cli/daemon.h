// `xsktun up`: the daemon that owns one interface.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "xsktun/xdp/xdp_plane.h"
#include "xsktun/xdp/xsk_queue.h"

namespace xsktun::cli {

enum class DataMode { kAuto, kSocket, kXdp };
enum class IoThreads { kAuto, kOne, kTwo };

// The words of the enum-valued options, for the command line (CLI11 transforms) and the
// wg-quick invocation's environment (XSKTUN_MODE).
inline const std::map<std::string, DataMode> kDataModes{
    {"auto", DataMode::kAuto}, {"socket", DataMode::kSocket}, {"xdp", DataMode::kXdp}};
inline const std::map<std::string, xdp::AttachMode> kAttachModes{{"auto", xdp::AttachMode::kAuto},
                                                                 {"native", xdp::AttachMode::kNative},
                                                                 {"generic", xdp::AttachMode::kGeneric}};
inline const std::map<std::string, xdp::XskOptions::ZeroCopy> kZeroCopyModes{
    {"auto", xdp::XskOptions::ZeroCopy::kAuto},
    {"on", xdp::XskOptions::ZeroCopy::kOn},
    {"off", xdp::XskOptions::ZeroCopy::kOff}};
inline const std::map<std::string, IoThreads> kIoThreads{
    {"auto", IoThreads::kAuto}, {"1", IoThreads::kOne}, {"2", IoThreads::kTwo}};

struct UpOptions {
  std::string ifname;
  std::string config_file;
  DataMode mode = DataMode::kAuto;
  std::string nic;
  xdp::AttachMode xdp_mode = xdp::AttachMode::kAuto;
  int queues = 0;  // 0 = every RX queue of the NIC
  xdp::XskOptions::ZeroCopy zerocopy = xdp::XskOptions::ZeroCopy::kAuto;
  bool force = false;  // replace a stale xsktun XDP program / pins
  bool foreground = false;
  std::string log_level = "info";  // log::parse_level's words
  std::string log_file;
  size_t mtu = 1420;
  IoThreads io_threads = IoThreads::kAuto;  // see Runner::set_single_io_thread
  std::string metrics_listen;               // ADDR:PORT for GET /metrics; empty = off
  std::string user;                         // run as this user after setup (privileges.h); empty = root

  // XDP mode is tried: asked for, or auto with a NIC to attach to.
  bool tries_xdp() const { return mode == DataMode::kXdp || (mode == DataMode::kAuto && !nic.empty()); }
};

// `--io-threads auto`: one thread for the TUN and the UDP socket when this process may run on at
// most 2 CPUs, a thread each otherwise.
bool single_io_thread(IoThreads io_threads, int cpus);

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
