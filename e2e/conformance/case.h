// One conformance case: a destination workload, the AuthorizationPolicies of the mesh (some apply to the
// workload, some do not), and the connections a client opens to it. The policies are Istio's own model
// (e2e/policy): the oracle evaluates them as Istio does, the datapath receives them translated as istiod
// translates them (e2e/lab/workload_authz.h) and written by Kmesh's deserializer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "e2e/policy/policy.h"
#include "net/tuple.h"

namespace kmesh::conformance {

// The server every case judges connections to: one pod on the node under test, dual-stack.
struct Workload {
  std::string ns;
  std::map<std::string, std::string> labels;
  std::string uid;         // Workload.uid as istiod sends it
  net::IpAddr ipv4;        // both written to km_frontend
  net::IpAddr ipv6;
};

// How the client's SYN reaches the pod. An IPv4-mapped IPv6 connection carries ::ffff:a.b.c.d in an IPv6
// header (a dual-stack socket's peer); Kmesh folds such a destination to IPv4 for km_frontend
// (bpf/kmesh/workload/xdp.c:66-67) and Istio folds the source to IPv4 for matching (net::IpAddr::Unmapped).
enum class Family { kIPv4, kIPv6, kIPv4MappedIPv6 };
const char* ToString(Family f);  // "ipv4", "ipv6", "ipv4-mapped-ipv6"

struct Connection {
  net::Tuple tuple;  // client -> workload, as the SYN carries it (a mapped address stays IPv6)
  Family family() const;
};

struct Case {
  uint64_t seed = 0;  // the generator's seed: Generate(seed) gives this case back
  Workload workload;
  std::vector<policy::AuthorizationPolicy> policies;
  std::vector<Connection> connections;
};

// The mesh root namespace (istiod's default): a policy there without a selector is GLOBAL.
inline constexpr const char* kRootNamespace = "istio-system";

// The policies Istio applies to the case's workload (selector match in its namespace or the root
// namespace, or no selector there), in the case's order.
std::vector<policy::AuthorizationPolicy> ApplyingPolicies(const Case& c);

}  // namespace kmesh::conformance
