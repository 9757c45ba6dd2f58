#include "e2e/lab/node_bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/mounts.h"
#include "base/names.h"

namespace kmesh::lab {
namespace {

bool IsBpffs(const std::string &path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

void MakeDir(const std::string &path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) ThrowErrno("mkdir " + path);
}

void Unmount(const std::string &path) {
  // MNT_DETACH: a pin fd held by a process we do not control must not keep the
  // folder mounted.
  umount2(path.c_str(), MNT_DETACH);
  rmdir(path.c_str());
}

std::string Basename(const std::string &path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string KmeshMapDir(const std::string &bpffs) { return bpffs + "/bpf_kmesh_workload/map"; }

NodeBpffs NodeBpffs::Mount(const std::string &parent, const std::string &label) {
  struct stat st {};
  if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error("bpffs for node " + label + ": parent folder " + parent +
                " does not exist (expected the lab's work folder)");
  }
  const std::string path = parent + "/" + UniqueName("bpffs-" + label);
  MakeDir(path);
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) {
    const int err = errno;
    rmdir(path.c_str());
    ThrowErrno("mount -t bpf at " + path + " (needs CAP_SYS_ADMIN in the machine's mount namespace)", err);
  }
  NodeBpffs fs(path);
  // Kmesh's daemon makes the pin folder before loading
  // (pkg/bpf/workload/xdp.go:45).
  MakeDir(path + "/bpf_kmesh_workload");
  MakeDir(fs.KmeshMapDir());
  return fs;
}

NodeBpffs::~NodeBpffs() {
  if (!path_.empty()) Unmount(path_);
}

NodeBpffs &NodeBpffs::operator=(NodeBpffs &&other) noexcept {
  if (this != &other) {
    if (!path_.empty()) Unmount(path_);
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

std::string NodeBpffs::KmeshMapDir() const { return lab::KmeshMapDir(path_); }

std::vector<std::string> SweepStaleBpffs() {
  std::vector<std::string> stale;
  for (const Mount &m : Mounts()) {
    if (m.fstype != "bpf") continue;
    const pid_t owner = OwnerPid(Basename(m.point));
    if (owner > 0 && ProcessGone(owner)) stale.push_back(m.point);
  }
  std::vector<std::string> removed;
  for (const std::string &point : stale) {
    Unmount(point);
    if (!IsBpffs(point)) removed.push_back(point);
  }
  return removed;
}

}  // namespace kmesh::lab
