// Who owns an interface's run state: a daemon holds an exclusive flock on
// /var/run/xsktun/IFNAME.lock for its whole life, with "PID NIC" written in it. A lock nobody
// holds means its owner is dead (the kernel drops a flock when the process dies, even by
// SIGKILL), so what it left behind (its XDP program on the NIC, its pins) may be taken over
// without --force; a held lock names a live owner, and `up` refuses, naming it.
#pragma once

#include <optional>
#include <string>

namespace xsktun::cli {

class OwnerLock {
 public:
  OwnerLock() = default;
  OwnerLock(const OwnerLock&) = delete;
  OwnerLock& operator=(const OwnerLock&) = delete;
  ~OwnerLock();  // removes the lock file, then releases it

  // Takes IFNAME's lock. False with *err naming the live owner if another process holds it.
  bool acquire(const std::string& ifname, std::string* err);
  // Records the NIC this daemon attaches XDP to, so other daemons can tell who owns a program.
  void record_nic(const std::string& nic);

 private:
  int fd_ = -1;
  std::string path_;
};

// Whether pid runs and is no zombie (a zombie's threads may still be closing its files, and an
// init that reaps slowly keeps it around after it has stopped).
bool process_running(long pid);

// The path of IFNAME's lock file.
std::string lock_file_path(const std::string& ifname);

// A live xsktun daemon other than `self_ifname` that recorded `nic`: "IFNAME (pid N)".
std::optional<std::string> live_owner_of_nic(const std::string& nic, const std::string& self_ifname);

}  // namespace xsktun::cli
