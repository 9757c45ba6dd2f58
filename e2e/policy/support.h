// Which part of the lab enforces each field a policy uses, so a suite knows which mechanism's evidence
// to expect (XDP maps, or the waypoint's 403) and a policy the lab cannot enforce fails loudly instead
// of passing for the wrong reason. Mirrors kmesh-facts.md §1.6:
//   ipBlocks, notIpBlocks, ports, notPorts, when source.ip / destination.ip / destination.port -> XDP
//   namespaces, notNamespaces, when source.namespace -> Kmesh's userspace (the lab's authorizer)
//   hosts, paths, methods (and not-forms), when request.headers[...] -> the waypoint (L7)
//   principals, notPrincipals, when source.principal / request.auth.* / ... -> unsupported
// A policy attached with targetRefs is enforced only by the waypoint of that Service (istiod does not send
// such policies to the node dataplane), so all its evaluable fields are the waypoint's.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "e2e/policy/policy.h"

namespace kmesh::policy {

// Which part of Kmesh's datapath decides a policy attribute, and so what a denied client sees
// (ARCHITECTURE.md, "Mechanisms the suites must expect"; docs/kmesh-offload-contract.md §1). The one
// "who enforces" type of the suites, the Envs and the lab.
enum class Mechanism {
  kXdp,        // ipBlocks, ports, destination IPs: SYN dropped -> connect_timeout, km_auth_res = 1
  kUserspace,  // namespaces, principals: handshake ok, Kmesh's userspace verdict after -> read_timeout
  kWaypoint,   // request.headers, hosts (L7), targetRefs: HTTP 403 from the waypoint, nothing in XDP maps
};
const char* ToString(Mechanism m);  // "XDP", "Kmesh userspace", "waypoint"

struct FieldUse {
  std::string path;                      // "spec.rules[0].from[0].source.ipBlocks"
  std::optional<Mechanism> mechanism;    // nullopt: nothing in the lab enforces it
  std::string note;                      // when unsupported: why
};

struct Support {
  std::string policy;  // IdKey()
  Origin origin;       // where the policy was written
  std::vector<FieldUse> fields;

  bool Needs(Mechanism m) const;
  std::vector<FieldUse> Of(Mechanism m) const;
  std::vector<FieldUse> Unsupported() const;
  // Throws kmesh::Error "<origin>: policy ns/name: the lab does not support source.principals
  // (spec.rules[0].from[0].source.principals)" for the first unsupported field.
  void RequireSupported() const;
};

Support SupportedBy(const AuthorizationPolicy& policy);

}  // namespace kmesh::policy
