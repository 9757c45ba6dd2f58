#include "bpf_probe/kmesh_maps.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/dump.h"

namespace kmesh::bpf_probe {
namespace {

struct Layout {
  const char* name;
  uint32_t key_size;
  uint32_t value_size;
  const char* versions;  // which Kmesh versions use it, for the mismatch message
};

// Facts: kmesh-facts.md §1.3 (Kmesh ec501a98 and v1.2.0).
constexpr Layout kLayouts[] = {
    {KM_MAP_AUTH_RES, KM_TUPLE_SIZE, 4,
     "a 36-byte struct bpf_sock_tuple key and a u32 verdict, in current Kmesh and in v1.2.0 alike (only the "
     "port byte order differs: network order in v1.2.0 and earlier, host order after commits 1c2ccfa2 and "
     "3b352445; pick it with --port-order)"},
    {KM_MAP_TCARGS, KM_TUPLE_SIZE, KM_TCARGS_VALUE_SIZE,
     "a 36-byte tuple key and a 40-byte struct match_context value (x86-64)"},
    {KM_MAP_WLPOLICY, 4, 16, "a u32 workload id key and 4 x u32 policy ids (MAX_MEMBER_NUM_PER_POLICY = 4)"},
    {KM_MAP_AUTHZ_POLICY, 4, KM_AUTHZ_POLICY_VALUE_SIZE,
     "a u32 policy id key and a 64-byte protobuf-c Istio__Security__Authorization value (x86-64; other "
     "architectures or protobuf-c versions would differ)"},
    {KM_MAP_FRONTEND, 16, 4, "a 16-byte struct ip_addr key and a u32 upstream id"},
    {KM_MAP_XDP_TAILCALL, 4, 4, "a PROG_ARRAY of 8 slots"},
    {KM_MAP_NODEINFO, 20, 4, "an LPM trie with a 20-byte key (prefix length + 16-byte IP) and a u32 value"},
};

const Layout* FindLayout(const std::string& name) {
  for (const auto& l : kLayouts) {
    if (name == l.name) return &l;
  }
  return nullptr;
}

template <typename T>
T ReadAt(ByteView v, size_t off) {
  T out;
  std::memcpy(&out, v.data + off, sizeof out);
  return out;
}

}  // namespace

std::string KmeshLayoutProblem(const MapInfo& info, const std::string& kmesh_name) {
  const Layout* l = FindLayout(kmesh_name);
  if (l == nullptr) return "";
  if (info.key_size == l->key_size && info.value_size == l->value_size) return "";
  return info.Describe() + " is not laid out like Kmesh's " + kmesh_name + ": expected key " +
         std::to_string(l->key_size) + " B and value " + std::to_string(l->value_size) + " B, found key " +
         std::to_string(info.key_size) + " B and value " + std::to_string(info.value_size) + " B. Kmesh uses " +
         l->versions + ". Is this the right map (or a Kmesh version this tool does not know)?";
}

void CheckKmeshLayout(const MapInfo& info, const std::string& kmesh_name) {
  const std::string problem = KmeshLayoutProblem(info, kmesh_name);
  if (!problem.empty()) throw Error(problem);
}

// --- km_auth_res ---------------------------------------------------------------------------------------

AuthResultMap::AuthResultMap(Map map, PortOrder order) : map_(std::move(map)), order_(order) {
  CheckKmeshLayout(map_.info(), KM_MAP_AUTH_RES);
}

AuthResultMap AuthResultMap::OpenById(uint32_t map_id, PortOrder order) {
  return AuthResultMap(Map::OpenById(map_id), order);
}

std::vector<AuthEntry> AuthResultMap::Entries() const {
  std::vector<AuthEntry> out;
  DumpMap(map_, [&](ByteView key, ByteView value) {
    AuthEntry e{*net::DecodeTupleKey(key.data, key.size, order_),
                static_cast<Verdict>(ReadAt<uint32_t>(value, 0)),
                {}};
    std::memcpy(e.key.data(), key.data, KM_TUPLE_SIZE);
    out.push_back(e);
  });
  std::sort(out.begin(), out.end(), [](const AuthEntry& a, const AuthEntry& b) { return a.tuple < b.tuple; });
  return out;
}

std::optional<Verdict> AuthResultMap::Lookup(const Tuple& t) const {
  const TupleKey key = net::EncodeTupleKey(t, order_);
  auto v = map_.Lookup(ByteView(key.data(), key.size()));
  if (!v) return std::nullopt;
  return static_cast<Verdict>(ReadAt<uint32_t>(*v, 0));
}

void AuthResultMap::Put(const Tuple& t, Verdict v) const {
  const TupleKey key = net::EncodeTupleKey(t, order_);
  const auto raw = static_cast<uint32_t>(v);
  map_.Update(ByteView(key.data(), key.size()), ByteView(reinterpret_cast<const uint8_t*>(&raw), sizeof raw));
}

bool AuthResultMap::Erase(const Tuple& t) const {
  const TupleKey key = net::EncodeTupleKey(t, order_);
  return map_.Delete(ByteView(key.data(), key.size()));
}

std::optional<Verdict> LookupVerdict(int map_fd, const Tuple& t, PortOrder order) {
  return AuthResultMap(Map::Borrow(map_fd), order).Lookup(t);
}

std::optional<Verdict> LookupVerdictById(uint32_t map_id, const Tuple& t, PortOrder order) {
  return AuthResultMap::OpenById(map_id, order).Lookup(t);
}

// --- km_wlpolicy ---------------------------------------------------------------------------------------

namespace {
WorkloadPolicies DecodeWorkload(uint32_t id, ByteView value) {
  WorkloadPolicies wp{id, {}};
  for (int i = 0; i < KM_MAX_MEMBER_NUM_PER_POLICY; ++i) {
    const auto p = ReadAt<uint32_t>(value, i * 4);
    if (p != 0) wp.policy_ids.push_back(p);
  }
  return wp;
}
}  // namespace

WorkloadPolicyMap::WorkloadPolicyMap(Map map) : map_(std::move(map)) {
  CheckKmeshLayout(map_.info(), KM_MAP_WLPOLICY);
}

std::vector<WorkloadPolicies> WorkloadPolicyMap::Entries() const {
  std::vector<WorkloadPolicies> out;
  DumpMap(map_, [&](ByteView key, ByteView value) { out.push_back(DecodeWorkload(ReadAt<uint32_t>(key, 0), value)); });
  std::sort(out.begin(), out.end(),
            [](const WorkloadPolicies& a, const WorkloadPolicies& b) { return a.workload_id < b.workload_id; });
  return out;
}

std::optional<WorkloadPolicies> WorkloadPolicyMap::Lookup(uint32_t workload_id) const {
  auto v = map_.Lookup(ByteView(reinterpret_cast<const uint8_t*>(&workload_id), 4));
  if (!v) return std::nullopt;
  return DecodeWorkload(workload_id, *v);
}

void WorkloadPolicyMap::Put(const WorkloadPolicies& wp) const {
  if (wp.policy_ids.size() > KM_MAX_MEMBER_NUM_PER_POLICY) {
    throw Error("workload " + std::to_string(wp.workload_id) + " has " + std::to_string(wp.policy_ids.size()) +
                " policies; km_wlpolicy holds at most " + std::to_string(KM_MAX_MEMBER_NUM_PER_POLICY));
  }
  km_wl_policies v{};
  for (size_t i = 0; i < wp.policy_ids.size(); ++i) v.policy_ids[i] = wp.policy_ids[i];
  map_.Update(ByteView(reinterpret_cast<const uint8_t*>(&wp.workload_id), 4),
              ByteView(reinterpret_cast<const uint8_t*>(&v), sizeof v));
}

// --- km_authz_policy -----------------------------------------------------------------------------------

namespace {
// x86-64 offsets of Istio__Security__Authorization (kmesh-facts.md §1.3).
constexpr size_t kNameOff = 24, kNamespaceOff = 32, kScopeOff = 40, kActionOff = 44, kRulesOff = 48;
}  // namespace

std::string ToString(PolicyScope s) {
  switch (s) {
    case PolicyScope::kGlobal: return "GLOBAL";
    case PolicyScope::kNamespace: return "NAMESPACE";
    case PolicyScope::kWorkloadSelector: return "WORKLOAD_SELECTOR";
  }
  return "SCOPE(" + std::to_string(static_cast<uint32_t>(s)) + ")";
}

std::string ToString(PolicyAction a) {
  switch (a) {
    case PolicyAction::kAllow: return "ALLOW";
    case PolicyAction::kDeny: return "DENY";
  }
  return "ACTION(" + std::to_string(static_cast<uint32_t>(a)) + ")";
}

AuthzPolicyMap::AuthzPolicyMap(Map map) : map_(std::move(map)) {
  // The policy-realized barrier needs only the ids, so only the key must be Kmesh's.
  if (map_.info().key_size != 4) CheckKmeshLayout(map_.info(), KM_MAP_AUTHZ_POLICY);
  value_problem_ = KmeshLayoutProblem(map_.info(), KM_MAP_AUTHZ_POLICY);
}

std::vector<AuthzPolicy> AuthzPolicyMap::Entries() const {
  std::vector<AuthzPolicy> out;
  DumpMap(map_, [&](ByteView key, ByteView v) {
    AuthzPolicy p;
    p.policy_id = ReadAt<uint32_t>(key, 0);
    if (!value_problem_.empty() || v.size < KM_AUTHZ_POLICY_VALUE_SIZE) {
      p.decoded = false;
      out.push_back(p);
      return;
    }
    p.name_outer_key = ReadAt<uint64_t>(v, kNameOff);
    p.namespace_outer_key = ReadAt<uint64_t>(v, kNamespaceOff);
    p.scope = static_cast<PolicyScope>(ReadAt<uint32_t>(v, kScopeOff));
    p.action = static_cast<PolicyAction>(ReadAt<uint32_t>(v, kActionOff));
    p.n_rules = ReadAt<uint64_t>(v, kRulesOff);
    out.push_back(p);
  });
  std::sort(out.begin(), out.end(), [](const AuthzPolicy& a, const AuthzPolicy& b) { return a.policy_id < b.policy_id; });
  return out;
}

std::set<uint32_t> AuthzPolicyMap::PolicyIds() const {
  std::set<uint32_t> ids;
  DumpMap(map_, [&](ByteView key, ByteView) { ids.insert(ReadAt<uint32_t>(key, 0)); });
  return ids;
}

bool AuthzPolicyMap::Contains(uint32_t policy_id) const {
  return map_.Lookup(ByteView(reinterpret_cast<const uint8_t*>(&policy_id), 4)).has_value();
}

std::vector<uint8_t> EncodeAuthzPolicyValue(const AuthzPolicy& p) {
  std::vector<uint8_t> v(KM_AUTHZ_POLICY_VALUE_SIZE, 0);
  auto put = [&](size_t off, auto x) { std::memcpy(v.data() + off, &x, sizeof x); };
  put(kNameOff, p.name_outer_key);
  put(kNamespaceOff, p.namespace_outer_key);
  put(kScopeOff, static_cast<uint32_t>(p.scope));
  put(kActionOff, static_cast<uint32_t>(p.action));
  put(kRulesOff, p.n_rules);
  return v;
}

// --- km_frontend ---------------------------------------------------------------------------------------

std::array<uint8_t, 16> EncodeFrontendKey(const IpAddr& ip) {
  std::array<uint8_t, 16> key{};
  std::memcpy(key.data(), ip.data(), ip.size());
  return key;
}

FrontendMap::FrontendMap(Map map) : map_(std::move(map)) { CheckKmeshLayout(map_.info(), KM_MAP_FRONTEND); }

std::vector<Frontend> FrontendMap::Entries() const {
  std::vector<Frontend> out;
  DumpMap(map_, [&](ByteView key, ByteView v) {
    bool v4 = true;
    for (size_t i = 4; i < 16; ++i) v4 = v4 && key[i] == 0;
    out.push_back(Frontend{v4 ? IpAddr::V4(key.data) : IpAddr::V6(key.data), ReadAt<uint32_t>(v, 0)});
  });
  std::sort(out.begin(), out.end(), [](const Frontend& a, const Frontend& b) { return a.ip < b.ip; });
  return out;
}

std::optional<uint32_t> FrontendMap::Lookup(const IpAddr& ip) const {
  const auto key = EncodeFrontendKey(ip);
  auto v = map_.Lookup(ByteView(key.data(), key.size()));
  if (!v) return std::nullopt;
  return ReadAt<uint32_t>(*v, 0);
}

void FrontendMap::Put(const Frontend& f) const {
  const auto key = EncodeFrontendKey(f.ip);
  map_.Update(ByteView(key.data(), key.size()), ByteView(reinterpret_cast<const uint8_t*>(&f.upstream_id), 4));
}

}  // namespace kmesh::bpf_probe
