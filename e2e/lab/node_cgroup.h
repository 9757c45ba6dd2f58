// NodeCgroup: one cgroup v2 per lab node, holding the node's pod server processes, so that Kmesh's
// sockops program (attached to it, as Kmesh attaches it to its cgroup2 root) sees their connections.
//
// Where the cgroup lives. cgroup v2 is one hierarchy per kernel (per cgroup namespace): a private
// `mount -t cgroup2` shows the same tree as the machine's /sys/fs/cgroup/unified (hybrid hosts) or
// /sys/fs/cgroup (v2-only hosts, the tools/vm guest). A mount therefore buys no isolation; unique names
// do. So the lab never depends on where (or whether) the init system mounted cgroup2, and never leaves a
// mount behind: every operation that needs a path runs on a throwaway thread with its own mount namespace
// and a private cgroup2 mount, and keeps only directory fds (which outlive that mount). The node cgroup
// is `<cgroup2 root>/kme2e-<pid>-<label>-<n>` (base/names.h), so a later run finds what a crashed one
// left (SweepStaleCgroups), like netns::SweepStale.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "netns/process.h"

namespace kmesh::lab {

class NodeCgroup {
 public:
  // Creates `<cgroup2 root>/kme2e-<pid>-<label>-<n>`. Throws kmesh::Error when the kernel has no cgroup2.
  static NodeCgroup Create(const std::string& label);
  // Kills whatever still runs inside (cgroup.kill), waits until it is empty (defaults::CgroupDrained)
  // and removes the directory. A sockops link attached to it detaches with it.
  ~NodeCgroup();
  NodeCgroup(NodeCgroup&& other) noexcept = default;
  NodeCgroup& operator=(NodeCgroup&& other) noexcept;
  NodeCgroup(const NodeCgroup&) = delete;
  NodeCgroup& operator=(const NodeCgroup&) = delete;

  // "kme2e-<pid>-<label>-<n>": the directory name under the cgroup2 root.
  const std::string& name() const { return name_; }
  // The cgroup's path relative to the cgroup2 root ("/kme2e-..."), as /proc/PID/cgroup prints it.
  std::string path() const { return "/" + name_; }
  // The cgroup directory (O_DIRECTORY), e.g. for bpf_program__attach_cgroup.
  int dir_fd() const { return dir_.get(); }

  // Moves a running process into the cgroup. Sockets take their cgroup when they are created, so a
  // server must be moved before it opens its listening socket; prefer Join() for processes the lab starts.
  void Adopt(pid_t pid) const;
  // `opts` with the child joining this cgroup before exec (netns::ProcessOptions::join_cgroup_procs_fd).
  // The fd stays owned by this NodeCgroup: keep it alive until Process::Start returns.
  netns::ProcessOptions Join(netns::ProcessOptions opts) const;
  // The pids inside now (cgroup.procs).
  std::vector<pid_t> Pids() const;
  // Whether any process is inside (cgroup.events "populated").
  bool Populated() const;
  // Kills every process inside and waits until it is empty (bounded). Idempotent.
  void KillAll() const;

 private:
  NodeCgroup(std::string name, kmesh::UniqueFd root, kmesh::UniqueFd dir, kmesh::UniqueFd procs)
      : name_(std::move(name)), root_(std::move(root)), dir_(std::move(dir)), procs_(std::move(procs)) {}
  void Remove() noexcept;

  std::string name_;
  kmesh::UniqueFd root_;   // the cgroup2 root directory (to remove ours with unlinkat)
  kmesh::UniqueFd dir_;    // our cgroup's directory
  kmesh::UniqueFd procs_;  // its cgroup.procs, open for writing
};

// The cgroup a process is in on the v2 hierarchy ("/kme2e-..."), from /proc/PID/cgroup's "0::" line.
std::string CgroupOfPid(pid_t pid);

// Removes node cgroups named by UniqueName() whose owning process is gone (left by a crashed run): kills
// what still runs inside, waits for it to empty (bounded) and removes the directory. Returns the names
// removed. Cgroups of live runs are never touched.
std::vector<std::string> SweepStaleCgroups();

}  // namespace kmesh::lab
