#include "xsktun/control/socket_server.h"

#include <poll.h>
#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace xsktun::control {

namespace {

constexpr size_t kReadChunk = 64 * 1024;

// Wipes every byte the string owns, including capacity past size() that erase() left behind.
void wipe(std::string& s) {
  s.resize(s.capacity());
  sodium_memzero(s.data(), s.size());
  s.clear();
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// mkdir -p with 0755 for every directory it creates (wireguard-go: os.MkdirAll(dir, 0o755)).
bool make_parent_dirs(const std::string& path, std::string* error) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string dir = path.substr(0, pos);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = errno_text("mkdir " + dir);
      return false;
    }
  }
  return true;
}

bool fill_addr(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) return false;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

}  // namespace

int connect_unix(const std::string& path) {
  sockaddr_un addr;
  if (!fill_addr(path, &addr)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

struct SocketServer::Client {
  Client(int f, std::unique_ptr<LineSession> s) : fd(f), session(std::move(s)) {}
  ~Client() {
    wipe(in);
    wipe(out);
    if (fd >= 0) close(fd);
  }

  int fd;
  std::unique_ptr<LineSession> session;
  std::string in;  // received bytes; [head, size) not yet consumed
  size_t head = 0;
  size_t scanned = 0;  // no '\n' in [head, scanned): avoids rescanning a long partial line
  std::string out;     // reply bytes; [out_off, size) not yet sent
  size_t out_off = 0;
  bool eof = false;
  bool closing = false;  // hang up once `out` is flushed
  bool dead = false;
};

SocketServer::SocketServer(Factory factory, size_t max_line)
    : factory_(std::move(factory)), max_line_(max_line) {}

SocketServer::~SocketServer() { stop(); }

bool SocketServer::start(const std::string& path, std::string* error) {
  if (running_) {
    *error = "already serving " + path_;
    return false;
  }
  path_ = path;
  if (!make_parent_dirs(path_, error) || !bind_socket(error)) return false;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = errno_text("eventfd");
    close_all();
    unlink(path_.c_str());
    return false;
  }
  running_ = true;
  thread_ = std::thread(&SocketServer::loop, this);
  return true;
}

bool SocketServer::bind_socket(std::string* error) {
  sockaddr_un addr;
  if (!fill_addr(path_, &addr)) {
    *error = "socket path empty or longer than " + std::to_string(sizeof addr.sun_path - 1) + " bytes";
    return false;
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) {
    *error = errno_text("socket");
    return false;
  }
  auto try_bind = [&] {
    // The socket file takes its mode from the umask: 077 gives srwx------ like wireguard-go.
    mode_t old = umask(077);
    int rc = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int saved = errno;
    umask(old);
    errno = saved;
    return rc == 0;
  };
  bool ok = try_bind();
  if (!ok && errno == EADDRINUSE) {
    // wireguard-go's UAPIOpen: a socket nobody answers on was left by a dead daemon; replace it.
    struct stat st;
    int live = connect_unix(path_);
    if (live >= 0) {
      close(live);
      *error = path_ + ": unix socket in use by another process";
    } else if (lstat(path_.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      *error = path_ + ": exists and is not a socket";
    } else if (unlink(path_.c_str()) != 0 && errno != ENOENT) {
      *error = errno_text("unlink stale " + path_);
    } else if (!(ok = try_bind())) {
      *error = errno_text("bind " + path_);
    }
  } else if (!ok) {
    *error = errno_text("bind " + path_);
  }
  struct stat st;
  if (ok && (listen(listen_fd_, 16) != 0 || lstat(path_.c_str(), &st) != 0)) {
    *error = errno_text("listen " + path_);
    unlink(path_.c_str());
    ok = false;
  }
  if (!ok) {
    close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return true;
}

void SocketServer::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  thread_.join();
  bool ours = !socket_file_gone();  // never unlink a socket a newer daemon put in our place
  running_ = false;
  close_all();
  if (ours) unlink(path_.c_str());
}

void SocketServer::close_all() {
  clients_.clear();
  client_count_ = 0;
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

bool SocketServer::socket_file_gone() const {
  if (!running_) return false;
  struct stat st;
  if (lstat(path_.c_str(), &st) != 0) return errno == ENOENT || errno == ENOTDIR;
  return st.st_dev != dev_ || st.st_ino != ino_;
}

void SocketServer::loop() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(clients_.size() < kMaxClients ? POLLIN : 0), 0});
    for (auto& c : clients_) fds.push_back({c->fd, static_cast<short>(c->out.empty() ? POLLIN : POLLOUT), 0});
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents) service(*clients_[i - 2], fds[i].revents);
    }
    std::erase_if(clients_, [](const auto& c) { return c->dead; });
    if (fds[1].revents & POLLIN) accept_clients();
    client_count_ = clients_.size();
  }
}

void SocketServer::accept_clients() {
  while (clients_.size() < kMaxClients) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a client that vanished while queued
    clients_.push_back(std::make_unique<Client>(fd, factory_()));
  }
}

void SocketServer::service(Client& c, short revents) {
  if (revents & (POLLERR | POLLNVAL)) {
    c.dead = true;
    return;
  }
  if (c.out.empty() && (revents & (POLLIN | POLLHUP))) read_some(c);
  // Answer every complete line already buffered, one reply at a time: a reply that cannot be
  // sent yet stops processing until poll() says the socket is writable.
  while (!c.dead) {
    if (!c.out.empty() && !flush(c)) break;
    if (c.closing || !process_one(c)) break;
  }
  if (!c.dead && c.out.empty() && (c.closing || c.eof)) c.dead = true;
}

void SocketServer::read_some(Client& c) {
  size_t old = c.in.size();
  c.in.resize(old + kReadChunk);
  ssize_t n = recv(c.fd, c.in.data() + old, kReadChunk, MSG_DONTWAIT);
  c.in.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
  if (n == 0) c.eof = true;  // a line still incomplete at EOF is dropped, never handled
  if (n < 0 && errno != EAGAIN && errno != EINTR) c.dead = true;
}

bool SocketServer::flush(Client& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) c.dead = true;
      return false;
    }
    c.out_off += static_cast<size_t>(n);
  }
  wipe(c.out);
  c.out_off = 0;
  return true;
}

// Consumes one line if a complete one is buffered. Returns false when more input is needed.
bool SocketServer::process_one(Client& c) {
  size_t nl = c.in.find('\n', c.scanned);
  // The cap also applies to a line whose newline is already buffered: checking only partial
  // lines made the limit depend on how the bytes happened to be split between reads.
  size_t len = (nl == std::string::npos ? c.in.size() : nl) - c.head;
  if (len > max_line_) {
    c.out = c.session->too_long();
    c.closing = true;  // the stream cannot be resynchronised after a truncated line
    return false;
  }
  if (nl == std::string::npos) {
    c.scanned = c.in.size();
    return false;
  }
  if (!c.session->line(std::string_view(c.in).substr(c.head, nl - c.head), &c.out)) c.closing = true;
  c.head = c.scanned = nl + 1;
  if (c.head == c.in.size() || c.head > kReadChunk) {
    std::fill(c.in.begin(), c.in.begin() + static_cast<long>(c.head), '\0');  // consumed lines carry keys
    c.in.erase(0, c.head);
    c.head = c.scanned = 0;
  }
  return true;
}

}  // namespace xsktun::control
