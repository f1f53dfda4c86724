// Least privilege: once the TUN, the sockets and (XDP mode) the program, maps and AF_XDP sockets
// exist, the daemon keeps only the capabilities its remaining work uses (libcap-ng):
//   CAP_NET_ADMIN          fwmark (SO_MARK), XDP detach and NIC queries at teardown;
//   CAP_NET_BIND_SERVICE   `wg set listen-port` below 1024;
//   CAP_BPF                (XDP mode) map updates as peers, sessions and prefixes change;
//   CAP_SYS_ADMIN          (XDP mode) looking up a program by id when the NIC's XDP program
//                          changed (libxdp's multiprog query), to tell a detach from a reload.
// Dropped: CAP_NET_RAW and CAP_IPC_LOCK (AF_XDP sockets and UMEM exist), CAP_DAC_OVERRIDE,
// CAP_SYS_MODULE, CAP_SYS_PTRACE and every other; the bounding set too, so nothing comes back.
// Capabilities are per thread: call before the daemon starts its threads (they inherit them).
#pragma once

#include <string>

namespace xsktun::cli {

// False with *err if libcap-ng could not apply the set.
bool drop_capabilities(bool xdp_mode, std::string* err);

}  // namespace xsktun::cli
