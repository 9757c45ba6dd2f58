// The project's one model of Kmesh's XDP authorization: what xdp_authz does with a connection's SYN,
// worked out from the maps it reads, step by step, read-only. It follows the programs at the pinned Kmesh
// commit (bpf/kmesh/workload/xdp.c xdp_authz, bpf/kmesh/workload/include/authz.h policies_check and
// policy_check) as they are, known defects included (docs/kmesh-offload-contract.md D1-D35): the first
// matching policy wins (D1), a match with only namespaces or principals matches every client (D2), entry i
// of the rules and address arrays is read at byte offset i (D10, D5), an only-notIpBlocks match never
// matches (D11), lists stop at 4 (D12, D34), a policy without rules ends the walk with XDP_PASS (D31), an
// IPv4 block is compared with an IPv6 packet's first bytes (D32), an IPv6 block is read as the compiled
// object reads it (D33), empty km_wlpolicy slots and the memory past them are looked up (D35).
//
// It never runs the programs: it reads km_auth_res, km_frontend, km_wlpolicy, km_authz_policy and the
// kmesh_map* blobs (XdpMaps), and says which entry decides and why, what XDP would write (km_auth_res,
// km_tcargs), or that the decision is deferred to Kmesh's userspace. Each known defect (xdp_defects.h) is a
// switch (XdpModel): with some fixed, it says what Kmesh would do then, which is how //e2e/conformance
// finds a disagreement's cause. //tools/mapdump:explain_agreement_test and the conformance run check it,
// every defect present, against Kmesh's own xdp_authz under BPF_PROG_TEST_RUN.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/bytes.h"
#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/verdict.h"
#include "bpf_probe/xdp_defects.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {

// km_tcargs' value, Kmesh's struct match_context (authz.h:32-41; kmesh_abi.h KM_TCARGS_*): the state the
// tail calls pass on, left behind for every tuple no policy matched (D4).
struct TcArgs {
  uint32_t action = 0;       // of the last policy looked at (0 ALLOW, 1 DENY)
  uint8_t policy_index = 0;  // the km_wlpolicy slot policies_check reads next
  bool need_tailcall_to_userspace = false;
  uint8_t n_rules = 0;
  int32_t auth_result = 0;               // XDP_PASS (2) until an ALLOW did not match, then XDP_DROP (1)
  static TcArgs Decode(ByteView value);  // KM_TCARGS_VALUE_SIZE bytes
  // "{policy_index 1, need_tailcall_to_userspace false, auth_result XDP_DROP, action ALLOW, n_rules 1}".
  std::string ToString() const;
  bool operator==(const TcArgs& o) const {
    return action == o.action && policy_index == o.policy_index &&
           need_tailcall_to_userspace == o.need_tailcall_to_userspace && n_rules == o.n_rules &&
           auth_result == o.auth_result;
  }
  bool operator!=(const TcArgs& o) const { return !(*this == o); }
};

// The maps the XDP programs read, besides the policy memory.
class XdpMaps {
 public:
  virtual ~XdpMaps() = default;
  virtual std::optional<uint32_t> AuthResult(const net::TupleKey& key) = 0;          // km_auth_res
  virtual std::optional<uint32_t> Frontend(const std::array<uint8_t, 16>& key) = 0;  // km_frontend
  // km_wlpolicy's slots (4; a model with D6 or D30 fixed may be given the longer list Kmesh would write).
  virtual std::optional<std::vector<uint32_t>> WorkloadPolicies(uint32_t workload) = 0;
  virtual PolicyMemory& policies() = 0;  // km_authz_policy, kmesh_map*
  // The authz_offload global of the xdp_authz program using these maps (authz_offload.h); nullopt when it
  // cannot be read, and the walk assumes Kmesh's default, 1.
  virtual std::optional<uint32_t> AuthzOffloadValue() { return std::nullopt; }
};

// The live maps of a catalog, read-only.
class LiveXdpMaps final : public XdpMaps {
 public:
  explicit LiveXdpMaps(const MapCatalog& catalog);
  std::optional<uint32_t> AuthResult(const net::TupleKey& key) override;
  std::optional<uint32_t> Frontend(const std::array<uint8_t, 16>& key) override;
  std::optional<std::vector<uint32_t>> WorkloadPolicies(uint32_t workload) override;
  PolicyMemory& policies() override { return policies_; }
  std::optional<uint32_t> AuthzOffloadValue() override;
  // Every km_auth_res entry whose tuple is src -> dst:dport, any source port (explain without a port).
  std::vector<std::pair<net::Tuple, uint32_t>> AuthResultsFor(const net::IpAddr& src, const net::IpAddr& dst,
                                                              uint16_t dport);
  // Read the maps again on the next lookups (km_frontend and the policy memory are kept until then).
  void Forget() {
    policies_.Forget();
    frontend_cache_.clear();
  }

