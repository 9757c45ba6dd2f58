// The faults e2e/mutation breaks Kmesh's datapath with, as data: each beside the suite cases that must
// catch it and the disagreement codes (e2e/framework/expect.h) a catching case must fail with.
//   runtime  the running datapath broken through the lab (lab.h Fault, KMESH_E2E_LAB_FAULTS): an XDP
//            program detached, a tail-call slot emptied, a map entry missing or wrong.
//   source   a source mutant: Kmesh's XDP object built from a copy of the tree with one patch of
//            e2e/mutation/mutants/ applied (KMESH_E2E_LAB_XDP_OBJECT names the object).
#pragma once

#include <string>
#include <vector>

namespace kmesh::mutation {

enum class FaultKind { kRuntime, kSource };
const char* ToString(FaultKind k);
// The Kmesh object a source mutant changes.
enum class Program { kXdp, kSockops, kTcEncrypt };
// The suite whose cases catch a fault: e2e/authz (this kernel), or e2e/ipsec (needs ESP with GCM, so it runs
// in tools/vm's guest here: //e2e/mutation:ipsec_mutation_test).
enum class Suite { kAuthz, kIpsec };
const char* ToString(Suite s);
Suite ParseSuite(const std::string& name);  // "authz" or "ipsec"; throws naming the accepted ones

struct FaultSpec {
  std::string id;  // lab fault name (runtime) or mutant name (source): unique
  FaultKind kind = FaultKind::kRuntime;
  Program program = Program::kXdp;  // source mutants: which object
  Suite suite = Suite::kAuthz;
  std::string what;          // what is broken, in one sentence
  std::string kmesh_source;  // the Kmesh code it breaks (file:line at the pinned commit)
  // Catch2 names of the suite's cases that must catch it (never a [!shouldfail] Kmesh-defect case:
  // those fail by design).
  std::vector<std::string> cases;
  // Each must be among the disagreement codes of a selected case that failed.
  std::vector<std::string> codes;
  // Non-empty for an equivalent mutant: why no case can tell it from Kmesh's own code. It still runs, to
  // show it survives (a kill refutes the claim), and stays out of the score.
  std::string equivalent;
  // Non-empty for a known survivor: a real mutant no case of the suite catches yet, why, and what would
  // catch it. It counts in the score as not killed; the test passes while it survives (like a Kmesh-defect
  // case) and fails the day a case kills it, so the row is updated then.
  std::string survivor;
  // Source mutants: the object's runfile ("e2e/mutation/xdp_<id>.o"); runtime: "".
  std::string object() const;
  // Source mutants: the runfile of Kmesh's own object it mutates ("third_party/kmesh/xdp.o").
  std::string kmesh_object() const;
  // The environment of the suite run that injects it (KMESH_E2E_LAB_FAULTS or KMESH_E2E_LAB_XDP_OBJECT).
  std::string inject_env() const;
};

// Every fault of the score, in table order.
const std::vector<FaultSpec>& Faults();
// Those whose cases belong to `suite`.
std::vector<FaultSpec> FaultsOf(Suite suite);
// The suite's Catch2 binary (a runfile).
std::string SuiteBinary(Suite suite);

// Throws kmesh::Error naming the first fault with an empty or duplicate id, no case, or no code.
void CheckFaults(const std::vector<FaultSpec>& faults);

}  // namespace kmesh::mutation
