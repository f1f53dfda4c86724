// XDP attach (through libxdp, so the program shares the NIC via its dispatcher), map pinning
// under /sys/fs/bpf/xsktun/IFNAME/, stale-program detection and clean teardown.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "xsktun/xdp/xdp_object.h"

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
  // Attaches the program to o.nic (taking over a stale xsktun program or pin directory only
  // with o.force), pins its maps under XSKTUN_PIN_ROOT/<tun_ifname> and writes its config.
  static std::unique_ptr<XdpPlane> create(const XdpPlaneOptions& o, std::string* err);
  ~XdpPlane();  // detaches, unpins

  // The loaded object: its maps, the TUN programs, the config map, the stats.
  XdpObject& object() { return *obj_; }
  const XdpObject& object() const { return *obj_; }
  const std::string& attach_mode() const { return attach_mode_; }  // "native" or "generic"
  const std::string& pin_dir() const { return pin_dir_; }
  int ifindex() const { return ifindex_; }
  // Whether our program is still attached to the NIC (someone may detach it).
  bool attached() const;

 private:
  XdpPlane() = default;
  int query_flags() const;  // XDP_FLAGS_* of our attach mode, for bpf_xdp_query_id

  std::unique_ptr<XdpObject> obj_;
  xdp_program* prog_ = nullptr;
  int ifindex_ = 0;
  int xdp_mode_ = 0;                              // enum xdp_attach_mode
  mutable std::atomic<uint32_t> attached_id_{0};  // kernel id of what carries our program
  std::string attach_mode_;
  std::string pin_dir_;
};

}  // namespace xsktun::xdp
