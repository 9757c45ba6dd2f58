// Locating data files (BPF objects, testdata) of a Bazel target at run time, also when the binary runs
// inside tools/vm (same paths over 9p) or is started by hand from bazel-bin.
#pragma once

#include <string>

namespace kmesh {

// Absolute path of a workspace-relative runfile like "e2e/lab/bpf/xdp_authz.bpf.o". Throws kmesh::Error
// naming the places it looked when the file is not found.
std::string Runfile(const std::string& workspace_relative);

}  // namespace kmesh
