// A model of Kmesh's XDP authorization (bpf/kmesh/workload/xdp.c xdp_authz and authz.h policies_check,
// policy_check) that reads the node's real maps the way the programs do: km_wlpolicy's four slots,
// km_authz_policy, and every pointer of the protobuf-c policy as an outer key into kmesh_map64/192/296/
// 1600 (bpf/include/bpf_common.h:195-233), including the byte-offset reads of D5 and D10, which land on
// whatever blob the resulting index names. It is the project's own reading of Kmesh's code, written as
// C++ over the same memory; never Kmesh's code.
//
// Each known defect (defects.h) is a switch. With every defect present the model must predict exactly
// what Kmesh's XDP does (action, km_auth_res, and the km_tcargs state left behind); the conformance run
// checks that on every verdict, so a behaviour nobody has explained yet shows up as a model miss. With
// some defects fixed, it says what Kmesh would do then: the smallest set of fixes that makes Kmesh
// conform is a disagreement's cause.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/maps.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/verdict.h"
#include "e2e/conformance/case.h"
#include "e2e/conformance/defects.h"
#include "e2e/conformance/kmesh_xdp.h"
#include "e2e/conformance/oracle.h"

namespace kmesh::conformance {

// The node's policy memory as the BPF programs see it, read once per blob and kept until Forget().
class NodeMemory {
 public:
  explicit NodeMemory(const std::string& pin_dir);
  // The blob an outer key names when its type byte is `map_type` (get_ptr_val_from_map): nullptr when
  // the type differs or the inner map has no such index.
  const std::vector<uint8_t>* Blob(uint64_t pointer, int map_type);
  // km_authz_policy's value under `key`; nullptr when absent.
  const std::vector<uint8_t>* Policy(uint32_t key);
  // The node changed (a case written or removed): read everything again.
  void Forget();

 private:
  std::vector<bpf_probe::Map> inner_;  // kmesh_map64, 192, 296, 1600 (map types 0..3)
  bpf_probe::Map policies_;
  std::map<uint64_t, std::optional<std::vector<uint8_t>>> blobs_;
  std::map<uint32_t, std::optional<std::vector<uint8_t>>> policy_blobs_;
};

struct Prediction {
  bpf_probe::XdpAction action = bpf_probe::XdpAction::kPass;
  std::optional<bpf_probe::Verdict> auth_res;
  std::optional<MatchContext> tcargs;  // predicted only with D2 present (one evaluation, no identity)
  bool to_userspace = false;           // ended in the tail call to xdp_shutdown_in_userspace
  bool read_past_list = false;         // policy_index reached 4: km_wlpolicy read past its value
  // Past the 4 slots Kmesh read zero ids and found the policy stored under key 0 (D8, D35): how long the
  // zeros go on is memory the model cannot see (see ModelAgrees).
  bool past_list_ambiguous = false;
  std::vector<std::string> trace;  // how it decided, one line per policy (when asked for)
  std::string ToString() const;
};

// What the model needs about one written case, worked out once.
class ModelCase {
 public:
  ModelCase(const Case& c, const Written& w, NodeMemory& memory);
  const Case& c() const { return c_; }
  const Written& written() const { return w_; }
  NodeMemory& memory() const { return mem_; }
  const std::vector<uint32_t>& selected_ids() const { return selected_ids_; }
  // NAMESPACE and GLOBAL policies that apply to the workload, sorted by name (D30 fixed lists them).
  const std::vector<uint32_t>& scoped_ids() const { return scoped_ids_; }
  uint32_t StoredKey(uint32_t id) const;
  bool IsPolicyId(uint32_t id) const;
  // A key a D8 policy was stored under instead of its id.
  bool IsCutKey(uint32_t key) const;
  // Policies (ns/name) whose km_authz_policy record another policy replaced under the same cut-down key
  // (D8): the model cannot evaluate them with D8 fixed, their rules are no longer in the maps.
  const std::vector<std::string>& lost() const { return lost_; }
  std::string NameOf(uint32_t id) const;
  // With D2 fixed the model evaluates namespaces and principals too, once per identity class.
  const std::vector<Identity>& identities() const { return identities_; }
  // The defects whose fix can change what the model predicts for `conn` (from the shape of the case:
  // a defect about lists longer than 4 cannot matter when none is): classification only tries these.
  DefectSet Relevant(const Connection& conn) const;

 private:
  const Case& c_;
  const Written& w_;
  NodeMemory& mem_;
  std::vector<uint32_t> selected_ids_, scoped_ids_;
  std::map<uint32_t, uint32_t> stored_;
  std::map<uint32_t, std::string> names_;
  std::vector<Identity> identities_;
  std::vector<std::string> lost_;
  DefectSet relevant_;          // for every connection
  bool has_ipv4_rule_ = false;  // D32 matters for a non-IPv4 connection only when there is one
};

// Whether Kmesh's XDP did what the model (every defect present) predicted: the action, km_auth_res and the
// km_tcargs state left behind. When the prediction read past km_wlpolicy's 4 slots into zero ids
// (past_list_ambiguous), Kmesh may also have met a non-zero id later (the same verdict, a later
// policy_index up to 16) or the kernel's limit of 33 tail calls (XDP_PASS at policy_index 16).
bool ModelAgrees(const Prediction& model, const Observation& kmesh);

// What Kmesh's XDP does with `conn`'s SYN, with the `present` defects, on the node holding the case.
// With D2 fixed, XDP is credited with knowing which identities the policies tell apart: it decides when
// every identity gets the same verdict and defers to userspace otherwise.
Prediction Predict(const ModelCase& mc, const Connection& conn, const DefectSet& present, bool trace = false);

}  // namespace kmesh::conformance
