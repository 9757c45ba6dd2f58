#include "e2e/lab/node_cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "netns/netns.h"

namespace kmesh::lab {
namespace {

using Clock = std::chrono::steady_clock;

// A directory that exists on every Linux machine, mounted over only inside the throwaway namespace.
constexpr const char* kPrivateMountPoint = "/tmp";

// Runs fn(root_fd) on a fresh thread that has its own mount namespace with cgroup2 mounted privately;
// nothing of it is visible to, or left for, anyone else. fds opened under root_fd stay valid afterwards.
void WithCgroup2Root(const std::function<void(int root_fd)>& fn) {
  netns::OnFreshThread([&] {
    if (unshare(CLONE_NEWNS) != 0) ThrowErrno("unshare(CLONE_NEWNS) for a private cgroup2 mount");
    if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ThrowErrno("make / private");
    if (mount("cgroup2", kPrivateMountPoint, "cgroup2", 0, nullptr) != 0) {
      ThrowErrno(
          "mount cgroup2 (the kernel needs cgroup v2 for Kmesh's sockops program; "
          "`grep cgroup2 /proc/filesystems` should list it)");
    }
    UniqueFd root(open(kPrivateMountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) ThrowErrno("open the cgroup2 root");
    fn(root.get());
  });
}

std::string ReadAt(int dir_fd, const char* file) {
  UniqueFd fd(openat(dir_fd, file, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) ThrowErrno(std::string("open ") + file + " of a node cgroup");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno(std::string("read ") + file + " of a node cgroup");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::vector<pid_t> PidsAt(int dir_fd) {
  std::vector<pid_t> pids;
  std::istringstream in(ReadAt(dir_fd, "cgroup.procs"));
  long pid = 0;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

bool PopulatedAt(int dir_fd) {
  std::istringstream in(ReadAt(dir_fd, "cgroup.events"));
  std::string key;
  int value = 0;
  while (in >> key >> value) {
    if (key == "populated") return value != 0;
  }
  throw Error("cgroup.events of a node cgroup has no \"populated\" line");
}

// cgroup.kill (Linux >= 5.14) kills every process inside at once, also ones forking meanwhile; older
// kernels get SIGKILL per pid, repeated until the cgroup is empty.
void KillAllAt(int dir_fd, const std::string& name) {
  const auto deadline = Clock::now() + defaults::CgroupDrained();
  UniqueFd kill_fd(openat(dir_fd, "cgroup.kill", O_WRONLY | O_CLOEXEC));
  if (kill_fd.valid() && write(kill_fd.get(), "1", 1) != 1) ThrowErrno("write cgroup.kill of " + name);
  while (PopulatedAt(dir_fd)) {
    if (Clock::now() > deadline) {
      std::string pids;
      for (pid_t p : PidsAt(dir_fd)) pids += " " + std::to_string(p);
      throw Error("node cgroup " + name + " still holds processes" + pids + " " +
                  std::to_string(defaults::CgroupDrained().count()) +
                  " ms after they were killed (ps -o pid,stat,cmd -p <pid> shows why; a process in D "
                  "state cannot die; raise KMESH_E2E_CGROUP_DRAINED_MS on a slow machine)");
    }
    if (!kill_fd.valid()) {
      for (pid_t p : PidsAt(dir_fd)) kill(p, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

NodeCgroup NodeCgroup::Create(const std::string& label) {
  const std::string name = UniqueName(label);
  UniqueFd root, dir, procs;
  WithCgroup2Root([&](int root_fd) {
    if (mkdirat(root_fd, name.c_str(), 0755) != 0) ThrowErrno("create node cgroup " + name);
    root = UniqueFd(dup(root_fd));
    dir = UniqueFd(openat(root_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid()) procs = UniqueFd(openat(dir.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC));
    if (!root.valid() || !dir.valid() || !procs.valid()) {
      int e = errno;
      unlinkat(root_fd, name.c_str(), AT_REMOVEDIR);
      ThrowErrno("open node cgroup " + name, e);
    }
  });
  return NodeCgroup(name, std::move(root), std::move(dir), std::move(procs));
}

NodeCgroup::~NodeCgroup() { Remove(); }

NodeCgroup& NodeCgroup::operator=(NodeCgroup&& other) noexcept {
  if (this != &other) {
    Remove();
    name_ = std::move(other.name_);
    root_ = std::move(other.root_);
    dir_ = std::move(other.dir_);
    procs_ = std::move(other.procs_);
  }
  return *this;
}

void NodeCgroup::Remove() noexcept {
  if (!dir_.valid()) return;
  try {
    KillAll();
  } catch (const std::exception&) {
    // Removal below then fails with EBUSY; SweepStaleCgroups takes it once this run is gone.
  }
  unlinkat(root_.get(), name_.c_str(), AT_REMOVEDIR);
  procs_.Reset();
  dir_.Reset();
  root_.Reset();
}

void NodeCgroup::Adopt(pid_t pid) const {
  const std::string text = std::to_string(pid);
  if (write(procs_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    ThrowErrno("move pid " + text + " into node cgroup " + name_ + " (is the process still running?)");
  }
}

netns::ProcessOptions NodeCgroup::Join(netns::ProcessOptions opts) const {
  opts.join_cgroup_procs_fd = procs_.get();
  return opts;
}

std::vector<pid_t> NodeCgroup::Pids() const { return PidsAt(dir_.get()); }

bool NodeCgroup::Populated() const { return PopulatedAt(dir_.get()); }

void NodeCgroup::KillAll() const { KillAllAt(dir_.get(), name_); }

std::string CgroupOfPid(pid_t pid) {
  const std::string file = "/proc/" + std::to_string(pid) + "/cgroup";
  std::ifstream in(file);
  if (!in) throw Error("cannot read " + file + " (is process " + std::to_string(pid) + " running?)");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 3, "0::") == 0) return line.substr(3);
  }
  throw Error(file + " has no cgroup v2 line (\"0::...\")");
}

std::vector<std::string> SweepStaleCgroups() {
  std::vector<std::string> removed;
  WithCgroup2Root([&](int root_fd) {
    DIR* d = fdopendir(dup(root_fd));
    if (d == nullptr) ThrowErrno("list the cgroup2 root");
    std::vector<std::string> stale;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      const pid_t owner = OwnerPid(name);
      if (owner > 0 && ProcessGone(owner)) stale.push_back(name);
    }
    closedir(d);
    for (const auto& name : stale) {
      UniqueFd dir(openat(root_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir.valid()) continue;
      try {
        KillAllAt(dir.get(), name);
      } catch (const std::exception&) {
        continue;  // a process that cannot die keeps its cgroup; the next sweep tries again
      }
      if (unlinkat(root_fd, name.c_str(), AT_REMOVEDIR) == 0) removed.push_back(name);
    }
  });
  return removed;
}

}  // namespace kmesh::lab
