// The UAPI unix-socket server: what `wg` and `wg-quick` talk to at /var/run/wireguard/IFNAME.sock
// when the interface is run by a userspace implementation (wireguard-tools src/ipc-uapi.h).
//
// Behaviour follows wireguard-go (ipc/uapi_unix.go, ipc/uapi_linux.go, device/uapi.go):
//  - the parent directory is created with mode 0755, the socket is bound under umask 077 (so it
//    is srwx------); a stale socket left by a dead daemon is replaced, a live one is an error;
//  - a connection may carry any number of commands in sequence: "get=1\n\n", or "set=1\n",
//    key=value lines, "\n"; each is answered with the get body and/or "errno=N\n\n";
//  - an unknown command closes the connection without a reply.
// Differences, on purpose: a set is applied only when its terminating blank line arrives (a
// client that disconnects mid-command changes nothing; one that disconnects after it still gets
// it applied); a set is parsed line by line as it arrives (UapiSetParser), so its size in bytes
// is not limited, only what it configures (peer blocks and allowed IPs, from the device's
// limits: about 100 MB of parsed configuration at most per connection); input lines longer
// than kMaxLine get "errno=-EMSGSIZE" and a hang-up instead of unbounded memory (wireguard-go
// buffers without limit).
//
// The socket and its connections are a SocketServer's (socket_server.h): one poll() thread, so
// the handler is called from that thread, one command at a time.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

#include "xsktun/control/config.h"
#include "xsktun/control/socket_server.h"
#include "xsktun/control/uapi.h"

namespace xsktun::control {

class UapiHandler {
 public:
  virtual ~UapiHandler() = default;
  virtual DeviceSnapshot get() = 0;
  // Apply atomically; return errno_value 0 on success, else a positive errno (EINVAL,
  // EADDRINUSE for an unusable listen port, ...).
  virtual UapiError set(const ConfigChange& change) = 0;
};

class UapiServer {
 public:
  // The longest legitimate line is an IPv6 endpoint (under 70 bytes): 64 KiB is only a guard.
  static constexpr size_t kMaxLine = 64 << 10;
  static constexpr size_t kMaxClients = SocketServer::kMaxClients;

  explicit UapiServer(UapiHandler& handler);
  ~UapiServer() = default;  // the server stop()s
  UapiServer(const UapiServer&) = delete;
  UapiServer& operator=(const UapiServer&) = delete;

  // "/var/run/wireguard/<ifname>.sock", where `wg` looks for userspace interfaces.
  static std::string default_path(std::string_view ifname);

  // Binds and starts the thread. On failure returns false and describes why in *error.
  bool start(const std::string& path, std::string* error = nullptr);
  // Stops the thread, closes every connection and unlinks the socket file if it is still ours.
  // Idempotent.
  void stop() { server_.stop(); }
  bool running() const { return server_.running(); }

  // True once the socket file we created is gone or replaced (`wg-quick down` deletes it to
  // make a userspace daemon exit). Cheap (one lstat); meant to be polled by the daemon.
  // Call only between start() and stop(), from any thread.
  bool socket_file_gone() const { return server_.socket_file_gone(); }

  size_t client_count() const { return server_.client_count(); }
  // Lower caps on what one set may carry (tests); the defaults are UapiSetParser's.
  void set_parse_limits(size_t peer_blocks, size_t prefixes) {
    max_peer_blocks_ = peer_blocks;
    max_prefixes_ = prefixes;
  }

 private:
  class Session;

  UapiHandler& handler_;
  std::atomic<size_t> max_peer_blocks_{UapiSetParser::kMaxPeerBlocks};
  std::atomic<size_t> max_prefixes_{UapiSetParser::kMaxPrefixes};
  SocketServer server_;  // last: stopped (its thread joined) before the members above go
};

}  // namespace xsktun::control
