#include "xsktun/xdp/bpf_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "xsktun.skel.h"

namespace xsktun::xdp {

std::unique_ptr<XdpObject> XdpObject::open_and_load(std::string* err) {
  struct xsktun_bpf* skel = xsktun_bpf__open_and_load();
  if (skel == nullptr) {
    int e = errno;
    if (err != nullptr) {
      *err = "loading the XDP program failed: " + std::string(std::strerror(e)) +
             " (libbpf printed the verifier log, if any, on stderr)";
    }
    return nullptr;
  }
  return std::unique_ptr<XdpObject>(new XdpObject(skel));
}

XdpObject::~XdpObject() { xsktun_bpf__destroy(skel_); }

bpf_object* XdpObject::obj() const { return skel_->obj; }
bpf_program* XdpObject::prog() const { return skel_->progs.xsktun_xdp; }
int XdpObject::prog_fd() const { return bpf_program__fd(skel_->progs.xsktun_xdp); }
int XdpObject::tun_steer_fd() const { return bpf_program__fd(skel_->progs.xsktun_tun_steer); }
int XdpObject::tun_filter_fd() const { return bpf_program__fd(skel_->progs.xsktun_tun_filter); }

int XdpObject::allowed_ips_v4_fd() const { return bpf_map__fd(skel_->maps.allowed_ips_v4); }
int XdpObject::allowed_ips_v6_fd() const { return bpf_map__fd(skel_->maps.allowed_ips_v6); }
int XdpObject::peers_fd() const { return bpf_map__fd(skel_->maps.peers); }
int XdpObject::sessions_fd() const { return bpf_map__fd(skel_->maps.sessions); }
int XdpObject::xsks_fd() const { return bpf_map__fd(skel_->maps.xsks); }
int XdpObject::stats_fd() const { return bpf_map__fd(skel_->maps.stats); }
int XdpObject::config_fd() const { return bpf_map__fd(skel_->maps.config); }
int XdpObject::ratelimit_fd() const { return bpf_map__fd(skel_->maps.ratelimit); }

template <typename F>
int XdpObject::update_config(F&& mutate) {
  uint32_t key = 0;
  struct xsktun_config cfg {};
  if (bpf_map_lookup_elem(config_fd(), &key, &cfg) != 0) return -errno;
  mutate(cfg);
  if (bpf_map_update_elem(config_fd(), &key, &cfg, BPF_ANY) != 0) return -errno;
  return 0;
}

int XdpObject::set_listen_port(uint16_t port) {
  return update_config([port](struct xsktun_config& cfg) { cfg.listen_port = port; });
}

int XdpObject::set_ratelimit(bool enabled) {
  return update_config([enabled](struct xsktun_config& cfg) { cfg.ratelimit_enabled = enabled ? 1 : 0; });
}

int XdpObject::set_max_redirect_len(uint32_t len) {
  return update_config([len](struct xsktun_config& cfg) { cfg.max_redirect_len = len; });
}

XdpObject::Stats XdpObject::stats() const {
  Stats total{};
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return total;
  // A per-CPU lookup fills one 8-byte-aligned slot per possible CPU (kernel bpf_percpu_*_copy).
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus));
  for (uint32_t id = 0; id < XSKTUN_STAT__MAX; id++) {
    if (bpf_map_lookup_elem(stats_fd(), &id, per_cpu.data()) != 0) continue;
    for (uint64_t v : per_cpu) total[id] += v;
  }
  return total;
}

}  // namespace xsktun::xdp
