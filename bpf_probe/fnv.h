// Kmesh's ids: a workload id is FNV-32a of the workload UID, a policy id is FNV-32a of
// "<namespace>/<name>" (pkg/utils/hash_name.go, kmesh-facts.md §1.3). Kmesh resolves a collision by
// linear probing (id + 1, ...) and remembers the result in /mnt/hash_name.yaml, so the id computed here is
// the one Kmesh uses unless two live names collided; the policies view reports which ids it found.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kmesh::bpf_probe {

inline constexpr uint32_t kFnv32Offset = 2166136261u;
inline constexpr uint32_t kFnv32Prime = 16777619u;

constexpr uint32_t Fnv32a(std::string_view s) {
  uint32_t h = kFnv32Offset;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnv32Prime;
  }
  return h;
}

// FNV-32a("namespace/name").
inline uint32_t PolicyId(std::string_view ns, std::string_view name) {
  return Fnv32a(std::string(ns) + "/" + std::string(name));
}

// FNV-32a(workload UID).
inline uint32_t WorkloadId(std::string_view uid) { return Fnv32a(uid); }

}  // namespace kmesh::bpf_probe
