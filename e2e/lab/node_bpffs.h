// A lab node's bpffs: what /sys/fs/bpf is on a Kmesh node. Kmesh pins its
// workload maps under <bpffs>/bpf_kmesh_workload/map/
// (pkg/bpf/workload/xdp.go:41), so each lab node gets a bpffs of its own and
// node evidence reads that pin folder exactly as on a real node.
//
// The bpffs is mounted in the machine's mount namespace (not a private one), so
// another process, e.g. `kmesh-probe --maps pin:<dir>/bpf_kmesh_workload/map`,
// sees the pins like a Kmesh node's. Its folder is named by UniqueName
// ("kme2e-<pid>-bpffs-<label>-<n>"), so a later run can unmount what a crashed
// run left (SweepStaleBpffs), as netns::SweepStale does for namespaces.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kmesh::lab {

class NodeBpffs {
 public:
  // Mounts a fresh bpffs at <parent>/kme2e-<pid>-bpffs-<label>-<n> (`parent`
  // must exist: the lab's own work folder) and makes Kmesh's pin folder in it.
  // Throws kmesh::Error naming the path and the errno.
  static NodeBpffs Mount(const std::string &parent, const std::string &label);
  // Unmounts (lazily, so an fd still open elsewhere cannot keep it) and removes
  // the folder.
  ~NodeBpffs();
  NodeBpffs(NodeBpffs &&other) noexcept : path_(std::exchange(other.path_, "")) {}
  NodeBpffs &operator=(NodeBpffs &&other) noexcept;
  NodeBpffs(const NodeBpffs &) = delete;
  NodeBpffs &operator=(const NodeBpffs &) = delete;

  // The mount point: this node's /sys/fs/bpf.
  const std::string &path() const { return path_; }
  // <path>/bpf_kmesh_workload/map: where Kmesh pins every workload map by name.
  std::string KmeshMapDir() const;

 private:
  explicit NodeBpffs(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Kmesh's pin folder under a bpffs mount point (pkg/bpf/workload/xdp.go:41):
// "<bpffs>/bpf_kmesh_workload/map".
std::string KmeshMapDir(const std::string &bpffs);

// Unmounts every bpffs whose folder is named by UniqueName and whose owning
// process is gone (a crashed run), wherever it is mounted, and removes the
// folder. Returns the mount points removed. Mounts of live runs are never
// touched.
std::vector<std::string> SweepStaleBpffs();

}  // namespace kmesh::lab
