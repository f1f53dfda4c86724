// Two (or more) full devices in one process over the in-memory TUN/UDP fakes, with a fake
// clock: the whole protocol and data path without root or real sockets.
#pragma once

#include <arpa/inet.h>

#include <memory>
#include <string>
#include <vector>

#include "xsktun/device/device.h"
#include "xsktun/io/fakes.h"
#include "xsktun/protocol/crypto.h"

namespace xsktun::testing {

struct FakeClock : device::Clock {
  proto::Nanos t = 1000 * proto::kSecond;
  proto::Nanos now() const override { return t; }
  timespec wall() const override { return timespec{1'700'000'000 + t / proto::kSecond, t % proto::kSecond}; }
  void advance(proto::Nanos d) { t += d; }
};

// IPv4 packet src -> dst carrying payload (UDP-ish protocol 17, checksum not checked by anyone).
inline std::vector<uint8_t> ipv4_packet(const char* src, const char* dst, const std::string& payload) {
  std::vector<uint8_t> p(20 + payload.size());
  p[0] = 0x45;
  uint16_t total = htons(static_cast<uint16_t>(p.size()));
  std::memcpy(&p[2], &total, 2);
  p[8] = 64;
  p[9] = 17;
  inet_pton(AF_INET, src, &p[12]);
  inet_pton(AF_INET, dst, &p[16]);
  std::memcpy(&p[20], payload.data(), payload.size());
  return p;
}

inline std::vector<uint8_t> ipv6_packet(const char* src, const char* dst, const std::string& payload) {
  std::vector<uint8_t> p(40 + payload.size());
  p[0] = 0x60;
  uint16_t plen = htons(static_cast<uint16_t>(payload.size()));
  std::memcpy(&p[4], &plen, 2);
  p[6] = 17;
  p[7] = 64;
  inet_pton(AF_INET6, src, &p[8]);
  inet_pton(AF_INET6, dst, &p[24]);
  std::memcpy(&p[40], payload.data(), payload.size());
  return p;
}

inline std::string payload_of(const std::vector<uint8_t>& pkt) {
  size_t off = (pkt[0] >> 4) == 6 ? 40 : 20;
  return std::string(pkt.begin() + static_cast<long>(off), pkt.end());
}

struct Node {
  io::FakeTun tun;
  std::unique_ptr<io::FakeUdp> udp;
  std::unique_ptr<device::Device> dev;
  SecretKey priv;
  Key pub{};

  Node(io::FakeNetwork& net, const char* addr, uint16_t port, const device::Clock& clock) {
    udp = net.attach(*IpAddr::parse(addr), port);
    dev = std::make_unique<device::Device>(tun, *udp, clock);
    proto::crypto::init();
    proto::crypto::generate_private(priv);
    proto::crypto::public_from_private(pub.data(), priv);
    control::ConfigChange c;
    c.private_key = priv;
    std::string err;
    dev->apply(c, &err);
  }
  uint64_t counter(device::Counter c) const { return dev->counters().get(c); }
};

// A distinct public key per number (any 32 bytes are a valid X25519 key to the device).
inline Key key_of(uint32_t n) {
  Key k{};
  for (int i = 0; i < 4; ++i) k[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  k[31] = 0x40;
  return k;
}

// Adds `other` as a peer of `self` with the given allowed IPs and (optionally) its endpoint.
inline int add_peer(Node& self, const Node& other, std::vector<std::string> allowed,
                    bool with_endpoint = true, const SecretKey* psk = nullptr) {
  control::ConfigChange c;
  control::PeerChange p;
  p.public_key = other.pub;
  if (with_endpoint) p.endpoint = other.udp->local();
  if (psk) p.preshared_key = *psk;
  for (auto& a : allowed) p.allowed_ips.push_back(*Prefix::parse(a));
  c.peers.push_back(p);
  std::string err;
  return self.dev->apply(c, &err);
}

// Removes `other` from the peers of `self`.
inline int remove_peer(Node& self, const Node& other) {
  control::ConfigChange c;
  control::PeerChange p;
  p.public_key = other.pub;
  p.remove = true;
  c.peers.push_back(p);
  std::string err;
  return self.dev->apply(c, &err);
}

// Moves packets until nothing moves: TUN reads, UDP receives and queued handshakes on every node.
inline void pump(std::vector<Node*> nodes, int max_rounds = 50) {
  constexpr size_t kCap = 2048;
  static thread_local std::vector<uint8_t> storage(64 * kCap);
  std::vector<io::PacketBuf> bufs(64);
  for (int round = 0; round < max_rounds; ++round) {
    bool moved = false;
    for (Node* n : nodes) {
      for (size_t i = 0; i < bufs.size(); ++i)
        bufs[i] = io::PacketBuf{
            storage.data() + i * kCap + proto::kDataHeaderLen, 0, kCap - proto::kDataHeaderLen, {}};
      int k = n->tun.read_batch(bufs);
      if (k > 0) {
        n->dev->process_tun(std::span(bufs.data(), static_cast<size_t>(k)));
        moved = true;
      }
      for (size_t i = 0; i < bufs.size(); ++i)
        bufs[i] = io::PacketBuf{storage.data() + i * kCap, 0, kCap, {}};
      k = n->udp->recv_batch(bufs);
      if (k > 0) {
        n->dev->process_udp(std::span(bufs.data(), static_cast<size_t>(k)));
        moved = true;
      }
      if (n->dev->process_handshakes() > 0) moved = true;
    }
    if (!moved) return;
  }
}

// Receives every pending datagram of n without handling the queued handshakes.
inline void receive_only(Node& n) {
  constexpr size_t kCap = 2048;
  std::vector<uint8_t> storage(64 * kCap);
  std::vector<io::PacketBuf> bufs(64);
  for (;;) {
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = io::PacketBuf{storage.data() + i * kCap, 0, kCap, {}};
    int k = n.udp->recv_batch(bufs);
    if (k <= 0) return;
    n.dev->process_udp(std::span(bufs.data(), static_cast<size_t>(k)));
  }
}

}  // namespace xsktun::testing
