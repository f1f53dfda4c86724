// xsktun-flood: a handshake/junk flood generator for the DoS tests (tests/netns/flood.sh).
//
// It sends WireGuard-shaped datagrams (whitepaper section 5.4 layouts) to one UDP endpoint as fast
// as one thread can, from one connected socket per --sources address, round robin, with sendmmsg
// batches of 64 prebuilt packets:
//   junk       type 4 transport data, random receiver index, counter and "ciphertext", 32..200 bytes
//              (what the data path must drop cheaply: unknown index);
//   init       type 1 initiation, 148 bytes, random after the header, so mac1 is wrong (dropped
//              after one keyed BLAKE2s);
//   init-mac1  type 1 initiation with a VALID mac1 for --peer-pub (mac1 = MAC(HASH("mac1----" ||
//              S_pub), msg[0:116]), whitepaper 5.4.4): a responder not under load must spend an X25519
//              on each, so only the cookie mechanism (5.3, 5.4.7) or a rate limit protects it.
// The cookie replies it provokes are never read (they pile up in the socket's receive buffer and
// the kernel drops the rest): this flooder models an attacker that does not answer cookies.
//
// Errors such as ENOBUFS or ECONNREFUSED (an ICMP port unreachable reported on a connected
// socket) are counted, not fatal. SIGTERM/SIGINT end the run early; the JSON summary
// {"kind","sent","errors","seconds","pps",...} is written either way.
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "xsktun/common/ip.h"
#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/messages.h"

