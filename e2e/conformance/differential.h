// The differential run: each connection of a case judged three ways, side by side:
//   kmesh  what Kmesh's XDP did (KmeshXdpUnderTest: BPF_PROG_TEST_RUN, km_auth_res, km_tcargs);
//   istio  what it must do (oracle.h: Istio's semantics and the offload contract);
//   model  what the model of Kmesh's XDP with every known defect predicts (kmesh_model.h).
// A disagreement is kmesh against istio; its cause is the smallest set of known defects whose fix makes
// the model conform (Classify; only defects the case's shape can expose are tried). A model miss is kmesh
// against model: behaviour nobody has explained. Disagreements are shrunk (Shrink) to a minimal case that
// disagrees the same way, for the same cause.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "e2e/conformance/case.h"
#include "e2e/conformance/defects.h"
#include "e2e/conformance/kmesh_model.h"
#include "e2e/conformance/kmesh_xdp.h"
#include "e2e/conformance/oracle.h"

namespace kmesh::conformance {

// Which part of the contract a verdict breaks.
enum class Kind {
  kDroppedAllowed,   // Istio allows for every identity; XDP dropped the SYN            (contract rule 1)
  kPassedDenied,     // Istio denies for every identity; XDP passed it                  (rule 2)
  kDroppedDeferred,  // the verdict needs the identity; XDP dropped (decided deny)      (rules 1, 3)
  kCachedDeferred,   // the verdict needs the identity; XDP passed but cached ALLOW     (rule 3)
  kWrongCache,       // the right action with the wrong km_auth_res evidence            (§2)
  kAborted,          // XDP_ABORTED or another action
};
const char* ToString(Kind k);  // "dropped-allowed", "passed-denied", ...
const char* Explain(Kind k);   // the contract sentence it breaks

// nullopt when the action and km_auth_res are what the oracle asks for.
std::optional<Kind> Judge(bpf_probe::XdpAction action, std::optional<bpf_probe::Verdict> auth_res,
                          const IstioAnswer& istio);

struct Cause {
  std::vector<DefectSet> fixes;  // every smallest set of fixes that makes the model conform
  std::string note;              // when the cause is known from the maps rather than the model
  bool explained() const { return !fixes.empty(); }
  // What a disagreement is filed under: the single-defect fixes when there are ("D8 | D35"), else the
  // first smallest set (in code order; "D1+D10").
  std::string Key() const;
  // Whether this cause is the `key` one or a simpler one: one of its fix sets lies within one of the
  // key's alternatives.
  bool Within(const std::string& key) const;
  // "D5", "D5 | D11" (either fix suffices), "D1+D2" (both needed), "unexplained".
  std::string Codes() const;
  // One line per defect involved: "D5: <title> (<source>)".
  std::string Describe() const;
};
// `first_only`: past single defects, stop at the first smallest set (enough to file the disagreement).
Cause Classify(const ModelCase& mc, const Connection& conn, const IstioAnswer& istio,
               bool first_only = false);

struct ConnVerdict {
  Connection conn;
  Observation kmesh;
  IstioAnswer istio;
  Prediction model;
  bool model_matches = true;
  std::optional<Kind> kind;  // a disagreement
  Cause cause;               // when kind is set
};

struct CaseRun {
  Written written;
  std::string maps;  // DescribeMaps, filled when the case disagreed or the model missed
  std::vector<ConnVerdict> verdicts;
};

struct Shrunk {
  Case c;               // one connection
  ConnVerdict verdict;  // judged on a fresh node
  std::string maps;
  bool reproduced = false;  // the minimal case disagrees the same way on a fresh node
  int tries = 0;            // candidates run
};

// Where a run's time went, in seconds.
struct Timings {
  double write = 0, xdp = 0, oracle = 0, model = 0, classify = 0, undo = 0;
  std::string ToString() const;
};

class Differential {
 public:
  explicit Differential(KmeshXdpUnderTest& node);

  // Writes the case, judges every connection, removes the case.
  CaseRun Run(const Case& c);
  // The smallest case found (within `deadline`) that still disagrees with `kind` on `conn` for the cause
  // filed under `key` or a simpler one, checked again on a fresh node.
  Shrunk Shrink(const Case& c, const Connection& conn, Kind kind, const std::string& key,
                std::chrono::steady_clock::time_point deadline);

  // A one-connection case on a fresh node (Reset), with the model's trace and the map entries.
  ConnVerdict Replay(const Case& c, std::string* maps);

  KmeshXdpUnderTest& node() { return node_; }
  const Timings& timings() const { return timings_; }

 private:
  // `causes` (optional) remembers the causes found for this case: the model never reads the source port,
  // so connections that differ only there and got the same verdicts have the same cause.
  ConnVerdict JudgeOne(const ModelCase& mc, const Oracle& oracle, const Connection& conn, bool trace,
                       std::map<std::string, Cause>* causes = nullptr);
  // Runs a one-connection case on a node holding nothing and judges it.
  ConnVerdict RunOne(const Case& c, bool trace, std::string* maps);
  // Whether a one-connection case disagrees as `kind` for the cause filed under `key` or a simpler one.
  bool Still(const Case& candidate, Kind kind, const std::string& key);

  KmeshXdpUnderTest& node_;
  NodeMemory memory_;
  Timings timings_;
};

// "kmesh_model: XDP_PASS, km_auth_res = no entry vs kmesh: XDP_DROP ..." when the model missed.
std::string ModelMiss(const ConnVerdict& v);

}  // namespace kmesh::conformance
