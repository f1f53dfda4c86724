// What XDP mode needs to know about the NIC it attaches to, in one place: its MTU, its RX
// queues and whether it segments UDP GSO packets (ethtool over generic netlink, libmnl), and
// the bpffs its maps are pinned on. Every query reads the caller's network namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace xsktun::xdp {

// The MTU of a NIC (SIOCGIFMTU), 0 if it cannot be read.
uint32_t nic_mtu(const std::string& nic);

// The NIC's RX queues (ethtool channels: rx or combined, the larger), clamped to
// 1..XSKTUN_MAX_QUEUES; 1 when the driver reports no channels.
int nic_rx_queues(const std::string& nic);

// Whether `nic` segments UDP GSO packets itself (ethtool feature tx-udp-segmentation, active);
// nullopt if ethtool netlink cannot be asked (no such NIC, a kernel without it).
std::optional<bool> nic_udp_segmentation(const std::string& nic);

// Mounts bpffs on /sys/fs/bpf when it is not mounted. Returns false with *err on failure.
bool ensure_bpffs(std::string* err);

}  // namespace xsktun::xdp
