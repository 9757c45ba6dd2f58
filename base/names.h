// Names of kernel objects the harness creates: unique per run (so parallel runs never collide) and
// recognisable (so a later run can remove what a crashed one left behind).
#pragma once

#include <string>
#include <vector>
#include <sys/types.h>

namespace kmesh {

// Prefix of every network namespace the project creates: "kme2e-<pid>-".
inline constexpr const char* kNamePrefix = "kme2e-";

// "kme2e-<pid>-<label>-<n>", n counting up within the process.
std::string UniqueName(const std::string& label);

// The pid encoded in a name made by UniqueName, or -1 when the name is not one of ours.
pid_t OwnerPid(const std::string& name);

// True when `pid` no longer runs (so whatever it named is stale).
bool ProcessGone(pid_t pid);

// Removes the folders directly under `parent` that UniqueName(label) named for a process that is gone and
// that hold no mount (a bpffs that could not be unmounted must not be deleted through); returns their
// paths. A live run's folders are never touched.
std::vector<std::string> SweepStaleFolders(const std::string& parent, const std::string& label);

// A work folder /tmp/<UniqueName(label)>: made now, removed with everything in it when this goes. A bpffs
// mounted inside must go first (declare its owner after the ScratchDir).
struct ScratchDir {
  explicit ScratchDir(const std::string& label);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string path;
};

}  // namespace kmesh
