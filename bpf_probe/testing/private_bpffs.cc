#include "bpf_probe/testing/private_bpffs.h"

#include <cerrno>
#include <exception>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "base/error.h"

namespace kmesh::bpf_probe::testing {

void WithPrivateBpffs(const std::string& dir, const std::function<void()>& fn) {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      if (unshare(CLONE_NEWNS) != 0) kmesh::ThrowErrno("unshare(CLONE_NEWNS)");
      if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) kmesh::ThrowErrno("make / private");
      if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) kmesh::ThrowErrno("mkdir " + dir);
      if (mount("bpf", dir.c_str(), "bpf", 0, nullptr) != 0) kmesh::ThrowErrno("mount bpffs at " + dir);
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  rmdir(dir.c_str());
  if (error) std::rethrow_exception(error);
}

}  // namespace kmesh::bpf_probe::testing
