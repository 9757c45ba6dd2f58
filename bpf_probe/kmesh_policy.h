// Kmesh's authorization policies as its deserializer leaves them in the kernel: km_authz_policy holds the
// 64-byte protobuf-c Istio__Security__Authorization of each policy, and every pointer in it (name, namespace,
// rules, and on down: clauses, matches, addresses, strings, port lists) is an "outer key" into
// kmesh_map64/192/296/1600 (kmesh_abi.h; bpf/include/inner_map_defs.h:8-15, written by
// bpf/deserialization_to_bpf_map/deserialization_to_bpf_map.c:314-652).
//
// DecodePolicy follows those keys and gives the policy back as the workload API's Authorization: name,
// namespace, scope, action, rules -> clauses -> matches. A chain that breaks (a blob missing, a key naming
// the wrong inner map, a blob of the wrong size, a count larger than its array) is reported at the place it
// breaks, and nothing is guessed past it.
//
// PolicyMemory is where the bytes come from: the live maps (LivePolicyMemory, read-only, cached) or a
// snapshot held in memory (tests, and residue, which walks everything once).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpf_probe/bytes.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"

namespace kmesh::bpf_probe {

enum class InnerMap : uint8_t {
  k64 = KM_INNER_MAP_64,
  k192 = KM_INNER_MAP_192,
  k296 = KM_INNER_MAP_296,
  k1600 = KM_INNER_MAP_1600
};
inline constexpr InnerMap kInnerMaps[] = {InnerMap::k64, InnerMap::k192, InnerMap::k296, InnerMap::k1600};
// "kmesh_map64", ...
const char* ToString(InnerMap m);
// 64, 192, 296, 1600.
uint32_t ValueSize(InnerMap m);
// The inner map named `name`, if it is one.
std::optional<InnerMap> InnerMapNamed(const std::string& name);

// One blob: an inner map and an index in it.
struct BlobRef {
  InnerMap map = InnerMap::k64;
  uint32_t index = 0;
  std::string ToString() const;  // "kmesh_map64[12]"
  bool operator<(const BlobRef& o) const { return std::pair(map, index) < std::pair(o.map, o.index); }
  bool operator==(const BlobRef& o) const { return map == o.map && index == o.index; }
};

// A pointer field as Kmesh stores it: (size_t)outer_key, so the low 32 bits are the key and the high 32 bits
// zero. The programs read only the low 32 bits ((__u32)(uintptr_t)ptr, bpf_common.h:199).
struct OuterKey {
  uint64_t raw = 0;
  bool null() const { return raw == 0; }
  uint32_t type() const { return KM_OUTER_KEY_TYPE(static_cast<uint32_t>(raw)); }
  uint32_t index() const { return KM_OUTER_KEY_INDEX(static_cast<uint32_t>(raw)); }
  // "kmesh_map64[12]", or "outer key 0x7000001 (type 7: no such inner map)".
  std::string ToString() const;
};

// Where the policy bytes come from. Values are returned as stored (any size: the decoder checks).
class PolicyMemory {
 public:
  virtual ~PolicyMemory() = default;
  // km_authz_policy[key], nullptr when absent. The bytes stay where they are until the memory is changed
  // or forgets (LivePolicyMemory::Forget): no copy per read, as the conformance run reads millions.
  virtual const Bytes* Policy(uint32_t key) = 0;
  // Every key of km_authz_policy, sorted.
  virtual std::vector<uint32_t> PolicyKeys() = 0;
  // kmesh_mapN[index], nullptr when absent.
  virtual const Bytes* Blob(InnerMap map, uint32_t index) = 0;
  // Whether the inner map exists at all (a datapath without Kmesh's deserializer maps has none).
  virtual bool HasInnerMap(InnerMap map) const = 0;
};

// The live maps of a catalog (pin folder, kernel names, a program). Read-only; every value read once and kept
// (call Forget() to read again). Throws kmesh::Error when km_authz_policy is missing or not Kmesh's layout;
// missing inner maps are allowed (HasInnerMap is then false, and every key into them is broken).
class LivePolicyMemory final : public PolicyMemory {
 public:
  explicit LivePolicyMemory(const MapCatalog& catalog);
  const Bytes* Policy(uint32_t key) override;
  std::vector<uint32_t> PolicyKeys() override;
  const Bytes* Blob(InnerMap map, uint32_t index) override;
  bool HasInnerMap(InnerMap map) const override { return inner_[static_cast<int>(map)].has_value(); }
  void Forget();
  const Map& policies() const { return policies_; }
  const std::optional<Map>& inner(InnerMap m) const { return inner_[static_cast<int>(m)]; }

