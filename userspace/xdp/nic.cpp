#include "xsktun/xdp/nic.h"

#include <libmnl/libmnl.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "xsktun_shared.h"

namespace xsktun::xdp {

namespace {
constexpr const char* kBpffs = "/sys/fs/bpf";

// One generic-netlink conversation: a request, its one reply handed to a callback per
// attribute (the ethtool GET requests here are not dumps, so one reply message answers).
class Genl {
 public:
  Genl() : nl_(mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC)), buf_(1 << 16) {
    if (nl_ && mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
      mnl_socket_close(nl_);
      nl_ = nullptr;
    }
  }
  ~Genl() {
    if (nl_) mnl_socket_close(nl_);
  }
  Genl(const Genl&) = delete;
  Genl& operator=(const Genl&) = delete;

  // Starts a request of `family` (a family id) and `cmd`; add attributes to the result.
  nlmsghdr* request(uint16_t family, uint8_t cmd, uint8_t version) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
    nlh->nlmsg_type = family;
    nlh->nlmsg_flags = NLM_F_REQUEST;
    nlh->nlmsg_seq = seq_ = static_cast<uint32_t>(time(nullptr));
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
    g->cmd = cmd;
    g->version = version;
    return nlh;
  }

  // Sends the request and runs `attr_cb` on each top-level attribute of the reply; false if
  // the socket failed or the kernel answered with an error.
  bool exchange(nlmsghdr* nlh, mnl_attr_cb_t attr_cb, void* data) {
    if (!nl_ || mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return false;
    ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
    if (n <= 0) return false;
    Ctx ctx{attr_cb, data};
    return mnl_cb_run(buf_.data(), static_cast<size_t>(n), seq_, mnl_socket_get_portid(nl_), on_msg, &ctx) >=
           0;
  }

 private:
  struct Ctx {
    mnl_attr_cb_t cb;
    void* data;
  };
  static int on_msg(const nlmsghdr* nlh, void* p) {
    auto* ctx = static_cast<Ctx*>(p);
    return mnl_attr_parse(nlh, sizeof(genlmsghdr), ctx->cb, ctx->data);
  }

  mnl_socket* nl_;
  std::vector<char> buf_;
  uint32_t seq_ = 0;
};

// The "ethtool" generic netlink family's id, 0 if the kernel has none.
uint16_t ethtool_family(Genl& nl) {
  nlmsghdr* nlh = nl.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
  mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME);
  uint16_t id = 0;
  auto cb = [](const nlattr* a, void* p) {
    if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(a, MNL_TYPE_U16) == 0)
      *static_cast<uint16_t*>(p) = mnl_attr_get_u16(a);
    return MNL_CB_OK;
  };
  return nl.exchange(nlh, cb, &id) ? id : 0;
}

// An ethtool GET request for `nic`: the command and its request header's attribute.
nlmsghdr* ethtool_request(Genl& nl, uint16_t family, uint8_t cmd, uint16_t header_attr,
                          const std::string& nic) {
  nlmsghdr* nlh = nl.request(family, cmd, ETHTOOL_GENL_VERSION);
  nlattr* hdr = mnl_attr_nest_start(nlh, header_attr);
  mnl_attr_put_strz(nlh, ETHTOOL_A_HEADER_DEV_NAME, nic.c_str());
  mnl_attr_nest_end(nlh, hdr);
  return nlh;
}

// Finds a bit by name in an ethtool bitset attribute (the verbose form the kernel sends when
// the request did not ask for compact bitsets: bits listed with index and name).
struct BitQuery {
  const char* name;
  bool list = false;  // ETHTOOL_A_BITSET_NOMASK: every listed bit is set
  bool found = false;
  bool value = false;
};

// One ETHTOOL_A_BITSET_BITS_BIT: its name and whether ETHTOOL_A_BITSET_BIT_VALUE is present.
struct Bit {
  const char* name = nullptr;
  bool value = false;
};

int bit_field(const nlattr* f, void* p) {
  auto* b = static_cast<Bit*>(p);
  if (mnl_attr_get_type(f) == ETHTOOL_A_BITSET_BIT_NAME && mnl_attr_validate(f, MNL_TYPE_NUL_STRING) == 0)
    b->name = mnl_attr_get_str(f);
  else if (mnl_attr_get_type(f) == ETHTOOL_A_BITSET_BIT_VALUE)
    b->value = true;
  return MNL_CB_OK;
}

