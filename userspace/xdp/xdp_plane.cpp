#include "xsktun/xdp/xdp_plane.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "xsktun.skel.h"
#include "xsktun/common/log.h"

namespace xsktun::xdp {

namespace {
constexpr const char* kProgName = "xsktun_xdp";
constexpr const char* kBpffs = "/sys/fs/bpf";

// libbpf/libxdp chatter (e.g. "skipping unrecognized data section .xdp_run_config") goes to our
// log at debug level; their warnings stay visible as warnings.
int bpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && log::level() < log::Level::kDebug)) return 0;
  char buf[512];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = std::strlen(buf);
  if (n && buf[n - 1] == '\n') buf[n - 1] = 0;
  if (level == LIBBPF_WARN)
    XLOG_WARN("libbpf: %s", buf);
  else
    XLOG_DEBUG("libbpf: %s", buf);
  return 0;
}
int xdp_print(enum libxdp_print_level level, const char* fmt, va_list ap) {
  return bpf_print(static_cast<libbpf_print_level>(level), fmt, ap);
}

std::string xdp_error(int rc) {
  char buf[256];
  libxdp_strerror(rc, buf, sizeof buf);
  return buf;
}

// Finds an xsktun program already on the NIC (ours from a crashed run, or another instance).
bool has_xsktun_program(int ifindex, std::string* where) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return false;
  bool found = false;
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* p = xdp_multiprog__main_prog(mp);
    found = p && std::strcmp(xdp_program__name(p), kProgName) == 0;
  } else {
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      if (std::strcmp(xdp_program__name(p), kProgName) == 0) found = true;
  }
  if (found) *where = xdp_multiprog__is_legacy(mp) ? "attached directly" : "in the libxdp dispatcher";
  xdp_multiprog__close(mp);
  return found;
}

void detach_xsktun_programs(int ifindex) {
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp)) return;
  auto mode = xdp_multiprog__attach_mode(mp);
  if (xdp_multiprog__is_legacy(mp)) {
    xdp_program* p = xdp_multiprog__main_prog(mp);
    if (p && std::strcmp(xdp_program__name(p), kProgName) == 0) xdp_program__detach(p, ifindex, mode, 0);
  } else {
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      if (std::strcmp(xdp_program__name(p), kProgName) == 0) xdp_program__detach(p, ifindex, mode, 0);
  }
  xdp_multiprog__close(mp);
}

void remove_dir(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
        unlink((dir + "/" + e->d_name).c_str());
    closedir(d);
  }
  rmdir(dir.c_str());
}
}  // namespace

bool ensure_bpffs(std::string* err) {
  struct statfs st;
  if (statfs(kBpffs, &st) == 0 && st.f_type == BPF_FS_MAGIC) return true;
  mkdir(kBpffs, 0755);
  if (mount("bpf", kBpffs, "bpf", 0, "mode=0700") != 0) {
    *err = std::string("cannot mount bpffs on /sys/fs/bpf: ") + strerror(errno);
    return false;
  }
  return true;
}

namespace {

// One interface ioctl on `nic` (ifr_name filled in); false if it fails.
bool nic_ioctl(const std::string& nic, unsigned long request, ifreq* ifr) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  std::strncpy(ifr->ifr_name, nic.c_str(), IFNAMSIZ - 1);
  bool ok = ioctl(fd, request, ifr) == 0;
  close(fd);
  return ok;
}

// One SIOCETHTOOL request on `nic`; false if the driver refuses it.
bool ethtool_ioctl(const std::string& nic, void* req) {
  ifreq ifr{};
  ifr.ifr_data = reinterpret_cast<char*>(req);
  return nic_ioctl(nic, SIOCETHTOOL, &ifr);
}

}  // namespace

int nic_rx_queues(const std::string& nic) {
  // ETHTOOL_GCHANNELS, not /sys/class/net: under `nsenter --net` sysfs still shows the host's
  // namespace, where this NIC may not exist.
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  int n = ethtool_ioctl(nic, &ch) ? static_cast<int>(std::max(ch.rx_count, ch.combined_count)) : 1;
  return std::clamp(n, 1, XSKTUN_MAX_QUEUES);
}

