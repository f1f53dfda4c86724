// Prometheus metrics: the status JSON of `xsktun show` (one or more interfaces) rendered in the
// text exposition format (version 0.0.4), for `xsktun show --format prometheus` and for the
// daemon's optional /metrics endpoint (--metrics-listen, libmicrohttpd).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace xsktun::cli {

// `statuses`: an array of status objects (build_status). Every counter becomes
// xsktun_<name>_total{interface}; XDP verdicts xsktun_xdp_<verdict>_total; per peer
// xsktun_peer_{rx,tx}_bytes_total and xsktun_peer_latest_handshake_seconds labelled by
// interface and public_key; device gauges xsktun_peers, xsktun_mtu, xsktun_listen_port,
// xsktun_info{mode,aead}.
std::string prometheus_text(const nlohmann::json& statuses);

// Serves GET /metrics on ADDR:PORT ("9586" or ":9586" = 127.0.0.1; "0.0.0.0:9586", "[::]:9586").
class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  // `render` produces the page for each scrape. False with *err if the address is bad or busy.
  bool start(const std::string& listen, std::function<std::string()> render, std::string* err);
  void stop();
  uint16_t port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace xsktun::cli
