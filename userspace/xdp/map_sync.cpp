#include "xsktun/xdp/map_sync.h"

#include <bpf/bpf.h>

#include <cstring>

#include "xsktun_shared.h"

namespace xsktun::xdp {

void MapSync::session_added(uint32_t index, uint32_t peer_id) {
  xsktun_session v{peer_id};
  if (bpf_map_update_elem(fds_.sessions, &index, &v, BPF_ANY) != 0) failed();
}

void MapSync::session_removed(uint32_t index) { bpf_map_delete_elem(fds_.sessions, &index); }

void MapSync::peer_updated(uint32_t peer_id, const Key& public_key, const Endpoint& endpoint) {
  xsktun_peer v{};
  std::memcpy(v.public_key, public_key.data(), sizeof v.public_key);
  if (endpoint.valid()) {
    std::memcpy(v.endpoint_addr, endpoint.addr.bytes.data(), sizeof v.endpoint_addr);
    v.endpoint_port = endpoint.port;
    v.endpoint_family = endpoint.addr.family;
  }
  if (bpf_map_update_elem(fds_.peers, &peer_id, &v, BPF_ANY) != 0) failed();
}

void MapSync::peer_removed(uint32_t peer_id) { bpf_map_delete_elem(fds_.peers, &peer_id); }

void MapSync::write_prefix(const Prefix& p, uint32_t peer, bool remove) {
  int rc;
  if (p.addr.family == AF_INET) {
    xsktun_lpm_v4 k{p.cidr, {}};
    std::memcpy(k.addr, p.addr.bytes.data(), 4);
    rc = remove ? bpf_map_delete_elem(fds_.allowed_v4, &k)
                : bpf_map_update_elem(fds_.allowed_v4, &k, &peer, BPF_ANY);
  } else {
    xsktun_lpm_v6 k{p.cidr, {}};
    std::memcpy(k.addr, p.addr.bytes.data(), 16);
    rc = remove ? bpf_map_delete_elem(fds_.allowed_v6, &k)
                : bpf_map_update_elem(fds_.allowed_v6, &k, &peer, BPF_ANY);
  }
  if (rc != 0 && !remove) failed();
}

void MapSync::allowed_ips_changed(std::span<const routing::PrefixChange> delta) {
  for (const auto& c : delta) write_prefix(c.prefix, c.after.value_or(0), !c.after);
}

std::set<std::pair<std::string, uint32_t>> dump_allowed_map(int fd, int family) {
  std::set<std::pair<std::string, uint32_t>> out;
  uint8_t key[20], next[20];
  size_t alen = family == AF_INET ? 4 : 16;
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next) == 0) {
    uint32_t peer = 0;
    if (bpf_map_lookup_elem(fd, next, &peer) == 0) {
      uint32_t plen;
      std::memcpy(&plen, next, 4);
      Prefix p;
      p.addr = family == AF_INET ? IpAddr::v4(next + 4) : IpAddr::v6(next + 4);
      p.cidr = static_cast<uint8_t>(plen);
      out.emplace(p.str(), peer);
    }
    std::memcpy(key, next, 4 + alen);
    prev = key;
  }
  return out;
}

}  // namespace xsktun::xdp
