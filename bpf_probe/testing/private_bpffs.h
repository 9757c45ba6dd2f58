// Test helper: a fresh bpffs that only one thread sees, for tests of pinned maps.
#pragma once

#include <functional>
#include <string>

namespace kmesh::bpf_probe::testing {

// Runs fn on a thread with its own mount namespace and a fresh bpffs at `dir`: pins made there vanish
// with the thread, whatever happens, and the machine's mounts are never touched. Exceptions propagate.
void WithPrivateBpffs(const std::string& dir, const std::function<void()>& fn);

}  // namespace kmesh::bpf_probe::testing
