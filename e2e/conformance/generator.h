// Random conformance cases, reproducible from a seed, within what Kmesh's workload API carries
// (api/workloadapi/security/authorization.proto): ipBlocks/notIpBlocks with several CIDRs of any prefix
// length (IPv4 and IPv6), ports/notPorts, namespaces/notNamespaces, principals/notPrincipals, and `when`
// on source.ip, destination.ip, destination.port, source.namespace, source.principal (values and
// notValues); ALLOW and DENY mixed; selector, namespace-wide and mesh-wide (root namespace) policies, plus
// policies that do not apply to the workload at all; random names. Nothing istiod would refuse or turn
// into something else (no L7 field, no targetRefs, no empty source or operation).
//
// Addresses, ports, namespaces and principals come from small pools shared by the policies and the
// connections, so rules match often enough to matter. The IPv6 pool holds addresses whose first 32 bits
// equal an IPv4 pool address (a00:1::1 and 10.0.0.1), and IPv4-mapped connections reuse the IPv4 pool:
// both make family confusions visible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "e2e/conformance/case.h"

namespace kmesh::conformance {

struct GeneratorOptions {
  int max_applying_policies = 6;   // policies that apply to the workload: 1..max
  int max_other_policies = 2;      // policies that do not (another namespace, other labels): 0..max
  int max_rules = 6;               // rules per policy: 1..max, mostly 1-2 (0 with zero_rule_chance)
  double zero_rule_chance = 0.04;  // `spec: {}`-like policies: istiod sends them with no rule
  int connections = 96;            // per case
};

// The case for `seed`: the same seed gives the same case.
Case Generate(uint64_t seed, const GeneratorOptions& options = {});

// The seed of case `index` of a run started with `run_seed` (so a run's cases can be replayed one by one).
uint64_t CaseSeed(uint64_t run_seed, uint64_t index);

// SplitMix64: a small, fully specified generator (the same numbers on every platform and library).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n);
  // Uniform in [lo, hi].
  int Between(int lo, int hi);
  bool Chance(double p);
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

 private:
  uint64_t state_;
};

// The identity pools the generator draws namespaces and principals from, for the oracle's enumeration of
// every source identity a connection may have (see oracle.h).
const std::vector<std::string>& NamespaceWords();       // "ns-a", "ns-b", "test-a", "test-b"
const std::vector<std::string>& ServiceAccountWords();  // "sa-1", "sa-2"
// "cluster.local/ns/<ns>/sa/<sa>": how Istio writes the principal of a workload (no "spiffe://").
std::string PrincipalOf(const std::string& ns, const std::string& sa);

}  // namespace kmesh::conformance
