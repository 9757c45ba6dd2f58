// Which part of the lab enforces each field a policy uses, so a suite knows which mechanism's evidence
// to expect (XDP maps, or the waypoint's 403) and a policy the lab cannot enforce fails loudly instead
// of passing for the wrong reason. Mirrors kmesh-facts.md §1.6:
//   ipBlocks, notIpBlocks, ports, notPorts, when source.ip / destination.ip / destination.port -> XDP
//   namespaces, notNamespaces, when source.namespace -> the lab maps namespaces to source IPs
//   hosts, paths, methods (and not-forms), when request.headers[...] -> the waypoint (L7)
//   principals, notPrincipals, when source.principal / request.auth.* / ... -> unsupported
// A policy attached with targetRefs is enforced only by the waypoint of that Service (istiod does not send
// such policies to the node dataplane), so all its evaluable fields are the waypoint's.
#pragma once

#include <string>
#include <vector>

#include "e2e/policy/policy.h"

namespace kmesh::policy {

enum class Enforcer {
  kXdp,             // the XDP reference datapath (Kmesh's xdp_authz)
  kNamespaceToIps,  // the lab: a namespace becomes the source IPs of its pods, then XDP
  kWaypoint,        // the L7 waypoint (HTTP 403)
  kUnsupported,     // nothing in the lab; a policy using it is refused
};
const char* EnforcerName(Enforcer e);  // "xdp", "namespace-to-ips", "waypoint", "unsupported"

struct FieldUse {
  std::string path;  // "spec.rules[0].from[0].source.ipBlocks"
  Enforcer enforcer;
  std::string note;  // for kUnsupported: why
};

struct Support {
  std::string policy;  // IdKey()
  Origin origin;       // where the policy was written
  std::vector<FieldUse> fields;

  bool Needs(Enforcer e) const;
  std::vector<FieldUse> Of(Enforcer e) const;
  // Throws kmesh::Error "<origin>: policy ns/name: the lab does not support source.principals
  // (spec.rules[0].from[0].source.principals)" for the first unsupported field.
  void RequireSupported() const;
};

Support SupportedBy(const AuthorizationPolicy& policy);

}  // namespace kmesh::policy
