#include "netns/netns.h"

#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/names.h"

namespace kmesh::netns {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// /run/netns must be a shared mount point so that namespace bind mounts made here are seen by every
// mount namespace (what `ip netns add` does, so both tools interoperate).
void PrepareNetnsDir() {
  if (mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) ThrowErrno(std::string("mkdir ") + kNetnsDir);
  if (mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
  if (errno != EINVAL) ThrowErrno(std::string("make ") + kNetnsDir + " a shared mount");
  if (mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
    ThrowErrno(std::string("bind-mount ") + kNetnsDir);
  }
  if (mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    ThrowErrno(std::string("make ") + kNetnsDir + " a shared mount");
  }
}

void Remove(const std::string& path) {
  umount2(path.c_str(), MNT_DETACH);
  unlink(path.c_str());
}

}  // namespace

NetnsRef NetnsRef::Resolve(const std::string& s) {
  if (s.empty()) throw Error("network namespace: empty name");
  const std::string path = s[0] == '/' ? s : std::string(kNetnsDir) + "/" + s;
  if (!Exists(path)) {
    throw Error("network namespace " + s + " not found (looked for " + path +
                "; `ip netns list` shows the named ones)");
  }
  return NetnsRef(path);
}

NetnsRef NetnsRef::OfPid(int pid) { return Resolve("/proc/" + std::to_string(pid) + "/ns/net"); }

NetnsRef NetnsRef::Self() { return NetnsRef("/proc/self/ns/net"); }

std::string NetnsRef::name() const {
  const std::string dir = std::string(kNetnsDir) + "/";
  if (path_.compare(0, dir.size(), dir) == 0) return path_.substr(dir.size());
  if (path_.compare(0, 15, "/var/run/netns/") == 0) return path_.substr(15);
  return "";
}

unsigned long NetnsRef::inode() const {
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0) ThrowErrno("stat " + path_);
  return st.st_ino;
}

Netns Netns::Create(const std::string& label) {
  PrepareNetnsDir();
  const std::string name = UniqueName(label);
  const std::string path = std::string(kNetnsDir) + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL, 0);
  if (fd < 0) ThrowErrno("create " + path);
  close(fd);
  // unshare() on a throwaway thread: the new namespace is pinned by the bind mount, the thread ends.
  int err = 0;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) err = errno;
  });
  t.join();
  if (err != 0) {
    Remove(path);
    ThrowErrno("create network namespace " + name, err);
  }
  return Netns(name);
}

Netns::~Netns() {
  if (!name_.empty()) Remove(path());
}

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    if (!name_.empty()) Remove(path());
    name_ = std::exchange(other.name_, "");
  }
  return *this;
}

std::vector<std::string> SweepStale() {
  std::vector<std::string> removed;
  DIR* dir = opendir(kNetnsDir);
  if (dir == nullptr) return removed;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    const pid_t owner = OwnerPid(name);
    if (owner > 0 && ProcessGone(owner)) {
      Remove(std::string(kNetnsDir) + "/" + name);
      removed.push_back(name);
    }
  }
  closedir(dir);
  return removed;
}

void EnterOnThisThread(const NetnsRef& ns) {
  int fd = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno("open network namespace " + ns.path());
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) ThrowErrno("enter network namespace " + ns.path(), err);
}

}  // namespace kmesh::netns
