// AuthorizationPolicies back to YAML (what a person applies with kubectl, and what ParseManifests reads
// back to the same policies), and the regression case file: one disagreement found by the conformance
// run, minimal, as testdata/conformance/*.yaml keeps it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "e2e/conformance/case.h"
#include "e2e/policy/policy.h"

namespace kmesh::conformance {

// A security.istio.io/v1 AuthorizationPolicy manifest; several are joined by "---".
std::string ToYaml(const policy::AuthorizationPolicy& p);
std::string ToYaml(const std::vector<policy::AuthorizationPolicy>& policies);

// A kept disagreement (testdata/conformance/<name>.yaml). The case is everything needed to run it again:
// the workload, the mesh's policies and one connection. The rest records what was seen when it was found,
// for the reader and as a cross-check (the regression test recomputes Istio's answer and judges Kmesh
// afresh; a recorded field that no longer holds is reported).
struct RegressionCase {
  std::string name;         // file name without .yaml
  std::string defect;       // "D1", or "D1+D2" when only fixing both makes Kmesh conform
  std::string kind;         // DisagreementKind name, e.g. "passed-denied"
  std::string explanation;  // one paragraph: what Istio says, what Kmesh did, why (Kmesh file:line)
  uint64_t found_seed = 0;  // the generated case it was shrunk from
  Case c;                   // c.connections has exactly one entry
  std::string istio;        // the oracle's answer when found ("drop", "pass", "defer")
  std::string kmesh;        // what Kmesh's XDP did then ("XDP_DROP, km_auth_res = DENY")
};

std::string ToYaml(const RegressionCase& r);
// Throws kmesh::Error "<origin>: <field>: <what is wrong>" for a file that is not one.
RegressionCase ParseRegressionCase(const std::string& yaml_text, const std::string& origin);
RegressionCase ReadRegressionCase(const std::string& path);

}  // namespace kmesh::conformance
