// xsktun command line: up / down / show, plus the wireguard-go style invocation
// `xsktun [-f] IFNAME` that wg-quick uses for userspace implementations.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>

#include "xsktun/cli/daemon.h"

using namespace xsktun::cli;

namespace {

const char* env_or(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v && *v ? v : fallback;
}

// The option's words, as the help shows them: "{auto,socket,xdp}".
template <typename E>
std::string words(const std::map<std::string, E>& names) {
  std::string out;
  for (const auto& [word, value] : names) out += (out.empty() ? "{" : ",") + word;
  return out + "}";
}

// An enum-valued option: only its words are accepted (not the enum's numbers, which CLI11's
// CheckedTransformer would also take), each replaced by its value before CLI11 converts it.
template <typename E>
CLI::Option* add_choice(CLI::App* app, const std::string& name, E& value,
                        const std::map<std::string, E>& names, const std::string& help,
                        const char* default_word) {
  auto to_value = [&names](std::string& in) -> std::string {
    auto it = names.find(in);
    if (it == names.end()) return "'" + in + "' is not one of " + words(names);
    in = std::to_string(static_cast<int>(it->second));
    return {};
  };
  return app->add_option(name, value, help)
      ->transform(CLI::Validator(to_value, words(names)))
      ->default_str(default_word);
}

// wg-quick runs "$WG_QUICK_USERSPACE_IMPLEMENTATION IFNAME" (wireguard-go's interface).
// Returns 1 if it is one (options in *o), 0 if not, -1 if its environment is invalid.
int is_compat_invocation(int argc, char** argv, UpOptions* o) {
  std::string name;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-f" || a == "--foreground")
      o->foreground = true;
    else if (a == "-V" || a == "--version")
      return 0;
    else if (a.empty() || a[0] == '-' || !name.empty())
      return 0;
    else
      name = a;
  }
  static const char* const kCommands[] = {"up", "down", "show", "help"};
  for (const char* c : kCommands)
    if (name == c) return 0;
  if (name.empty()) return 0;
  o->ifname = name;
  std::string mode = env_or("XSKTUN_MODE", "auto");
  auto m = kDataModes.find(mode);
  if (m == kDataModes.end()) {
    std::cerr << "xsktun: XSKTUN_MODE: unknown mode '" << mode << "' " << words(kDataModes) << "\n";
    return -1;
  }
  o->mode = m->second;
  o->nic = env_or("XSKTUN_NIC", "");
  o->log_level = env_or("LOG_LEVEL", "info");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  UpOptions compat;
  if (int c = is_compat_invocation(argc, argv, &compat); c != 0) return c > 0 ? run_up(compat) : 2;

  CLI::App app{
      "xsktun: a WireGuard-compatible VPN data plane on XDP/AF_XDP, with a UDP socket mode.\n"
      "Configure it with wg(8) (UAPI socket /var/run/wireguard/IFNAME.sock) or a wg-style config file.\n"
      "wg-quick: WG_QUICK_USERSPACE_IMPLEMENTATION=xsktun wg-quick up IFNAME (mode from XSKTUN_MODE,\n"
      "NIC from XSKTUN_NIC). XSKTUN_AEAD=libsodium makes the data path use libsodium's AEAD instead of\n"
      "the default, RFC 8439 over OpenSSL's ChaCha20 and Poly1305 (same bytes; `show` says which)."};
  app.require_subcommand(1);
  // "0.5.0" from a release tarball, "0.5.0 (git 0123456789ab)" from a checkout.
  std::string version = std::string("xsktun ") + XSKTUN_VERSION;
  if (*XSKTUN_GIT_REV) version += std::string(" (git ") + XSKTUN_GIT_REV + ")";
  app.set_version_flag("-V,--version", version);

