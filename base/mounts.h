// The mount table of this process's mount namespace, read one way for every sweep and check.
#pragma once

#include <string>
#include <vector>

namespace kmesh {

struct Mount {
  std::string point;   // the mount point, its \ooo escapes (space, tab, newline, backslash) undone
  std::string fstype;  // "bpf", "cgroup2", ...
};

// /proc/self/mountinfo, in its order.
std::vector<Mount> Mounts();

// Whether anything is mounted at `dir` or below it.
bool HasMountUnder(const std::string& dir);

}  // namespace kmesh
