#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace kmesh {

void ThrowErrno(const std::string& what, int err) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES) msg += " (needs root: CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN)";
  throw Error(msg);
}

void ThrowErrno(const std::string& what) { ThrowErrno(what, errno); }

}  // namespace kmesh