 private:
  Map policies_;
  std::optional<Map> inner_[KM_INNER_MAP_COUNT];
  // Hashed: the conformance run reads millions of values through them.
  std::unordered_map<uint32_t, std::optional<Bytes>> policy_cache_;
  std::unordered_map<uint64_t, std::optional<Bytes>> blob_cache_;  // map << 32 | index
};

// Policy memory held in memory: a snapshot of live maps (Snapshot) or bytes a test lays out.
class PolicyMemorySnapshot final : public PolicyMemory {
 public:
  // Every entry of km_authz_policy and of each inner map that exists.
  static PolicyMemorySnapshot Read(const MapCatalog& catalog);

  void PutPolicy(uint32_t key, Bytes value) { policies_[key] = std::move(value); }
  void PutBlob(BlobRef ref, Bytes value) { blobs_[ref] = std::move(value); }
  void SetHasInnerMap(InnerMap m, bool has) { has_inner_[static_cast<int>(m)] = has; }

  const Bytes* Policy(uint32_t key) override;
  std::vector<uint32_t> PolicyKeys() override;
  const Bytes* Blob(InnerMap map, uint32_t index) override;
  bool HasInnerMap(InnerMap map) const override { return has_inner_[static_cast<int>(map)]; }
  const std::map<BlobRef, Bytes>& blobs() const { return blobs_; }

 private:
  std::map<uint32_t, Bytes> policies_;
  std::map<BlobRef, Bytes> blobs_;
  bool has_inner_[KM_INNER_MAP_COUNT] = {true, true, true, true};
};

// --- the decoded policy (the workload API's Authorization, api/workloadapi/security/authorization.proto) ---

// Every decoded element carries `broken`: "" when it was read, else why it could not be (its content is then
// empty). Where a list's element is broken the list keeps a placeholder, so positions stay true.
struct PolicyAddress {
  Bytes bytes;          // 4 (IPv4) or 16 (IPv6), network order
  uint32_t prefix = 0;  // Address.length
  std::string broken;
  // "10.244.1.5/32", "fd00::/64", other byte counts as "0x<hex>/<prefix>", "<broken: ...>".
  std::string ToString() const;
};

struct PolicyString {
  enum class Kind { kUnset, kExact, kPrefix, kSuffix, kUnknown };
  Kind kind = Kind::kUnset;
  uint32_t match_type_case = 0;  // as stored
  std::string value;
  std::string broken;
  // As an AuthorizationPolicy writes it: exact "x", prefix "x*", suffix "*x"; unset (istiod's presence "*",
  // which Kmesh's proto cannot carry) "<unset>"; "<broken: ...>".
  std::string ToString() const;
};

struct PolicyMatch {
  std::vector<PolicyString> namespaces, not_namespaces, principals, not_principals;
  std::vector<PolicyAddress> source_ips, not_source_ips, destination_ips, not_destination_ips;
  std::vector<uint32_t> destination_ports, not_destination_ports;
  std::string broken;
  bool Empty() const;
};

struct PolicyClause {
  std::vector<PolicyMatch> matches;
  std::string broken;
};

struct PolicyRule {
  std::vector<PolicyClause> clauses;
  std::string broken;
};

struct DecodedPolicy {
  uint32_t key = 0;  // km_authz_policy key
  std::string name, ns;
  bool name_read = false, ns_read = false;
  uint32_t scope_raw = 0, action_raw = 0;
  uint64_t n_rules = 0;
  std::vector<PolicyRule> rules;
  // Every broken link, with its path: "rules[0].clauses[1]: kmesh_map64[17] is missing".
  std::vector<std::string> problems;
  // Every blob the policy reaches (the outer keys it holds, recursively), sorted.
  std::vector<BlobRef> blobs;

  PolicyScope scope() const { return static_cast<PolicyScope>(scope_raw); }
  PolicyAction action() const { return static_cast<PolicyAction>(action_raw); }
  bool complete() const { return problems.empty(); }
  // "<namespace>/<name>", or "key <key>" when the name cannot be read.
  std::string Resource() const;
  // FNV-32a of "<namespace>/<name>": Kmesh stores a policy under it unless the id has a zero byte (D8,
  // deserialization_to_bpf_map.c:91-106: strncpy stops at it) or collided (hash_name.go: linear probing).
  uint32_t IdOfName() const;
};

// Decodes km_authz_policy[key] = value. Never throws on bad data: problems say what broke.
DecodedPolicy DecodePolicy(uint32_t key, ByteView value, PolicyMemory& memory);
// Every policy in km_authz_policy, by key.
std::vector<DecodedPolicy> DecodePolicies(PolicyMemory& memory);

// The key strncpy leaves of policy id `id` (deserialization_to_bpf_map.c:103): the bytes up to the first zero
// byte, zeros after it. Equal to `id` when no byte is zero.
uint32_t StrncpyKey(uint32_t id);

}  // namespace kmesh::bpf_probe
