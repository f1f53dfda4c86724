#include "xsktun/cli/status.h"

#include <sstream>

#include "xsktun/control/keys.h"
#include "xsktun/protocol/data_aead.h"

namespace xsktun::cli {

using nlohmann::json;

nlohmann::json build_status(const std::string& ifname, const ModeInfo& mode,
                            const control::DeviceSnapshot& snap, const device::CounterValues& counters,
                            size_t mtu, int64_t now_unix) {
  json j;
  j["interface"] = ifname;
  j["public_key"] = snap.private_key ? control::key_to_base64(snap.public_key) : "";
  j["listen_port"] = snap.listen_port;
  j["fwmark"] = snap.fwmark;
  j["mtu"] = mtu;
  j["mode"] = mode.mode;
  j["aead"] = proto::aead::name(proto::aead::effective_backend());
  j["aead_fallbacks"] = proto::aead::openssl_fallbacks();
  if (mode.mode == "xdp")
    j["xdp"] = {{"nic", mode.nic},
                {"attach_mode", mode.attach_mode},
                {"zerocopy", mode.zerocopy},
                {"queues", mode.queues}};
  else
    j["xdp"] = nullptr;
  // Whether xsktun's XDP program is on the NIC. Only the daemon can tell (it holds the program),
  // so it overwrites this in XDP mode; false means every received datagram reaches the kernel
  // UDP socket: in socket mode by design, in XDP mode because someone detached the program.
  j["xdp_attached"] = false;
  json peers = json::array();
  for (const auto& p : snap.peers) {
    json jp;
    jp["public_key"] = control::key_to_base64(p.public_key);
    jp["endpoint"] = p.endpoint ? json(p.endpoint->str()) : json(nullptr);
    json ips = json::array();
    for (const auto& a : p.allowed_ips) ips.push_back(a.str());
    jp["allowed_ips"] = std::move(ips);
    jp["latest_handshake"] = p.last_handshake_sec;  // unix seconds, 0 = never
    jp["latest_handshake_age"] = p.last_handshake_sec ? json(now_unix - p.last_handshake_sec) : json(nullptr);
    jp["rx_bytes"] = p.rx_bytes;
    jp["tx_bytes"] = p.tx_bytes;
    jp["persistent_keepalive"] = p.persistent_keepalive;
    jp["preshared_key"] = !p.preshared_key.is_zero();  // whether one is set; never the key
    peers.push_back(std::move(jp));
  }
  j["peers"] = std::move(peers);
  json c = json::object();
  for (int i = 0; i < static_cast<int>(device::Counter::kCount); ++i) {
    auto id = static_cast<device::Counter>(i);
    c[device::counter_name(id)] = counters.get(id);
  }
  j["counters"] = std::move(c);
  return j;
}

std::string format_status_text(const nlohmann::json& s) {
  std::ostringstream o;
  o << "interface: " << s.value("interface", "") << "\n";
  o << "  public key: " << s.value("public_key", "(none)") << "\n";
  o << "  listening port: " << s.value("listen_port", 0) << "\n";
  o << "  mode: " << s.value("mode", "") << "\n";
  if (int t = s.value("io_threads", 0); t > 0) {
    bool xdp = s.value("mode", "") == "xdp";
    o << "  io threads: " << (t == 1 ? (xdp ? "1 (TUN, UDP, AF_XDP)" : "1 (TUN and UDP)") : "2")
      << " per worker\n";
  }
  if (s.contains("worker") && s["worker"].is_array()) {
    // rx/tx packets per worker: how the load spreads.
    o << "  workers: " << s["worker"].size();
    const char* sep = " (rx/tx packets: ";
    for (const auto& w : s["worker"]) {
      o << sep << w.value("rx_packets", uint64_t{0}) << "/" << w.value("tx_packets", uint64_t{0});
      sep = ", ";
    }
    o << (s["worker"].empty() ? "" : ")") << "\n";
  }
  if (s.contains("aead")) {
    o << "  data aead: " << s.value("aead", "");
    if (uint64_t f = s.value("aead_fallbacks", uint64_t{0}); f > 0)
      o << " (" << f << " messages handed to libsodium)";
    o << "\n";
  }
  if (s.contains("xdp") && s["xdp"].is_object()) {
    const auto& x = s["xdp"];
    o << "  xdp: nic " << x.value("nic", "") << ", " << x.value("attach_mode", "") << ", zerocopy "
      << (x.value("zerocopy", false) ? "on" : "off") << ", queues " << x.value("queues", 0) << "\n";
    if (!s.value("xdp_attached", true))
      o << "  xdp program: DETACHED from " << x.value("nic", "")
        << " by someone else; received data takes the kernel UDP socket (down and up again to restore)\n";
  }
  const json peers = s.value("peers", json::array());
  for (const auto& p : peers) {
    o << "\npeer: " << p.value("public_key", "") << "\n";
    if (p["endpoint"].is_string()) o << "  endpoint: " << p["endpoint"].get<std::string>() << "\n";
    o << "  allowed ips: ";
    bool first = true;
    for (const auto& a : p["allowed_ips"]) {
      o << (first ? "" : ", ") << a.get<std::string>();
      first = false;
    }
    o << (first ? "(none)" : "") << "\n";
    if (p["latest_handshake_age"].is_number())
      o << "  latest handshake: " << p["latest_handshake_age"].get<int64_t>() << " seconds ago\n";
    o << "  transfer: " << p.value("rx_bytes", 0ULL) << " B received, " << p.value("tx_bytes", 0ULL)
      << " B sent\n";
    if (p.value("persistent_keepalive", 0) > 0)
      o << "  persistent keepalive: every " << p.value("persistent_keepalive", 0) << " seconds\n";
  }
  o << "\ncounters:\n";
  const json counters = s.value("counters", json::object());  // items() needs a live object
  for (const auto& [k, v] : counters.items())
    if (v.get<uint64_t>() != 0) o << "  " << k << ": " << v.get<uint64_t>() << "\n";
  return o.str();
}

}  // namespace xsktun::cli
