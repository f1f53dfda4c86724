// Fuzz: the outer message classifier, MAC check and every handshake consume function, with
// fixed identities (so the code reaches past mac1 when the fuzzer finds its way; it cannot
// forge MACs, but every early-exit path and length check is exercised).
#include <cstring>

#include "xsktun/protocol/cookie.h"
#include "xsktun/protocol/crypto.h"
#include "xsktun/protocol/noise.h"

using namespace xsktun;
using namespace xsktun::proto;

namespace {
struct State {
  StaticIdentity id;
  Handshake peer;
  CookieChecker checker;
  CookieMaker maker;
  State() {
    crypto::init();
    SecretKey k;
    for (int i = 0; i < 32; ++i) k.data()[i] = static_cast<uint8_t>(i + 1);
    id.set_private(k);
    peer.remote_static = id.public_key;  // talking to ourselves is fine for parsing
    peer.precompute(id);
    checker.set_public_key(id.public_key);
    maker.set_remote_public_key(id.public_key);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State s;
  Endpoint src{*IpAddr::parse("192.0.2.1"), 1};
  MessageType t = classify(data, size);
  s.checker.validate(data, size, src, 0);
  Handshake* found = nullptr;
  if (t == kMessageHandshakeInitiation) {
    MessageInitiation m;
    std::memcpy(&m, data, sizeof m);
    consume_initiation(
        m, s.id, [&](const Key&) { return &s.peer; }, 0, &found);
  } else if (t == kMessageHandshakeResponse) {
    MessageResponse m;
    std::memcpy(&m, data, sizeof m);
    s.peer.state = HandshakeState::kCreatedInitiation;
    s.peer.local_index = m.receiver_index;
    consume_response(m, s.id, s.peer);
  } else if (t == kMessageHandshakeCookie) {
    MessageCookieReply m;
    std::memcpy(&m, data, sizeof m);
    (void)s.maker.consume_reply(m, 0);
  }
  return 0;
}
