// Two protocol-only peers for the handshake / data tests: identities, the per-peer handshake,
// cookie state and keypairs, with no I/O.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "xsktun/protocol/cookie.h"
#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/keypair.h"
#include "xsktun/protocol/noise.h"

namespace xsktun::testing {

using namespace xsktun::proto;

struct TestPeer {
  StaticIdentity id;
  Handshake hs;           // our handshake with the other side
  CookieMaker maker;      // MACs for messages we send to the other side
  CookieChecker checker;  // checks messages sent to us
  Keypairs keypairs;
  uint32_t index;

  explicit TestPeer(uint32_t idx) : index(idx) {
    crypto::init();
    SecretKey priv;
    crypto::generate_private(priv);
    id.set_private(priv);
    checker.set_public_key(id.public_key);
  }
  void pair_with(const TestPeer& other, const SecretKey* psk = nullptr) {
    hs.remote_static = other.id.public_key;
    if (psk) hs.preshared_key = *psk;
    hs.precompute(id);
    maker.set_remote_public_key(other.id.public_key);
  }
  std::shared_ptr<Keypair> install(Nanos now) {
    SessionKeys keys;
    if (!derive_session(hs, &keys)) return nullptr;
    auto kp = std::make_shared<Keypair>(keys, now);
    keypairs.add(kp);
    return kp;
  }
};

inline void timestamp_at(uint8_t out[kTimestampLen], int64_t secs) { tai64n(out, secs, 0); }

template <typename Msg>
std::vector<uint8_t> bytes_of(const Msg& m) {
  const auto* p = reinterpret_cast<const uint8_t*>(&m);
  return std::vector<uint8_t>(p, p + sizeof m);
}
template <typename Msg>
Msg msg_from(const std::vector<uint8_t>& b) {
  Msg m;
  std::memcpy(&m, b.data(), sizeof m);
  return m;
}

}  // namespace xsktun::testing