int bit_attr(const nlattr* a, void* p) {
  auto* q = static_cast<BitQuery*>(p);
  if (mnl_attr_get_type(a) != ETHTOOL_A_BITSET_BITS_BIT) return MNL_CB_OK;
  Bit b;
  mnl_attr_parse_nested(a, bit_field, &b);
  if (b.name && std::strcmp(b.name, q->name) == 0) {
    q->found = true;
    q->value = b.value;
  }
  return MNL_CB_OK;
}

int bitset_attr(const nlattr* a, void* p) {
  auto* q = static_cast<BitQuery*>(p);
  if (mnl_attr_get_type(a) == ETHTOOL_A_BITSET_NOMASK) q->list = true;
  if (mnl_attr_get_type(a) == ETHTOOL_A_BITSET_BITS) mnl_attr_parse_nested(a, bit_attr, p);
  return MNL_CB_OK;
}

// One interface ioctl on `nic` (ifr_name filled in); false if it fails.
bool nic_ioctl(const std::string& nic, unsigned long request, ifreq* ifr) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  std::strncpy(ifr->ifr_name, nic.c_str(), IFNAMSIZ - 1);
  bool ok = ioctl(fd, request, ifr) == 0;
  close(fd);
  return ok;
}
}  // namespace

uint32_t nic_mtu(const std::string& nic) {
  ifreq ifr{};
  return nic_ioctl(nic, SIOCGIFMTU, &ifr) && ifr.ifr_mtu > 0 ? static_cast<uint32_t>(ifr.ifr_mtu) : 0;
}

int nic_rx_queues(const std::string& nic) {
  // Ethtool channels, not /sys/class/net: under `nsenter --net` sysfs still shows the host's
  // namespace, where this NIC may not exist; netlink answers for the caller's namespace.
  Genl nl;
  uint16_t family = ethtool_family(nl);
  uint32_t counts[2] = {0, 0};  // rx, combined
  if (family != 0) {
    nlmsghdr* nlh = ethtool_request(nl, family, ETHTOOL_MSG_CHANNELS_GET, ETHTOOL_A_CHANNELS_HEADER, nic);
    auto cb = [](const nlattr* a, void* p) {
      auto* c = static_cast<uint32_t*>(p);
      if (mnl_attr_validate(a, MNL_TYPE_U32) != 0) return MNL_CB_OK;
      if (mnl_attr_get_type(a) == ETHTOOL_A_CHANNELS_RX_COUNT) c[0] = mnl_attr_get_u32(a);
      if (mnl_attr_get_type(a) == ETHTOOL_A_CHANNELS_COMBINED_COUNT) c[1] = mnl_attr_get_u32(a);
      return MNL_CB_OK;
    };
    if (!nl.exchange(nlh, cb, counts)) counts[0] = counts[1] = 0;  // no channels: one queue
  }
  return std::clamp(static_cast<int>(std::max(counts[0], counts[1])), 1, XSKTUN_MAX_QUEUES);
}

std::optional<bool> nic_udp_segmentation(const std::string& nic) {
  // The active features by name (what `ethtool -k NIC` shows as tx-udp-segmentation): the
  // bit's position is not ABI, its name is.
  Genl nl;
  uint16_t family = ethtool_family(nl);
  if (family == 0) return std::nullopt;
  nlmsghdr* nlh = ethtool_request(nl, family, ETHTOOL_MSG_FEATURES_GET, ETHTOOL_A_FEATURES_HEADER, nic);
  BitQuery q{"tx-udp-segmentation"};
  auto cb = [](const nlattr* a, void* p) {
    if (mnl_attr_get_type(a) == ETHTOOL_A_FEATURES_ACTIVE) mnl_attr_parse_nested(a, bitset_attr, p);
    return MNL_CB_OK;
  };
  if (!nl.exchange(nlh, cb, &q)) return std::nullopt;
  return q.found && (q.list || q.value);
}

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

}  // namespace xsktun::xdp
