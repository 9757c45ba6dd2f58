// Kmesh's authz_offload switch as the running XDP program holds it: the global `authz_offload` in the
// .data map of the xdp_authz program that uses a given km_auth_res (bpf/kmesh/workload/xdp.c:51-56).
// Kmesh's daemon sets it to 1 at start (pkg/bpf/bpf.go) and `kmeshctl authz disable` to 0, when
// xdp_authz tail-calls xdp_shutdown_in_userspace for every packet and no policy is read in XDP
// (xdp.c:83-86). .data is never pinned (pkg/bpf/utils/pin.go), so it is found through the program: every
// loaded program named xdp_authz whose maps include that km_auth_res, then its map with a BTF DATASEC
// holding a variable named authz_offload. Read-only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kmesh::bpf_probe {

struct AuthzOffload {
  uint32_t value = 1;
  uint32_t prog_id = 0;  // the xdp_authz program
  uint32_t map_id = 0;   // its .data map
  std::string map_name;
};

// nullopt when no xdp_authz program uses map `auth_res_map_id`, or its .data has no BTF naming the
// variable. Throws kmesh::Error when two such programs disagree (say which).
std::optional<AuthzOffload> ReadAuthzOffload(uint32_t auth_res_map_id);

}  // namespace kmesh::bpf_probe
