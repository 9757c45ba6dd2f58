// Typed views of Kmesh's authorization maps (kmesh-facts.md §1.3). Each view checks on construction that
// the map has Kmesh's key and value sizes, and otherwise says what it expected, what it found, and
// which Kmesh versions use which layout.
//
//   AuthResultMap      km_auth_res      tuple(36) -> u32 verdict (0 allow, 1 deny)
//   WorkloadPolicyMap  km_wlpolicy      u32 workload id -> up to 4 u32 policy ids (0 = empty slot)
//   AuthzPolicyMap     km_authz_policy  u32 policy id -> 64-byte protobuf-c policy (scope, action, rules)
//   FrontendMap        km_frontend      16-byte IP -> u32 upstream id
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/verdict.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {

// The readers of Kmesh's maps speak net/tuple.h's words.
using net::IpAddr;
using net::PortOrder;
using net::Tuple;
using net::TupleKey;

// Throws kmesh::Error unless `info` has the key and value sizes of Kmesh's map `kmesh_name` (one of the
// KM_MAP_* names). The message gives expected vs found sizes and the Kmesh versions of each layout.
void CheckKmeshLayout(const MapInfo& info, const std::string& kmesh_name);
// The same check as a sentence: "" when the layout matches.
std::string KmeshLayoutProblem(const MapInfo& info, const std::string& kmesh_name);

struct AuthEntry {
  net::Tuple tuple;
  Verdict verdict;
  net::TupleKey key;  // raw key, as stored
};

class AuthResultMap {
 public:
  // `map` must have km_auth_res's layout (36-byte key, 4-byte value).
  explicit AuthResultMap(Map map, net::PortOrder order = net::PortOrder::kHost);
  static AuthResultMap OpenById(uint32_t map_id, net::PortOrder order = net::PortOrder::kHost);

  const Map& map() const { return map_; }
  net::PortOrder port_order() const { return order_; }

  // Every entry, sorted by tuple.
  std::vector<AuthEntry> Entries() const;
  // The verdict cached for `t`, or nullopt when the map holds none.
  std::optional<Verdict> Lookup(const net::Tuple& t) const;
  // Writes a verdict (what Kmesh's userspace does on deny; tests and fault injection use it).
  void Put(const net::Tuple& t, Verdict v) const;
  // Removes `t`'s entry; false when there was none.
  bool Erase(const net::Tuple& t) const;

 private:
  Map map_;
  net::PortOrder order_;
};

// One tuple's verdict in the km_auth_res map behind `map_fd` (not closed) or with id `map_id`.
std::optional<Verdict> LookupVerdict(int map_fd, const net::Tuple& t,
                                     net::PortOrder order = net::PortOrder::kHost);
std::optional<Verdict> LookupVerdictById(uint32_t map_id, const net::Tuple& t,
                                         net::PortOrder order = net::PortOrder::kHost);

struct WorkloadPolicies {
  uint32_t workload_id = 0;
  std::vector<uint32_t> policy_ids;  // non-empty slots, in Kmesh's evaluation order
};

class WorkloadPolicyMap {
 public:
  explicit WorkloadPolicyMap(Map map);
  const Map& map() const { return map_; }
  // Every workload, sorted by id.
  std::vector<WorkloadPolicies> Entries() const;
  std::optional<WorkloadPolicies> Lookup(uint32_t workload_id) const;
  // Writes up to 4 policy ids (more throw: Kmesh drops them with a warning, a test should not rely on it).
  void Put(const WorkloadPolicies& wp) const;

 private:
  Map map_;
};

// km_authz_policy value fields that are plain numbers (x86-64 protobuf-c layout; the name and
// namespace are "outer keys" into Kmesh's kmesh_map* blobs, kept raw).
enum class PolicyScope : uint32_t { kGlobal = 0, kNamespace = 1, kWorkloadSelector = 2 };
enum class PolicyAction : uint32_t { kAllow = KM_ACTION_ALLOW, kDeny = KM_ACTION_DENY };
std::string ToString(PolicyScope s);
std::string ToString(PolicyAction a);

struct AuthzPolicy {
  uint32_t policy_id = 0;
  // False when the map's values are not Kmesh's 64-byte layout (e.g. a test datapath's own policy
  // format): only policy_id is meaningful then.
  bool decoded = true;
  PolicyScope scope = PolicyScope::kGlobal;
  PolicyAction action = PolicyAction::kAllow;
  uint64_t n_rules = 0;
  uint64_t name_outer_key = 0;       // top byte: kmesh_map64/192/296/1600; low 24 bits: index
  uint64_t namespace_outer_key = 0;
};

class AuthzPolicyMap {
 public:
  // Needs Kmesh's u32 policy id key. The value may have another layout (ids stay readable; see
  // value_layout_problem()).
  explicit AuthzPolicyMap(Map map);
  const Map& map() const { return map_; }
  // "" when values are Kmesh's 64-byte layout, else the sentence saying what differs.
  const std::string& value_layout_problem() const { return value_problem_; }
  std::vector<AuthzPolicy> Entries() const;
  // Policy ids present (the "policy realized" barrier checks these).
  std::set<uint32_t> PolicyIds() const;
  bool Contains(uint32_t policy_id) const;

 private:
  Map map_;
  std::string value_problem_;
};

// Encodes the numeric fields of a km_authz_policy value at Kmesh's x86-64 offsets (tests and the lab's
// reference datapath write policies this way).
std::vector<uint8_t> EncodeAuthzPolicyValue(const AuthzPolicy& p);

struct Frontend {
  net::IpAddr ip;
  uint32_t upstream_id = 0;
};

class FrontendMap {
 public:
  explicit FrontendMap(Map map);
  const Map& map() const { return map_; }
  std::vector<Frontend> Entries() const;
  std::optional<uint32_t> Lookup(const net::IpAddr& ip) const;
  void Put(const Frontend& f) const;

 private:
  Map map_;
};

// km_frontend's 16-byte key for `ip` (IPv4 in bytes 0..3, the rest zero).
std::array<uint8_t, 16> EncodeFrontendKey(const net::IpAddr& ip);

}  // namespace kmesh::bpf_probe
