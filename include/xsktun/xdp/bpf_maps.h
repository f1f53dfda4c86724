// Owns the loaded XDP program (bpf/xsktun.bpf.c) through its bpftool-generated skeleton, and
// exposes its map and program fds. Loading needs CAP_BPF (root); attaching and pinning are done
// by the caller (bpf_object via obj(), program via prog()).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "xsktun_shared.h"

struct bpf_object;
struct bpf_program;
struct xsktun_bpf;  // the skeleton (xsktun.skel.h, generated into the build tree)

namespace xsktun::xdp {

class XdpObject {
 public:
  using Stats = std::array<uint64_t, XSKTUN_STAT__MAX>;

  // Opens and loads the embedded object (the verifier runs here). The config map starts as
  // zeros: listen port 0 (nothing is ours, every frame passes) and rate limiting off.
  // Returns nullptr and fills *err (if not null) on failure.
  static std::unique_ptr<XdpObject> open_and_load(std::string* err);
  ~XdpObject();
  XdpObject(const XdpObject&) = delete;
  XdpObject& operator=(const XdpObject&) = delete;

  struct bpf_object* obj() const;
  struct bpf_program* prog() const;
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

  // Read-modify-write of the single config element; 0 or -errno.
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
};

}  // namespace xsktun::xdp
