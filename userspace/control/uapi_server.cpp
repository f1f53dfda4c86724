#include "xsktun/control/uapi_server.h"

#include <cerrno>
#include <exception>
#include <memory>

namespace xsktun::control {

// One connection's command state (wireguard-go device/uapi.go IpcHandle): "get=1" then a blank
// line, or "set=1", key=value lines and a blank line; anything else hangs up without a reply.
class UapiServer::Session : public LineSession {
 public:
  explicit Session(UapiServer& s) : server_(s) {}

  bool line(std::string_view line, std::string* out) override {
    switch (state_) {
      case State::kCommand:
        if (line == "get=1") {
          state_ = State::kGet;
        } else if (line == "set=1") {
          state_ = State::kSet;
          set_ =
              std::make_unique<UapiSetParser>(server_.max_peer_blocks_.load(), server_.max_prefixes_.load());
        } else {
          return false;  // wireguard-go: "invalid UAPI operation"
        }
        return true;
      case State::kGet:
        state_ = State::kCommand;
        if (!line.empty()) {  // wireguard-go: "trailing character in UAPI get"
          *out = format_uapi_errno(EINVAL);
          return false;
        }
        try {
          *out = format_uapi_get(server_.handler_.get());
        } catch (const std::exception&) {
          *out = format_uapi_errno(EIO);
        }
        return true;
      case State::kSet:
        if (line.empty()) {
          *out = format_uapi_errno(finish_set());
        } else {
          set_->line(line);  // an error is kept and answered at the blank line
        }
        return true;
    }
    return false;
  }

  std::string too_long() override { return format_uapi_errno(EMSGSIZE); }

 private:
  enum class State { kCommand, kGet, kSet };

  // A set is applied only when its blank line arrives: a client that disconnects mid-command
  // changes nothing.
  int finish_set() {
    state_ = State::kCommand;
    auto parsed = set_->finish();
    set_.reset();
    if (auto* e = std::get_if<UapiError>(&parsed)) return e->errno_value;
    try {
      return server_.handler_.set(std::get<ConfigChange>(parsed)).errno_value;
    } catch (const std::exception&) {
      return EIO;
    }
  }

  UapiServer& server_;
  State state_ = State::kCommand;
  std::unique_ptr<UapiSetParser> set_;  // the set being received, parsed line by line
};

UapiServer::UapiServer(UapiHandler& handler)
    : handler_(handler), server_([this] { return std::make_unique<Session>(*this); }, kMaxLine) {}

std::string UapiServer::default_path(std::string_view ifname) {
  return "/var/run/wireguard/" + std::string(ifname) + ".sock";
}

bool UapiServer::start(const std::string& path, std::string* error) {
  std::string scratch;
  return server_.start(path, error ? error : &scratch);
}

}  // namespace xsktun::control