 private:
  Map auth_res_, frontend_, wlpolicy_;
  LivePolicyMemory policies_;
  std::map<std::array<uint8_t, 16>, std::optional<uint32_t>> frontend_cache_;
  bool offload_read_ = false;
  std::optional<uint32_t> offload_;
};

// The model's switches. The defaults are Kmesh as it is, explained step by step.
struct XdpModel {
  DefectSet present = DefectSet::All();
  // With D2 fixed, the client's identity (which only Kmesh's userspace knows) that namespaces and
  // principals are matched against as Istio matches them.
  std::string client_ns, client_principal;
  // false: only the decision (no steps, notes, names or defect list), for runs that ask millions of times.
  bool trace = true;
};

// One line of the account: what was read or decided, and where in Kmesh's source.
struct ExplainStep {
  int depth = 0;       // 0 = program level, 1 = policy, 2 = rule, ...
  std::string text;    // "km_frontend[10.244.2.7] = 2735671 (the workload's uid)"
  std::string source;  // "xdp.c:71-76" (paths relative to bpf/kmesh/workload/)
  std::string defect;  // "D10" when a known defect shapes this step
};

struct XdpExplanation {
  net::Tuple tuple;                       // as XDP sees the SYN (client -> server pod)
  bool sport_known = true;                // false: tuple.sport is 0, the cached verdict was not looked up
  std::optional<uint32_t> authz_offload;  // as read from the program's .data; nullopt: 1 assumed
  XdpAction action = XdpAction::kPass;
  bool to_userspace = false;      // ended in the tail call to xdp_shutdown_in_userspace: userspace decides
  std::optional<Verdict> cached;  // km_auth_res held a verdict: nothing else was read
  std::optional<Verdict> writes_auth_res;  // what policy_check writes to km_auth_res
  std::optional<TcArgs> tcargs;            // what km_tcargs holds for the tuple afterwards
  std::string decided_by;                  // "km_auth_res (cached DENY)", "test-ns1/deny-ip rule 0", ...
  std::string why;                         // one sentence
  std::vector<ExplainStep> steps;
  std::vector<std::string> defects;  // every defect code met on the way, in order, unique
  std::vector<std::string> notes;    // what the maps show beside the walk (D8, D30, D3)
  bool read_past_slots = false;      // policy_index went past km_wlpolicy's 4 slots (D35)
  // The walk read memory the maps cannot show (past km_wlpolicy's 4 slots with a policy under key 0, D35):
  // the verdict assumes zero bytes there. Kmesh may meet other ids, or the tail-call limit (XDP_PASS).
  bool assumed_past_slots = false;
  // With a cached verdict: what the policies in force would do with a new connection on this tuple.
  std::optional<XdpAction> policies_now;

  // "XDP_DROP", "XDP_PASS (deferred to userspace)", ...
  std::string Outcome() const;
  // Whether Kmesh's XDP, having returned `action` and left `auth_res` and `tcargs` for the tuple, did what
  // this predicts. Past the 4 slots into assumed zeros (assumed_past_slots) Kmesh may also have met a
  // non-zero id later (the same verdict at a later policy_index, up to 16) or the kernel's limit of 33 tail
  // calls (XDP_PASS at policy_index 16: policies_check for slot 16 is the 33rd, authz.h:604-606).
  bool Agrees(XdpAction action, std::optional<Verdict> auth_res, const std::optional<TcArgs>& tcargs) const;
};

// Walks what xdp_authz (with authz_offload = 1, Kmesh's default) does with `t`'s SYN on the maps, with the
// defects `model` leaves present. Without a source port (`sport_known` false) the cached verdict cannot be
// looked up: the walk is that of a new connection (the policies never read the source port).
XdpExplanation ExplainXdp(const net::Tuple& t, XdpMaps& maps, bool sport_known = true,
                          const XdpModel& model = {});

// The account for a person: the steps, then the verdict and why.
std::string FormatExplanation(const XdpExplanation& e);

}  // namespace kmesh::bpf_probe
