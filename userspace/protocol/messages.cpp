#include "xsktun/protocol/messages.h"

namespace xsktun::proto {

MessageType classify(const uint8_t* buf, size_t len) {
  if (len < sizeof(MessageHeader)) return kMessageInvalid;
  // Reserved bytes must be zero (whitepaper 5.4): a cheap first filter for junk.
  if (buf[1] | buf[2] | buf[3]) return kMessageInvalid;
  switch (buf[0]) {
    case kMessageHandshakeInitiation:
      return len == sizeof(MessageInitiation) ? kMessageHandshakeInitiation : kMessageInvalid;
    case kMessageHandshakeResponse:
      return len == sizeof(MessageResponse) ? kMessageHandshakeResponse : kMessageInvalid;
    case kMessageHandshakeCookie:
      return len == sizeof(MessageCookieReply) ? kMessageHandshakeCookie : kMessageInvalid;
    case kMessageData: return len >= kMinDataLen ? kMessageData : kMessageInvalid;
    default: return kMessageInvalid;
  }
}

}  // namespace xsktun::proto