std::optional<bool> nic_udp_segmentation(const std::string& nic) {
  // The feature's bit position is not ABI: find it by name in the ETH_SS_FEATURES strings, then
  // read the active bits (what `ethtool -k NIC` shows as tx-udp-segmentation).
  alignas(ethtool_sset_info) uint8_t sbuf0[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
  auto* sset = reinterpret_cast<ethtool_sset_info*>(sbuf0);
  sset->cmd = ETHTOOL_GSSET_INFO;
  sset->sset_mask = 1ULL << ETH_SS_FEATURES;
  if (!ethtool_ioctl(nic, sset) || !(sset->sset_mask & (1ULL << ETH_SS_FEATURES))) return std::nullopt;
  uint32_t n = sset->data[0];
  if (n == 0 || n > 4096) return std::nullopt;
  std::vector<uint8_t> sbuf(sizeof(ethtool_gstrings) + size_t{n} * ETH_GSTRING_LEN);
  auto* gs = reinterpret_cast<ethtool_gstrings*>(sbuf.data());
  gs->cmd = ETHTOOL_GSTRINGS;
  gs->string_set = ETH_SS_FEATURES;
  gs->len = n;
  if (!ethtool_ioctl(nic, gs)) return std::nullopt;
  uint32_t bit = n;
  for (uint32_t i = 0; i < n && bit == n; ++i)
    if (std::strncmp(reinterpret_cast<const char*>(gs->data) + size_t{i} * ETH_GSTRING_LEN,
                     "tx-udp-segmentation", ETH_GSTRING_LEN) == 0)
      bit = i;
  if (bit == n) return std::nullopt;
  uint32_t blocks = (n + 31) / 32;
  std::vector<uint8_t> fbuf(sizeof(ethtool_gfeatures) + size_t{blocks} * sizeof(ethtool_get_features_block));
  auto* gf = reinterpret_cast<ethtool_gfeatures*>(fbuf.data());
  gf->cmd = ETHTOOL_GFEATURES;
  gf->size = blocks;
  if (!ethtool_ioctl(nic, gf)) return std::nullopt;
  return (gf->features[bit / 32].active >> (bit % 32)) & 1u;
}

std::unique_ptr<XdpPlane> XdpPlane::create(const XdpPlaneOptions& o, std::string* err) {
  libbpf_set_print(bpf_print);
  libxdp_set_print(xdp_print);
  std::unique_ptr<XdpPlane> x(new XdpPlane());
  x->ifindex_ = static_cast<int>(if_nametoindex(o.nic.c_str()));
  if (x->ifindex_ == 0) {
    *err = "no such NIC '" + o.nic + "'";
    return nullptr;
  }
  x->pin_dir_ = std::string(XSKTUN_PIN_ROOT) + "/" + o.tun_ifname;
  std::string where;
  struct stat st;
  bool stale_prog = has_xsktun_program(x->ifindex_, &where);
  bool stale_pins = stat(x->pin_dir_.c_str(), &st) == 0;
  if ((stale_prog || stale_pins) && !o.force) {
    *err = stale_prog ? o.nic + " already carries an xsktun XDP program (" + where +
                            "), from a crashed or running instance; use --force to replace it"
                      : "stale pins at " + x->pin_dir_ +
                            " from a crashed or running instance; use --force to replace them";
    return nullptr;
  }
  if (stale_prog) {
    XLOG_WARN("%s: replacing the xsktun XDP program left %s by an instance that is not running",
              o.nic.c_str(), where.c_str());
    detach_xsktun_programs(x->ifindex_);
  }
  if (stale_pins) {
    XLOG_WARN("replacing the stale pins at %s", x->pin_dir_.c_str());
    remove_dir(x->pin_dir_);
  }
  if (!ensure_bpffs(err)) return nullptr;

  x->skel_ = xsktun_bpf__open();
  if (!x->skel_) {
    *err = "cannot open the BPF object";
    return nullptr;
  }
  x->prog_ = xdp_program__from_bpf_obj(x->skel_->obj, "xdp");
  if (libxdp_get_error(x->prog_)) {
    *err = "libxdp: " + xdp_error(static_cast<int>(libxdp_get_error(x->prog_)));
    x->prog_ = nullptr;
    return nullptr;
  }
  int rc = -1;
  if (o.mode != AttachMode::kGeneric) {
    rc = xdp_program__attach(x->prog_, x->ifindex_, XDP_MODE_NATIVE, 0);
    if (rc == 0) {
      x->attach_mode_ = "native";
      x->xdp_mode_ = XDP_MODE_NATIVE;
    } else if (o.mode == AttachMode::kNative) {
      *err = "native XDP attach to " + o.nic + " failed: " + xdp_error(rc);
      return nullptr;
    } else {
      XLOG_WARN("native XDP on %s failed (%s); falling back to generic (SKB) mode", o.nic.c_str(),
                xdp_error(rc).c_str());
    }
  }
  if (rc != 0) {
    rc = xdp_program__attach(x->prog_, x->ifindex_, XDP_MODE_SKB, 0);
    if (rc != 0) {
      *err = "XDP attach to " + o.nic + " failed: " + xdp_error(rc);
      return nullptr;
    }
    x->attach_mode_ = "generic";
    x->xdp_mode_ = XDP_MODE_SKB;
  }
  // Whatever is attached now (our program, or libxdp's dispatcher holding it) is what
  // attached() watches for.
  uint32_t id = 0;
  bpf_xdp_query_id(x->ifindex_, x->query_flags(), &id);
  x->attached_id_.store(id);
  if (!x->pin_maps(err)) return nullptr;
  if (x->set_listen_port(o.listen_port) != 0) {
    *err = "cannot write the config map";
    return nullptr;
  }
  return x;
}

XdpPlane::~XdpPlane() {
  if (prog_) {
    if (!attach_mode_.empty())
      xdp_program__detach(prog_, ifindex_, static_cast<xdp_attach_mode>(xdp_mode_), 0);
    xdp_program__close(prog_);
  }
  unpin_maps();
  if (skel_) xsktun_bpf__destroy(skel_);
}

bool XdpPlane::pin_maps(std::string* err) {
  mkdir(XSKTUN_PIN_ROOT, 0700);
  if (mkdir(pin_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    *err = "cannot create " + pin_dir_ + ": " + strerror(errno);
    return false;
  }
  bpf_map* maps[] = {skel_->maps.allowed_ips_v4, skel_->maps.allowed_ips_v6, skel_->maps.peers,
                     skel_->maps.sessions,       skel_->maps.xsks,           skel_->maps.stats,
                     skel_->maps.config,         skel_->maps.ratelimit};
  for (bpf_map* m : maps) {
    std::string path = pin_dir_ + "/" + bpf_map__name(m);
    int rc = bpf_map__pin(m, path.c_str());
    if (rc != 0) {
      *err = "cannot pin " + path + ": " + strerror(-rc);
      return false;
    }
  }
  return true;
}

void XdpPlane::unpin_maps() {
  if (!pin_dir_.empty()) remove_dir(pin_dir_);
  rmdir(XSKTUN_PIN_ROOT);  // only succeeds when no other interface uses it
}

MapFds XdpPlane::map_fds() const {
  return MapFds{bpf_map__fd(skel_->maps.sessions), bpf_map__fd(skel_->maps.peers),
                bpf_map__fd(skel_->maps.allowed_ips_v4), bpf_map__fd(skel_->maps.allowed_ips_v6)};
}

int XdpPlane::xsks_map_fd() const { return bpf_map__fd(skel_->maps.xsks); }
int XdpPlane::tun_steer_fd() const { return bpf_program__fd(skel_->progs.xsktun_tun_steer); }
int XdpPlane::tun_filter_fd() const { return bpf_program__fd(skel_->progs.xsktun_tun_filter); }

int XdpPlane::set_listen_port(uint16_t port) {
  std::lock_guard lock(config_mu_);
  config_.listen_port = port;
  return write_config();
}

int XdpPlane::set_max_redirect_len(uint32_t len) {
  std::lock_guard lock(config_mu_);
  config_.max_redirect_len = len;
  return write_config();
}

int XdpPlane::write_config() {
  uint32_t key = 0;
  config_.ratelimit_enabled = 1;
  return bpf_map_update_elem(bpf_map__fd(skel_->maps.config), &key, &config_, BPF_ANY);
}

uint32_t nic_mtu(const std::string& nic) {
  ifreq ifr{};
  return nic_ioctl(nic, SIOCGIFMTU, &ifr) && ifr.ifr_mtu > 0 ? static_cast<uint32_t>(ifr.ifr_mtu) : 0;
}

std::array<uint64_t, XSKTUN_STAT__MAX> XdpPlane::stats() const {
  std::array<uint64_t, XSKTUN_STAT__MAX> out{};
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(static_cast<size_t>(ncpu > 0 ? ncpu : 1));
  for (uint32_t k = 0; k < XSKTUN_STAT__MAX; ++k)
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.stats), &k, per.data()) == 0)
      for (auto v : per) out[k] += v;
  return out;
}

int XdpPlane::query_flags() const {
  return xdp_mode_ == XDP_MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

bool XdpPlane::attached() const {
  // The program id in the kernel, no fd opened: this is polled every 200 ms, and libxdp 1.3's
  // xdp_multiprog__get_from_ifindex leaks a program fd per call (xdp-tools #343, fixed in 1.4),
  // which the soak run showed as 5 fds/s. libxdp is asked only when the id changed: its
  // dispatcher is replaced whenever a program is added or removed through it, ours still in it.
  // A failed query cannot tell, so it raises no alarm.
  uint32_t id = 0;
  if (bpf_xdp_query_id(ifindex_, query_flags(), &id) != 0) return true;
  if (id == 0) return false;
  if (id == attached_id_.load(std::memory_order_relaxed)) return true;
  std::string where;
  if (!has_xsktun_program(ifindex_, &where)) return false;
  attached_id_.store(id, std::memory_order_relaxed);
  return true;
}

}  // namespace xsktun::xdp
