// XDP attach (through libxdp, so the program shares the NIC via its dispatcher), map pinning
// under /sys/fs/bpf/xsktun/IFNAME/, stale-program detection and clean teardown.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "xsktun/xdp/map_sync.h"
#include "xsktun_shared.h"

struct xsktun_bpf;
struct xdp_program;

namespace xsktun::xdp {

enum class AttachMode { kAuto, kNative, kGeneric };

struct XdpPlaneOptions {
  std::string tun_ifname;  // names the pin directory
  std::string nic;
  AttachMode mode = AttachMode::kAuto;
  bool force = false;  // replace a stale xsktun program / pin directory
  uint16_t listen_port = 0;
};

class XdpPlane {
 public:
  static std::unique_ptr<XdpPlane> create(const XdpPlaneOptions& o, std::string* err);
  ~XdpPlane();

  MapFds map_fds() const;
  int xsks_map_fd() const;
  // The TUN programs (bpf/xsktun.bpf.c), loaded with the XDP program and reading its maps.
  int tun_steer_fd() const;
  int tun_filter_fd() const;
  int set_listen_port(uint16_t port);
  // The longest frame the AF_XDP sockets take; the program passes longer data frames to the
  // kernel socket (counted as xdp_pass_too_big) instead of letting the socket drop them.
  int set_max_redirect_len(uint32_t len);
  const std::string& attach_mode() const { return attach_mode_; }  // "native" or "generic"
  const std::string& pin_dir() const { return pin_dir_; }
  int ifindex() const { return ifindex_; }
  std::array<uint64_t, XSKTUN_STAT__MAX> stats() const;
  // Whether our program is still attached to the NIC (someone may detach it).
  bool attached() const;

 private:
  XdpPlane() = default;
  bool pin_maps(std::string* err);
  int write_config();  // config_mu_ held
  void unpin_maps();

  xsktun_bpf* skel_ = nullptr;
  xdp_program* prog_ = nullptr;
  int ifindex_ = 0;
  int xdp_mode_ = 0;                              // enum xdp_attach_mode
  mutable std::atomic<uint32_t> attached_id_{0};  // kernel id of what carries our program
  int query_flags() const;                        // XDP_FLAGS_* of our attach mode, for bpf_xdp_query_id
  std::string attach_mode_;
  std::string pin_dir_;
  uint32_t prog_id_ = 0;
  std::mutex config_mu_;
  xsktun_config config_{};  // what the config map holds
};

// The MTU of a NIC (SIOCGIFMTU), 0 if it cannot be read.
uint32_t nic_mtu(const std::string& nic);

// Number of RX queues of a NIC (from /sys/class/net/DEV/queues), at least 1.
int nic_rx_queues(const std::string& nic);
// Whether `nic` segments UDP GSO packets itself (ethtool feature tx-udp-segmentation, active);
// nullopt if the driver does not say.
std::optional<bool> nic_udp_segmentation(const std::string& nic);
// Mounts bpffs on /sys/fs/bpf when it is not mounted. Returns false with *err on failure.
bool ensure_bpffs(std::string* err);

}  // namespace xsktun::xdp
