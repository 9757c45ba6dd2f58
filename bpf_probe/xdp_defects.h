// The Kmesh defects the model of Kmesh's XDP (xdp_explain.h) knows, each one a switch: present (Kmesh at
// the pinned commit) or fixed (what the contract asks for). A conformance disagreement's cause is the
// smallest set of defects whose fix makes the model conform (e2e/conformance/differential.h). Codes D1-D16
// are the contract doc's (docs/kmesh-offload-contract.md §4); D30 and up were found by //e2e/conformance.
#pragma once

#include <bitset>
#include <string>
#include <vector>

namespace kmesh::bpf_probe {

enum class Defect {
  kD1,   // first matching policy wins
  kD2,   // namespaces/principals ignored in a match
  kD5,   // address list entry i read at byte offset i
  kD6,   // a workload's 5th policy never listed
  kD8,   // policy id with a zero byte stored under a cut key
  kD10,  // rule i read at byte offset i
  kD11,  // a match with only notIpBlocks never matches
  kD12,  // at most 4 ports of a list
  kD30,  // NAMESPACE and GLOBAL policies never evaluated in XDP
  kD31,  // a policy without rules ends the evaluation with XDP_PASS
  kD32,  // IPv4 blocks compared with an IPv6 connection's bytes
  kD33,  // IPv6 blocks never match
  kD34,  // at most 4 rules, clauses, matches and addresses
  kD35,  // empty km_wlpolicy slots (id 0) looked up: the policy stored under key 0 applies to everyone
  kCount,
};
inline constexpr size_t kDefectCount = static_cast<size_t>(Defect::kCount);

struct DefectInfo {
  Defect id;
  const char* code;    // "D5"
  const char* title;   // one line
  const char* source;  // Kmesh file:line
};
const DefectInfo& Info(Defect d);
const std::vector<Defect>& AllDefectIds();

class DefectSet {
 public:
  static DefectSet All();   // Kmesh as it is
  static DefectSet None();  // every defect fixed
  bool Has(Defect d) const { return bits_.test(static_cast<size_t>(d)); }
  DefectSet Without(Defect d) const;
  DefectSet With(Defect d) const;
  size_t size() const { return bits_.count(); }
  bool SubsetOf(const DefectSet& o) const { return (bits_ & ~o.bits_).none(); }
  std::vector<Defect> list() const;
  // "D1+D5" (ascending), "none".
  std::string Codes() const;
  bool operator==(const DefectSet& o) const { return bits_ == o.bits_; }
  bool operator<(const DefectSet& o) const { return bits_.to_ulong() < o.bits_.to_ulong(); }

 private:
  std::bitset<kDefectCount> bits_;
};

}  // namespace kmesh::bpf_probe