  UpOptions up;
  auto* cup = app.add_subcommand("up", "Create TUN interface IFNAME and run the tunnel daemon for it");
  cup->add_option("ifname", up.ifname, "Interface name (at most 15 characters)")->required();
  cup->add_option("-c,--config", up.config_file, "wg setconf-style file applied at start")
      ->check(CLI::ExistingFile);
  add_choice(cup, "--mode", up.mode, kDataModes,
             "Data plane: socket (UDP sockets with GSO/GRO), xdp (XDP + AF_XDP on --nic), auto (xdp on "
             "--nic unless "
             "AF_XDP there is copy-only and the NIC segments UDP itself; socket mode otherwise; the log "
             "says why)",
             "auto");
  cup->add_option("--nic", up.nic, "Underlay NIC for xdp mode (the one the peers are reached through)");
  add_choice(cup, "--xdp-mode", up.xdp_mode, kAttachModes,
             "XDP attach mode: native (driver), generic (SKB), auto (native, else generic)", "auto");
  cup->add_option(
         "--queues", up.queues,
         "Data-path workers, each with its own TUN queue and UDP side (socket mode: a socket of an "
         "SO_REUSEPORT group; XDP mode: the AF_XDP socket of NIC queue i, or beyond the NIC's queues a "
         "transmit-only socket sharing queue i mod queues). 0 = the NIC's RX queues (XDP mode) or the CPUs "
         "(socket "
         "mode), at most the CPUs this process may run on")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  add_choice(cup, "--zerocopy", up.zerocopy, kZeroCopyModes,
             "AF_XDP zero-copy: auto (try, fall back to copy), on (required), off", "auto");
  add_choice(
      cup, "--io-threads", up.io_threads, kIoThreads,
      "Per worker: 1 = one thread serves its TUN queue, its UDP side and (XDP mode) its AF_XDP sockets "
      "(fewer thread "
      "wakeups, best on 1-2 CPUs), 2 = a thread each (both directions in parallel), auto = 1 if this "
      "process may run on at most 2 CPUs, else 2",
      "auto");
  cup->add_flag(
      "--force", up.force,
      "Replace the XDP program and pins of another xsktun that is still running on the NIC (what a dead "
      "one left behind is taken over without it)");
  cup->add_option("--mtu", up.mtu, "Inner MTU of the TUN interface")
      ->check(CLI::Range(576, 9000))
      ->capture_default_str();
  cup->add_flag("-f,--foreground", up.foreground, "Stay in the foreground instead of daemonizing");
  cup->add_option("--log-level", up.log_level, "error, warn, info or debug")
      ->check(CLI::IsMember({"silent", "error", "warn", "info", "debug"}))
      ->capture_default_str();
  cup->add_option("--log-file", up.log_file, "Append daemon logs to this file (default: none when detached)");
  cup->add_option(
      "--user", up.user,
      "After setup, run as this user (e.g. nobody) with only the capabilities the daemon still uses "
      "(see xsktun(8), SECURITY)");
  cup->add_option(
      "--metrics-listen", up.metrics_listen,
      "Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default; a bare PORT or :PORT binds "
      "127.0.0.1; give 0.0.0.0:PORT or [::]:PORT to expose it)");

  std::string down_if;
  auto* cdown =
      app.add_subcommand("down", "Stop the daemon of IFNAME: removes the TUN, sockets and pid file");
  cdown->add_option("ifname", down_if, "Interface name")->required();

  std::string show_if;
  bool show_json = false;
  auto* cshow =
      app.add_subcommand("show", "Show interfaces, peers and counters (all interfaces without IFNAME)");
  cshow->add_option("ifname", show_if, "Interface name");
  cshow->add_flag("--json", show_json, "Machine-readable JSON (keys are a stable contract); = --format json");
  std::string show_format = "text";
  cshow
      ->add_option(
          "--format", show_format,
          "text, json, or prometheus (text exposition format: counters, XDP verdicts, per-peer bytes and "
          "latest handshake)")
      ->check(CLI::IsMember({"text", "json", "prometheus"}))
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (*cup) return run_up(up);
  if (*cdown) return run_down(down_if);
  if (*cshow) return run_show(show_if, show_json ? "json" : show_format);
  return 1;
}
