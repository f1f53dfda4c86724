#include "xsktun/xdp/xdp_object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "xsktun.skel.h"

namespace xsktun::xdp {

namespace {
std::string load_error(const char* what) {
  return std::string(what) + " the XDP object failed: " + std::strerror(errno) +
         " (libbpf printed the verifier log, if any, on stderr)";
}
}  // namespace

std::unique_ptr<XdpObject> XdpObject::open(std::string* err) {
  struct xsktun_bpf* skel = xsktun_bpf__open();
  if (skel == nullptr) {
    if (err != nullptr) *err = load_error("opening");
    return nullptr;
  }
  return std::unique_ptr<XdpObject>(new XdpObject(skel));
}

std::unique_ptr<XdpObject> XdpObject::open_and_load(std::string* err) {
  auto o = open(err);
  if (o && xsktun_bpf__load(o->skel_) != 0) {
    if (err != nullptr) *err = load_error("loading");
    return nullptr;
  }
  return o;
}

XdpObject::~XdpObject() {
  unpin_maps();
  xsktun_bpf__destroy(skel_);
}

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
MapFds XdpObject::map_fds() const {
  return MapFds{sessions_fd(), peers_fd(), allowed_ips_v4_fd(), allowed_ips_v6_fd()};
}

bool XdpObject::pin_maps(const std::string& dir, std::string* err) {
  // libbpf creates DIR and pins each map at DIR/<name> (no internal maps: the object has only
  // its .maps section, so these are exactly the names bpftool and users see).
  if (int rc = bpf_object__pin_maps(skel_->obj, dir.c_str()); rc != 0) {
    *err = "cannot pin the maps under " + dir + ": " + std::strerror(-rc);
    rmdir(dir.c_str());
    return false;
  }
  pin_dir_ = dir;
  return true;
}

void XdpObject::unpin_maps() {
  if (pin_dir_.empty()) return;
  bpf_object__unpin_maps(skel_->obj, pin_dir_.c_str());
  rmdir(pin_dir_.c_str());
  pin_dir_.clear();
}

bool XdpObject::remove_stale_pins(const std::string& dir, std::string* err) {
  // Map by map (bpf_object__unpin_maps stops at the first missing pin: a crash between two
  // pins leaves some). A pin path names a map, not its object, so these unlink whatever a
  // dead owner pinned under our names.
  bpf_map* m;
  bpf_object__for_each_map(m, skel_->obj) {
    std::string path = dir + "/" + bpf_map__name(m);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      *err = "cannot remove the stale pin " + path + ": " + std::strerror(errno);
      return false;
    }
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    *err = "cannot remove " + dir + ": " + std::strerror(errno) +
           (errno == ENOTEMPTY ? " (it holds files xsktun did not pin there; remove them)" : "");
    return false;
  }
  return true;
}

template <typename F>
int XdpObject::update_config(F&& mutate) {
  std::lock_guard lock(config_mu_);
  mutate(config_);
  uint32_t key = 0;
  return bpf_map_update_elem(config_fd(), &key, &config_, BPF_ANY) == 0 ? 0 : -errno;
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
