// Turns a typed AuthorizationPolicy into what the lab's datapath enforces, refusing (with the policy's
// file, line and field) anything the lab cannot enforce faithfully, before anything is applied.
//
// Where each kind is enforced in the lab (and what the suites therefore expect here):
//   ipBlocks/notIpBlocks, ports/notPorts   XDP (km_authz_policy), as Kmesh        -> connect timeout
//   namespaces/notNamespaces               XDP, by the source IPs of the pods in those Kubernetes
//                                          namespaces at apply time (Kmesh decides in userspace after
//                                          the handshake, which the lab does not model) -> connect timeout
//   request.headers, hosts, paths, methods the waypoint (policies with spec.targetRefs) -> HTTP 403
//   principals                             not supported: an error naming the field
#pragma once

#include <map>
#include <string>
#include <vector>

#include "e2e/lab/bpf/lab_policy.h"
#include "e2e/policy/policy.h"

namespace kmesh::lab {

enum class Enforcer { kXdp, kWaypoint };

struct CompiledPolicy {
  uint32_t id = 0;          // FNV-32a("<ns>/<name>"), the key in km_authz_policy
  Enforcer enforcer = Enforcer::kXdp;
  lab_policy xdp{};         // for kXdp
};

// Pod IPs of each Kubernetes namespace, for source.namespaces.
using NamespaceIps = std::map<std::string, std::vector<std::string>>;

// Throws kmesh::Error naming origin, field and reason for what the lab cannot enforce.
CompiledPolicy Compile(const policy::AuthorizationPolicy& p, const NamespaceIps& ns_ips);

}  // namespace kmesh::lab
