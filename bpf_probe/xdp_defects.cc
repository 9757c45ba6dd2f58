#include "bpf_probe/xdp_defects.h"

namespace kmesh::bpf_probe {

namespace {

// Paths are relative to the Kmesh tree at the pinned commit (third_party/kmesh/COMMIT).
const DefectInfo kDefects[] = {
    {Defect::kD1, "D1", "first matching policy wins in XDP: an ALLOW listed before a matching DENY passes",
     "bpf/kmesh/workload/include/authz.h:651-676"},
    {Defect::kD2, "D2",
     "a match's namespaces/principals are ignored in XDP: it matches on its ports and addresses alone",
     "bpf/kmesh/workload/include/authz.h:453-468, 498-506"},
    {Defect::kD5, "D5", "XDP reads address list entry i at byte offset i (&ipPtrs[i] on a void *)",
     "bpf/kmesh/workload/include/authz.h:361, 393"},
    {Defect::kD6, "D6", "a workload's 5th and later policies are never written to km_wlpolicy",
     "pkg/controller/workload/workload_processor.go:1186-1192"},
    {Defect::kD8, "D8",
     "a policy id with a zero byte is stored under a cut-down key (strncpy); XDP misses it",
     "bpf/deserialization_to_bpf_map/deserialization_to_bpf_map.c:91-106; authz.h:572-577"},
    {Defect::kD10, "D10", "XDP reads rule i at byte offset i (&rulesPtr[i] on a void *)",
     "bpf/kmesh/workload/include/authz.h:639-645"},
    {Defect::kD11, "D11", "a match with only notIpBlocks (or not-destination IPs) never matches in XDP",
     "bpf/kmesh/workload/include/authz.h:348-411"},
    {Defect::kD12, "D12", "XDP reads at most 4 ports of a list",
     "bpf/kmesh/workload/include/authz.h:171-201"},
    {Defect::kD30, "D30",
     "NAMESPACE and GLOBAL policies are never evaluated in XDP (only Workload.authorization_policies are "
     "listed in km_wlpolicy)",
     "bpf/kmesh/workload/xdp.c:58-78; pkg/controller/workload/workload_processor.go:568, 1178-1199"},
    {Defect::kD31, "D31",
     "a policy with no rules ends XDP's evaluation with XDP_PASS (its rules pointer is NULL): an "
     "allow-nothing "
     "passes everything and the policies after it are never looked at",
     "bpf/kmesh/workload/include/authz.h:588-591"},
    {Defect::kD32, "D32",
     "an IPv4 block is compared with an IPv6 connection's address bytes (tuple_info->ipv4 read whatever the "
     "packet's family): an IPv4-mapped client never matches its IPv4 block, an IPv6 client matches the "
     "IPv4 block of its first 4 bytes",
     "bpf/kmesh/workload/include/authz.h:265-279, 302-304"},
    {Defect::kD33, "D33",
     "an IPv6 block never matches: convert_ipv6_to_ip6addr ORs each word's 4 bytes into one shifted by "
     "i*8, into a union of which only the first word is initialized (clang 19 makes word 1 all ones)",
     "bpf/kmesh/workload/include/authz.h:242-246, 306; bpf/include/common.h:41-46"},
    {Defect::kD34, "D34",
     "XDP reads at most 4 rules of a policy, 4 clauses of a rule, 4 matches of a clause and 4 addresses "
     "of a list (MAX_MEMBER_NUM_PER_POLICY); Istio enforces every entry",
     "bpf/kmesh/workload/include/authz.h:356-359, 388-391, 488-491, 530-533, 632-635; workload.h:14"},
    {Defect::kD35, "D35",
     "an empty km_wlpolicy slot (id 0) is looked up in km_authz_policy like a policy id, and policy_index "
     "runs past the 4 slots: a policy stored under key 0 (its id's first byte is zero, cut by D8: 1 policy "
     "in 256, in any namespace) is applied to every workload with fewer than 4 policies",
     "bpf/kmesh/workload/include/authz.h:573-577, 680; bpf/deserialization_to_bpf_map/"
     "deserialization_to_bpf_map.c:91-106"},
};
static_assert(sizeof(kDefects) / sizeof(kDefects[0]) == kDefectCount, "one entry per Defect");

}  // namespace

const DefectInfo& Info(Defect d) { return kDefects[static_cast<size_t>(d)]; }

const std::vector<Defect>& AllDefectIds() {
  static const std::vector<Defect> all = [] {
    std::vector<Defect> v;
    for (const auto& d : kDefects) v.push_back(d.id);
    return v;
  }();
  return all;
}

DefectSet DefectSet::All() {
  DefectSet s;
  s.bits_.set();
  return s;
}

DefectSet DefectSet::None() { return DefectSet(); }

DefectSet DefectSet::Without(Defect d) const {
  DefectSet s = *this;
  s.bits_.reset(static_cast<size_t>(d));
  return s;
}

DefectSet DefectSet::With(Defect d) const {
  DefectSet s = *this;
  s.bits_.set(static_cast<size_t>(d));
  return s;
}

std::vector<Defect> DefectSet::list() const {
  std::vector<Defect> out;
  for (Defect d : AllDefectIds()) {
    if (Has(d)) out.push_back(d);
  }
  return out;
}

std::string DefectSet::Codes() const {
  std::string out;
  for (Defect d : list()) out += (out.empty() ? "" : "+") + std::string(Info(d).code);
  return out.empty() ? "none" : out;
}

}  // namespace kmesh::bpf_probe
