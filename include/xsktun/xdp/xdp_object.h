// The one owner of the BPF object (bpf/xsktun.bpf.c through its bpftool-generated skeleton): its
// programs, its maps and their pins, and the only writer of the config map. XdpPlane attaches
// its XDP program to a NIC; the BPF tests load it without a NIC. Loading needs CAP_BPF (root).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "xsktun_shared.h"

struct bpf_object;
struct bpf_program;
struct xsktun_bpf;  // the skeleton (xsktun.skel.h, generated into the build tree)

namespace xsktun::xdp {

// The maps MapSync keeps in step with the device.
struct MapFds {
  int sessions = -1;
  int peers = -1;
  int allowed_v4 = -1;
  int allowed_v6 = -1;
};

class XdpObject {
 public:
  using Stats = std::array<uint64_t, XSKTUN_STAT__MAX>;

  // Opens the embedded object without loading it: libxdp loads it when it attaches the XDP
  // program (its dispatcher decides how). nullptr and *err on failure.
  static std::unique_ptr<XdpObject> open(std::string* err);
  // Opens and loads it (the verifier runs here), for BPF_PROG_TEST_RUN and the TUN programs
  // alone. The config map starts as zeros: listen port 0 (nothing is ours, every frame passes)
  // and rate limiting off.
  static std::unique_ptr<XdpObject> open_and_load(std::string* err);
  ~XdpObject();
  XdpObject(const XdpObject&) = delete;
  XdpObject& operator=(const XdpObject&) = delete;

  struct bpf_object* obj() const;
  struct bpf_program* prog() const;  // the XDP program, xsktun_xdp
  int prog_fd() const;
  // The TUN programs (xsktun_tun_steer, xsktun_tun_filter), socket filters on the same maps.
  int tun_steer_fd() const;
  int tun_filter_fd() const;

  int allowed_ips_v4_fd() const;
  int allowed_ips_v6_fd() const;
  int peers_fd() const;
  int sessions_fd() const;
  int xsks_fd() const;
  int stats_fd() const;
  int config_fd() const;
  int ratelimit_fd() const;
  MapFds map_fds() const;  // what MapSync keeps in step with the device

  // Pins every map at DIR/<map name> through libbpf (the maps exist once loaded; DIR's parent
  // must exist); a failure unpins what it pinned. unpin_maps removes the pins and DIR.
  // remove_stale_pins removes what a dead owner left at DIR (our map names only) and DIR,
  // refusing a directory that holds anything else. false and *err on failure.
  bool pin_maps(const std::string& dir, std::string* err);
  void unpin_maps();
  bool remove_stale_pins(const std::string& dir, std::string* err);
  const std::string& pin_dir() const { return pin_dir_; }

  // The config map's fields, each written as the whole element from this object's copy (no
  // read-modify-write: nothing else writes it); 0 or -errno.
  int set_listen_port(uint16_t port);
  int set_ratelimit(bool enabled);
  int set_max_redirect_len(uint32_t len);  // 0 = no limit

  // Each counter summed over all possible CPUs; zeros if the map cannot be read.
  Stats stats() const;

 private:
  explicit XdpObject(struct xsktun_bpf* skel) : skel_(skel) {}
  template <typename F>
  int update_config(F&& mutate);

  struct xsktun_bpf* skel_;
  std::string pin_dir_;  // where the maps are pinned, empty if not
  std::mutex config_mu_;
  struct xsktun_config config_ {};  // what the config map holds
};

}  // namespace xsktun::xdp
