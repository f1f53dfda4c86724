#include "xsktun/cli/privileges.h"

#include <cap-ng.h>
#include <linux/capability.h>

namespace xsktun::cli {

bool drop_capabilities(bool xdp_mode, std::string* err) {
  capng_clear(CAPNG_SELECT_BOTH);
  auto both = static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET);
  int rc = capng_updatev(CAPNG_ADD, both, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, -1);
  if (rc == 0 && xdp_mode) rc = capng_updatev(CAPNG_ADD, both, CAP_BPF, CAP_SYS_ADMIN, -1);
  if (rc == 0) rc = capng_apply(CAPNG_SELECT_BOTH);
  if (rc != 0) {
    *err = "cannot drop capabilities (libcap-ng: " + std::to_string(rc) + ")";
    return false;
  }
  return true;
}

}  // namespace xsktun::cli
