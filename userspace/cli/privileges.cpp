#include "xsktun/cli/privileges.h"

#include <cap-ng.h>
#include <linux/capability.h>
#include <pwd.h>

namespace xsktun::cli {

bool user_exists(const std::string& user) { return getpwnam(user.c_str()) != nullptr; }

bool drop_privileges(bool xdp_mode, const std::string& user, std::string* err) {
  capng_clear(CAPNG_SELECT_BOTH);
  auto all = static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET);
  int rc = capng_updatev(CAPNG_ADD, all, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, -1);
  if (rc == 0 && xdp_mode) rc = capng_updatev(CAPNG_ADD, all, CAP_BPF, CAP_SYS_ADMIN, -1);
  if (rc == 0 && !user.empty()) rc = capng_update(CAPNG_ADD, all, CAP_DAC_OVERRIDE);
  if (rc != 0) {
    *err = "cannot prepare the capability set (libcap-ng: " + std::to_string(rc) + ")";
    return false;
  }
  if (user.empty()) {
    rc = capng_apply(CAPNG_SELECT_BOTH);
  } else {
    const passwd* pw = getpwnam(user.c_str());
    if (!pw) {
      *err = "no such user '" + user + "'";
      return false;
    }
    // The bounding set first (capng_change_id applies only effective and permitted), then gid
    // and uid, keeping the set above (libcap-ng sets PR_SET_KEEPCAPS around the change).
    rc = capng_apply(CAPNG_SELECT_BOUNDS);
    if (rc == 0)
      rc = capng_change_id(static_cast<int>(pw->pw_uid), static_cast<int>(pw->pw_gid), CAPNG_DROP_SUPP_GRP);
  }
  if (rc != 0) {
    *err = "cannot drop privileges" + (user.empty() ? std::string() : " to user " + user) +
           " (libcap-ng: " + std::to_string(rc) + ")";
    return false;
  }
  return true;
}

}  // namespace xsktun::cli
