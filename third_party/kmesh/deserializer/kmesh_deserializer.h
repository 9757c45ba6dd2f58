// Kmesh's C deserializer and the protobuf-c workload API Authorization, for C++ callers. The headers are
// Kmesh's own (from @kmesh_src, by their path under Bazel's execroot); this file only gives them C linkage.
//
// Process-global state (bpf/deserialization_to_bpf_map/deserialization_to_bpf_map.c): map ids come from
// the environment ("Authorization", "KmeshMap64", "KmeshMap192", "KmeshMap296", "KmeshMap1600"), the four
// inner maps' fds, infos and index-allocation bitmaps live in the global g_map_mng (lines 77-84, filled by
// deserial_init). One process therefore serves one node's maps: the lab runs one kmesh-lab-daemon per node.
#pragma once

extern "C" {
#include "external/kmesh_src/api/v2-c/workloadapi/security/authorization.pb-c.h"
#include "external/kmesh_src/bpf/deserialization_to_bpf_map/deserialization_to_bpf_map.h"
}
