#include "xsktun/cli/owner_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "xsktun/cli/control_socket.h"

namespace xsktun::cli {

namespace {

// "PID NIC" from a lock file, as far as it says.
std::pair<std::string, std::string> read_owner(const std::string& path) {
  std::ifstream f(path);
  std::string pid, nic;
  f >> pid >> nic;
  return {pid, nic};
}

// The recorded owner, as process_running sees it.
bool owner_alive(const std::string& pid) { return !pid.empty() && process_running(std::atol(pid.c_str())); }

}  // namespace

bool process_running(long pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string p, comm, state;
  if (pid <= 0 || !(st >> p >> comm >> state)) return false;
  return state != "Z" && state != "X";
}

std::string lock_file_path(const std::string& ifname) {
  return std::string(kRunDir) + "/" + ifname + ".lock";
}

bool OwnerLock::acquire(const std::string& ifname, std::string* err) {
  path_ = lock_file_path(ifname);
  mkdir(kRunDir, 0755);
  for (int attempt = 0; attempt < 8; ++attempt) {
    int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      *err = "cannot open " + path_ + ": " + strerror(errno);
      return false;
    }
    // A SIGKILLed owner turns zombie before its last thread has closed its files: while the
    // recorded owner is dying, wait for the lock (up to 3 s) instead of refusing.
    bool locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    for (int i = 0; !locked && i < 60 && !owner_alive(read_owner(path_).first); ++i) {
      usleep(50 * 1000);
      locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    }
    if (!locked) {
      auto [pid, nic] = read_owner(path_);
      close(fd);
      *err = ifname + " is owned by a running xsktun (pid " + (pid.empty() ? "?" : pid) + ", lock " + path_ +
             ")";
      return false;
    }
    // The previous owner removes the file before it lets go: a lock on a file that is no longer
    // the one at path_ protects nothing, so open the current one again.
    struct stat by_fd, by_path;
    if (fstat(fd, &by_fd) == 0 && stat(path_.c_str(), &by_path) == 0 && by_fd.st_ino == by_path.st_ino &&
        by_fd.st_dev == by_path.st_dev) {
      fd_ = fd;
      std::string line = std::to_string(getpid()) + "\n";
      if (ftruncate(fd_, 0) != 0 || pwrite(fd_, line.data(), line.size(), 0) < 0) {
        *err = "cannot write " + path_ + ": " + strerror(errno);
        return false;
      }
      return true;
    }
    close(fd);
  }
  *err = "cannot take " + path_ + ": it keeps being replaced";
  return false;
}

void OwnerLock::record_nic(const std::string& nic) {
  if (fd_ < 0) return;
  std::string line = std::to_string(getpid()) + " " + nic + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, line.data(), line.size(), 0) < 0) return;
}

OwnerLock::~OwnerLock() {
  if (fd_ < 0) return;
  unlink(path_.c_str());
  close(fd_);
}

std::optional<std::string> live_owner_of_nic(const std::string& nic, const std::string& self_ifname) {
  DIR* d = opendir(kRunDir);
  if (!d) return std::nullopt;
  std::optional<std::string> owner;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() <= 5 || !name.ends_with(".lock")) continue;
    std::string ifname = name.substr(0, name.size() - 5);
    if (ifname == self_ifname) continue;
    std::string path = std::string(kRunDir) + "/" + name;
    auto [pid, recorded] = read_owner(path);
    if (recorded != nic) continue;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    if (held) {
      owner = ifname + " (pid " + pid + ")";
      break;
    }
  }
  closedir(d);
  return owner;
}

}  // namespace xsktun::cli
