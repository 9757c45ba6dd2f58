// The oracle: what Kmesh's XDP must do with a connection's SYN, from Istio's semantics
// (e2e/policy/evaluate.h, with the connection as a plain-TCP Request) and Kmesh's offload contract
// (docs/kmesh-offload-contract.md §3):
//   1. XDP may drop only what Istio denies;
//   2. what Istio denies on attributes XDP can see, XDP must drop;
//   3. what needs userspace (namespaces, principals) must be deferred, not decided.
//
// XDP sees the addresses and ports, never the source's identity (namespace, principal). So the oracle
// asks Istio once for every source identity the connection could have, over a domain that covers every
// way the case's patterns can match (the generator's namespace and service-account words, one unknown word
// per prefix/suffix combination, and the identity-less source):
//   - Istio denies for every identity  -> kDrop:  XDP must drop the SYN;
//   - Istio allows for every identity  -> kPass:  XDP must pass it;
//   - it depends on the identity        -> kDefer: XDP must pass it and leave km_auth_res alone, so the
//                                           connection reaches Kmesh's userspace, which decides.
// The kernel evidence the contract ties to each decision (§2): a drop because a DENY policy matched caches
// km_auth_res = DENY for the tuple; a drop because no ALLOW policy matched caches nothing; a pass never
// caches DENY; a deferred connection caches nothing.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bpf_probe/verdict.h"
#include "e2e/conformance/case.h"
#include "e2e/policy/evaluate.h"
#include "net/tuple.h"

namespace kmesh::conformance {

enum class Expected { kDrop, kPass, kDefer };
const char* ToString(Expected e);  // "drop", "pass", "defer"

// What km_auth_res may hold for the tuple after the SYN, by the contract.
struct CacheRule {
  bool deny_ok = false;   // km_auth_res = DENY is allowed
  bool allow_ok = false;  // km_auth_res = ALLOW is allowed
  bool none_ok = false;   // no entry is allowed
  bool Allows(std::optional<bpf_probe::Verdict> v) const;
  std::string ToString() const;  // "DENY", "ALLOW or no entry", ...
};

struct IstioAnswer {
  Expected expected = Expected::kPass;
  CacheRule cache;
  int identities = 0;  // how many source identities were asked (one per class of the domain)
  int denied = 0;      // how many Istio denied
  // One decision for each verdict seen, with the identity it was seen for (empty when none).
  std::optional<policy::Decision> a_deny, an_allow;
  std::string deny_identity, allow_identity;
  // "Istio denies for every source identity: DENY ns-a/x matched (rule 0)".
  std::string Describe() const;
};

struct Identity {
  std::string ns;                // "" for a source with no identity
  std::string principal;         // "cluster.local/ns/<ns>/sa/<sa>", "" with no identity
  std::string ToString() const;  // "ns-a (cluster.local/ns/ns-a/sa/sa-1)", "no identity"
};

// Every identity the oracle may ask about (see the top).
const std::vector<Identity>& IdentityDomain();

// One identity of the domain for each way the policies' namespace and principal patterns can match (two
// identities every pattern treats alike get the same verdict from Istio, whatever the connection). Just
// the identity-less source when no policy looks at the identity.
std::vector<Identity> Representatives(const std::vector<policy::AuthorizationPolicy>& policies);

// Istio's answer for a case's connections: the policies that apply to the workload, asked once per
// representative identity.
class Oracle {
 public:
  explicit Oracle(const Case& c);
  IstioAnswer Judge(const Connection& conn) const;
  const std::vector<Identity>& identities() const { return identities_; }

 private:
  std::vector<policy::AuthorizationPolicy> applying_;
  std::vector<Identity> identities_;
  // Istio never sees the source port: connections that differ only there get the same answer.
  mutable std::map<std::tuple<net::IpAddr, net::IpAddr, uint16_t>, IstioAnswer> answers_;
};

// The connection as Istio's Request (plain TCP; an IPv4-mapped address folded to IPv4).
policy::Request ToRequest(const Connection& conn, const Identity& id);

}  // namespace kmesh::conformance