namespace {

using namespace xsktun;
using namespace xsktun::proto;

constexpr size_t kBatch = 64;
constexpr size_t kPoolBatches = 64;  // 4096 distinct packets, cycled
constexpr size_t kMaxPacket = 200;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

double now_sec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One packet of the pool in buf; returns its length.
size_t make_packet(const std::string& kind, const uint8_t mac1_key[kKeyLen], uint8_t* buf) {
  if (kind == "junk") {
    size_t len = kMinDataLen + crypto::random_u32() % (kMaxPacket - kMinDataLen + 1);
    crypto::random_bytes(buf, len);
    std::memset(buf, 0, 4);
    buf[0] = kMessageData;
    return len;
  }
  MessageInitiation m;
  crypto::random_bytes(reinterpret_cast<uint8_t*>(&m), sizeof m);
  std::memset(&m.header, 0, sizeof m.header);
  m.header.type = kMessageHandshakeInitiation;
  std::memset(m.macs.mac2, 0, kMacLen);  // no cookie: what a first initiation carries
  if (kind == "init-mac1") {
    crypto::mac(m.macs.mac1, crypto::Bytes(mac1_key, kKeyLen),
                crypto::Bytes(reinterpret_cast<const uint8_t*>(&m), mac1_offset<MessageInitiation>()));
  }
  std::memcpy(buf, &m, sizeof m);
  return sizeof m;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// A socket bound to src (any address when empty) and connected to dst; -1 after printing why.
int open_socket(const Endpoint& dst, const std::string& src) {
  int fd = socket(dst.addr.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    return -1;
  }
  // The replies we provoke are never read: keep what they can pin down small.
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  sockaddr_storage ss{};
  if (!src.empty()) {
    auto a = IpAddr::parse(src);
    if (!a || a->family != dst.addr.family) {
      fprintf(stderr, "xsktun-flood: bad source address '%s' (must be of the --dst family)\n", src.c_str());
      close(fd);
      return -1;
    }
    socklen_t sl = Endpoint{*a, 0}.to_sockaddr(&ss);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) != 0) {
      fprintf(stderr, "xsktun-flood: bind %s: %s\n", src.c_str(), strerror(errno));
      close(fd);
      return -1;
    }
  }
  socklen_t dl = dst.to_sockaddr(&ss);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), dl) != 0) {
    fprintf(stderr, "xsktun-flood: connect %s: %s\n", dst.str().c_str(), strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

struct Result {
  uint64_t sent = 0;
  uint64_t errors = 0;
  double seconds = 0;
};

// The send loop: batch b of the pool goes out on socket (b mod sockets), until the deadline or a
// signal. A partial sendmmsg is not retried: the next batch follows (these are floods).
Result run(const std::vector<int>& fds, std::vector<mmsghdr>& msgs, double seconds) {
  Result r;
  double t0 = now_sec();
  double deadline = t0 + seconds;
  size_t b = 0, fi = 0;
  uint64_t iter = 0;
  while (!g_stop) {
    // The clock is a vDSO call, but once per 16 batches is plenty.
    if ((iter++ & 15) == 0 && now_sec() >= deadline) break;
    int n = sendmmsg(fds[fi], &msgs[b * kBatch], kBatch, 0);
    if (n < 0) {
      if (errno != EINTR) ++r.errors;  // ENOBUFS, ECONNREFUSED, EAGAIN...: keep going
    } else {
      r.sent += static_cast<uint64_t>(n);
    }
    b = (b + 1) % kPoolBatches;
    fi = (fi + 1) % fds.size();
  }
  r.seconds = now_sec() - t0;
  return r;
}

bool write_json(const std::string& path, const std::string& kind, const Result& r, size_t sources,
                const std::string& dst) {
  FILE* f = fopen(path.c_str(), "w");
  if (!f) {
    fprintf(stderr, "xsktun-flood: %s: %s\n", path.c_str(), strerror(errno));
    return false;
  }
  double pps = r.seconds > 0 ? static_cast<double>(r.sent) / r.seconds : 0.0;
  fprintf(f,
          "{\"kind\": \"%s\", \"sent\": %llu, \"errors\": %llu, \"seconds\": %.3f, \"pps\": %.0f, "
          "\"sources\": %zu, \"dst\": \"%s\"}\n",
          kind.c_str(), static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.errors),
          r.seconds, pps, sources, dst.c_str());
  return fclose(f) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"xsktun-flood: flood a WireGuard UDP port with junk data or handshake initiations"};
  std::string dst_s, kind = "init-mac1", peer_pub, sources_s, out;
  double seconds = 10;
  app.add_option("--dst", dst_s, "Target IP:PORT ([v6]:PORT)")->required();
  app.add_option("--kind", kind, "junk | init (random mac1) | init-mac1 (valid mac1 for --peer-pub)")
      ->check(CLI::IsMember({"junk", "init", "init-mac1"}))
      ->capture_default_str();
  app.add_option("--peer-pub", peer_pub, "Responder's public key (base64), for --kind init-mac1");
  app.add_option("--sources", sources_s, "Comma-separated local source addresses, one socket each");
  app.add_option("--seconds", seconds, "How long to flood (SIGTERM/SIGINT stop earlier)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--out", out, "Write the JSON summary here");
  CLI11_PARSE(app, argc, argv);

  if (!crypto::init()) {
    fprintf(stderr, "xsktun-flood: libsodium init failed\n");
    return 1;
  }
  auto dst = Endpoint::parse(dst_s);
  if (!dst) {
    fprintf(stderr, "xsktun-flood: bad --dst '%s'\n", dst_s.c_str());
    return 2;
  }
  uint8_t mac1_key[kKeyLen]{};
  if (kind == "init-mac1") {
    Key pub{};
    size_t len = 0;
    if (peer_pub.empty() ||
        sodium_base642bin(pub.data(), pub.size(), peer_pub.data(), peer_pub.size(), nullptr, &len, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len != kKeyLen) {
      fprintf(stderr, "xsktun-flood: --kind init-mac1 needs --peer-pub, a base64 32-byte public key\n");
      return 2;
    }
    static const char kLabelMac1[] = "mac1----";
    crypto::hash(mac1_key, crypto::Bytes(reinterpret_cast<const uint8_t*>(kLabelMac1), 8),
                 crypto::Bytes(pub));
  }

  std::vector<std::string> srcs = split_commas(sources_s);
  if (srcs.empty()) srcs.push_back("");
  std::vector<int> fds;
  for (const auto& s : srcs) {
    int fd = open_socket(*dst, s);
    if (fd < 0) return 1;
    fds.push_back(fd);
  }

  // The pool: packets, their iovecs and the mmsghdrs of each 64-packet batch, all built up front.
  const size_t total = kBatch * kPoolBatches;
  std::vector<uint8_t> pool(total * kMaxPacket);
  std::vector<iovec> iov(total);
  std::vector<mmsghdr> msgs(total);
  for (size_t i = 0; i < total; ++i) {
    uint8_t* p = &pool[i * kMaxPacket];
    iov[i] = iovec{p, make_packet(kind, mac1_key, p)};
    msgs[i] = mmsghdr{};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  sodium_memzero(mac1_key, sizeof mac1_key);

  struct sigaction sa {};
  sa.sa_handler = on_signal;  // no SA_RESTART: a blocked sendmmsg returns at once
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  Result r = run(fds, msgs, seconds);
  for (int fd : fds) close(fd);
  double pps = r.seconds > 0 ? static_cast<double>(r.sent) / r.seconds : 0.0;
  printf("xsktun-flood: kind %s, %zu source(s), sent %llu in %.2f s (%.0f pps), %llu errors\n", kind.c_str(),
         fds.size(), static_cast<unsigned long long>(r.sent), r.seconds, pps,
         static_cast<unsigned long long>(r.errors));
  if (!out.empty() && !write_json(out, kind, r, fds.size(), dst->str())) return 1;
  return 0;
}
