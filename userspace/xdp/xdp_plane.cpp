#include "xsktun/xdp/xdp_plane.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>

#include "xsktun/common/log.h"
#include "xsktun/xdp/nic.h"

namespace xsktun::xdp {

namespace {
constexpr const char* kProgName = "xsktun_xdp";

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

}  // namespace

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
  if (!ensure_bpffs(err)) return nullptr;
  x->obj_ = XdpObject::open(err);
  if (!x->obj_) return nullptr;
  if (stale_pins) {
    XLOG_WARN("replacing the stale pins at %s", x->pin_dir_.c_str());
    if (!x->obj_->remove_stale_pins(x->pin_dir_, err)) return nullptr;
  }
  x->prog_ = xdp_program__from_bpf_obj(x->obj_->obj(), "xdp");
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
  mkdir(XSKTUN_PIN_ROOT, 0700);
  if (!x->obj_->pin_maps(x->pin_dir_, err)) return nullptr;
  if (x->obj_->set_ratelimit(true) != 0 || x->obj_->set_listen_port(o.listen_port) != 0) {
    *err = "cannot write the config map";
    return nullptr;
  }
  return x;
}

XdpPlane::~XdpPlane() {
  if (prog_) {
    if (!attach_mode_.empty())
      xdp_program__detach(prog_, ifindex_, static_cast<xdp_attach_mode>(xdp_mode_), 0);
    xdp_program__close(prog_);  // the object stays ours (xdp_program__from_bpf_obj)
  }
  obj_.reset();            // unpins the maps, after the program left the NIC
  rmdir(XSKTUN_PIN_ROOT);  // only succeeds when no other interface uses it
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
