// Least privilege: once the TUN, the sockets and (XDP mode) the program, maps and AF_XDP sockets
// exist, the daemon keeps only the capabilities its remaining work uses (libcap-ng):
//   CAP_NET_ADMIN          fwmark (SO_MARK), XDP detach and NIC queries at teardown;
//   CAP_NET_BIND_SERVICE   `wg set listen-port` below 1024;
//   CAP_BPF                (XDP mode) map updates as peers, sessions and prefixes change;
//   CAP_SYS_ADMIN          (XDP mode) looking up a program by id when the NIC's XDP program
//                          changed (libxdp's multiprog query), to tell a detach from a reload.
// Dropped: CAP_NET_RAW and CAP_IPC_LOCK (AF_XDP sockets and UMEM exist), CAP_DAC_OVERRIDE,
// CAP_SYS_MODULE, CAP_SYS_PTRACE and every other; the bounding set too, so nothing comes back.
// With --user the process also becomes that user (uid, gid) keeping the set plus
// CAP_DAC_OVERRIDE. Capabilities are per thread: call before the daemon starts its threads
// (they inherit them).
#pragma once

#include <string>

namespace xsktun::cli {

// False with *err if libcap-ng could not apply the set. With a `user` (name), the process also
// switches to that user's uid and gid (supplementary groups dropped) keeping the set, plus
// CAP_DAC_OVERRIDE: its run files, UAPI socket and pins live in root-owned directories
// (/run/xsktun, /run/wireguard, /sys/fs/bpf/xsktun), where it must create and remove them.
bool drop_privileges(bool xdp_mode, const std::string& user, std::string* err);
// Whether `user` names an account (checked before anything is created).
bool user_exists(const std::string& user);

}  // namespace xsktun::cli
