// The differential run: each connection of a case judged three ways, side by side:
//   kmesh  what Kmesh's XDP did (KmeshXdpUnderTest: BPF_PROG_TEST_RUN, km_auth_res, km_tcargs);
//   istio  what it must do (oracle.h: Istio's semantics and the offload contract);
//   model  what the model of Kmesh's XDP (bpf_probe/xdp_explain.h) with every known defect predicts, on
//          the node's maps.
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

#include "bpf_probe/xdp_defects.h"
#include "bpf_probe/xdp_explain.h"
#include "e2e/conformance/case.h"
#include "e2e/conformance/kmesh_xdp.h"
#include "e2e/conformance/oracle.h"

namespace kmesh::conformance {

using bpf_probe::Defect;
using bpf_probe::DefectSet;

// What the model of Kmesh's XDP needs about one written case beyond the node's maps, worked out once: the
// lists km_wlpolicy would hold with D6 or D30 fixed, the keys policies would sit under with D8 fixed, the
// identity classes D2 fixed is asked for, and which defects the case's shape can expose.
class ModelCase {
 public:
  ModelCase(const Case& c, const Written& w, bpf_probe::LiveXdpMaps& maps);
  // What Kmesh's XDP does with `conn`'s SYN with the `present` defects, on the node holding the case
  // (km_auth_res empty). With D2 fixed, XDP is credited with knowing which identities the policies tell
  // apart: it decides when every identity gets the same verdict and defers to userspace otherwise.
  bpf_probe::XdpExplanation Predict(const Connection& conn, const DefectSet& present,
                                    bool trace = false) const;
  // Policies (ns/name) whose km_authz_policy record another policy replaced under the same cut-down key (D8):
  // the model cannot evaluate them with D8 fixed, their rules are no longer in the maps.
  const std::vector<std::string>& lost() const { return lost_; }
  // The defects whose fix can change what the model predicts for `conn` (from the shape of the case: a defect
  // about lists longer than 4 cannot matter when none is): classification only tries these.
  DefectSet Relevant(const Connection& conn) const;

 private:
  class Maps;  // the node's maps with D6, D8 and D30 present or fixed
  bpf_probe::LiveXdpMaps& maps_;
  std::vector<uint32_t> selected_ids_, scoped_ids_;  // scoped: NAMESPACE and GLOBAL policies, by name
  std::map<uint32_t, uint32_t> stored_;              // policy id -> its km_authz_policy key
  std::vector<Identity> identities_;
  std::vector<std::string> lost_;
  DefectSet relevant_;          // for every connection
  bool has_ipv4_rule_ = false;  // D32 matters for a non-IPv4 connection only when there is one
};

// "XDP_PASS, km_auth_res = no entry, tail call to xdp_shutdown_in_userspace".
std::string ModelVerdict(const bpf_probe::XdpExplanation& m);

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
  bpf_probe::XdpExplanation model;
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
  bpf_probe::LiveXdpMaps maps_;  // the node's, read by the model
  Timings timings_;
};

// "model of Kmesh's XDP predicted XDP_PASS, ...; Kmesh's XDP did XDP_DROP, ..." when the model missed.
std::string ModelMiss(const ConnVerdict& v);

}  // namespace kmesh::conformance
