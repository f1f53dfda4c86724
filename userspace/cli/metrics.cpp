#include "xsktun/cli/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstring>
#include <map>
#include <sstream>
#include <vector>

namespace xsktun::cli {

namespace {

// Label values: backslash, double quote and newline escaped (exposition format).
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// One metric family: HELP, TYPE, then its samples (`labels` already rendered).
struct Family {
  std::string help, type;
  std::vector<std::pair<std::string, std::string>> samples;  // labels, value
};

std::string value(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number()) return v.dump();
  return "0";
}

}  // namespace

std::string prometheus_text(const nlohmann::json& statuses) {
  std::map<std::string, Family> fam;  // sorted by name: stable output
  auto add = [&](const std::string& name, const char* type, const std::string& help,
                 const std::string& labels, const std::string& v) {
    auto& f = fam[name];
    f.help = help;
    f.type = type;
    f.samples.emplace_back(labels, v);
  };
  for (const auto& s : statuses) {
    std::string ifl = "interface=\"" + label(s.value("interface", "")) + "\"";
    add("xsktun_info", "gauge", "xsktun interface: mode and data-path AEAD (always 1)",
        ifl + ",mode=\"" + label(s.value("mode", "")) + "\",aead=\"" + label(s.value("aead", "")) + "\"",
        "1");
    add("xsktun_peers", "gauge", "Configured peers", ifl,
        std::to_string(s.value("peers", nlohmann::json::array()).size()));
    add("xsktun_mtu", "gauge", "Inner MTU of the TUN interface", ifl, value(s["mtu"]));
    add("xsktun_listen_port", "gauge", "UDP listen port", ifl, value(s["listen_port"]));
    add("xsktun_xdp_attached", "gauge", "Whether xsktun's XDP program is attached to the NIC (XDP mode)", ifl,
        value(s["xdp_attached"]));
    // A named copy: items() of the temporary value() returns would outlive it.
    const nlohmann::json counters = s.value("counters", nlohmann::json::object());
    for (const auto& [k, v] : counters.items())
      add("xsktun_" + k + "_total", "counter", "xsktun counter " + k + " (README: counters)", ifl, value(v));
    const nlohmann::json workers = s.value("worker", nlohmann::json::array());
    if (!workers.empty())
      add("xsktun_workers", "gauge", "Data-path workers (--queues)", ifl, std::to_string(workers.size()));
    for (size_t i = 0; i < workers.size(); ++i) {
      std::string wl = ifl + ",worker=\"" + std::to_string(i) + "\"";
      for (const char* k : {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes"})
        add(std::string("xsktun_worker_") + k + "_total", "counter",
            std::string("What one worker carried: ") + k + " (show --json: worker)", wl,
            value(workers[i][k]));
    }
    const nlohmann::json peers = s.value("peers", nlohmann::json::array());
    for (const auto& p : peers) {
      std::string pl = ifl + ",public_key=\"" + label(p.value("public_key", "")) + "\"";
      add("xsktun_peer_rx_bytes_total", "counter", "Bytes received from the peer (inner, authenticated)", pl,
          value(p["rx_bytes"]));
      add("xsktun_peer_tx_bytes_total", "counter", "Bytes sent to the peer", pl, value(p["tx_bytes"]));
      add("xsktun_peer_latest_handshake_seconds", "gauge",
          "Unix time of the peer's latest handshake (0: never)", pl, value(p["latest_handshake"]));
    }
  }
  std::ostringstream o;
  for (const auto& [name, f] : fam) {
    o << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    for (const auto& [labels, v] : f.samples) o << name << "{" << labels << "} " << v << "\n";
  }
  return o.str();
}

struct MetricsServer::Impl {
  MHD_Daemon* daemon = nullptr;
  std::function<std::string()> render;

  static MHD_Result handle(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                           const char*, size_t*, void**) {
    auto* self = static_cast<Impl*>(cls);
    bool ok = std::strcmp(method, "GET") == 0 && std::strcmp(url, "/metrics") == 0;
    std::string body = ok ? self->render() : "not found: GET /metrics\n";
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type",
                            ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
    MHD_Result rc = MHD_queue_response(c, ok ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    return rc;
  }
};

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() { stop(); }

bool MetricsServer::start(const std::string& listen, std::function<std::string()> render, std::string* err) {
  // "PORT" / ":PORT" -> loopback; "ADDR:PORT" or "[V6]:PORT".
  std::string host = "127.0.0.1", port_s = listen;
  if (auto colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
    port_s = listen.substr(colon + 1);
    if (host.empty()) host = "127.0.0.1";
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  long port = std::strtol(port_s.c_str(), &end, 10);
  if (port_s.empty() || *end || port < 1 || port > 65535) {
    *err = "--metrics-listen: bad port in '" + listen + "'";
    return false;
  }
  sockaddr_storage ss{};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
  if (auto* a4 = reinterpret_cast<sockaddr_in*>(&ss); inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
  } else if (auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
             inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    flags |= MHD_USE_IPv6;
  } else {
    *err = "--metrics-listen: '" + host + "' is not an IPv4 or IPv6 address";
    return false;
  }
  impl_ = std::make_unique<Impl>();
  impl_->render = std::move(render);
  impl_->daemon =
      MHD_start_daemon(flags, static_cast<uint16_t>(port), nullptr, nullptr, &Impl::handle, impl_.get(),
                       MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss), MHD_OPTION_CONNECTION_LIMIT,
                       16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
  if (!impl_->daemon) {
    *err = "--metrics-listen: cannot listen on " + listen + " (in use?)";
    impl_.reset();
    return false;
  }
  port_ = static_cast<uint16_t>(port);
  return true;
}

void MetricsServer::stop() {
  if (impl_ && impl_->daemon) MHD_stop_daemon(impl_->daemon);
  impl_.reset();
}

}  // namespace xsktun::cli
