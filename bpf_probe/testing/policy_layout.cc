#include "bpf_probe/testing/policy_layout.h"

#include <cstring>

#include "base/error.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe::testing {
namespace {

void PutU64(Bytes& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
void PutU32(Bytes& b, size_t off, uint32_t v) { std::memcpy(b.data() + off, &v, 4); }

}  // namespace

OuterKey PolicyLayout::Alloc(InnerMap m) {
  const uint32_t index = next_[static_cast<int>(m)]++;
  return OuterKey{(static_cast<uint64_t>(m) << 24) | index};
}

OuterKey PolicyLayout::Put(InnerMap m, Bytes value) {
  value.resize(ValueSize(m), 0);
  const OuterKey k = Alloc(m);
  mem_.PutBlob(BlobRef{m, k.index()}, std::move(value));
  return k;
}

OuterKey PolicyLayout::String(const std::string& s) { return Put(InnerMap::k192, Bytes(s.begin(), s.end())); }

OuterKey PolicyLayout::Keys(const std::vector<OuterKey>& keys) {
  Bytes b(8 * keys.size());
  for (size_t i = 0; i < keys.size(); ++i) PutU64(b, 8 * i, keys[i].raw);
  return Put(InnerMap::k1600, b);
}

Bytes PolicyLayout::Message(size_t size) { return Bytes(size, 0); }

OuterKey PolicyLayout::Ports(const std::vector<uint32_t>& v) {
  if (v.empty()) return OuterKey{};
  Bytes b(4 * v.size());
  for (size_t i = 0; i < v.size(); ++i) PutU32(b, 4 * i, v[i]);
  return Put(InnerMap::k1600, b);
}

OuterKey PolicyLayout::Strings(const std::vector<PolicyString>& v) {
  if (v.empty()) return OuterKey{};
  std::vector<OuterKey> keys;
  for (const auto& s : v) {
    Bytes m = Message(KM_PB_STRING_MATCH_SIZE);
    PutU32(m, KM_PB_STRING_MATCH_CASE, s.match_type_case);
    if (s.match_type_case != 0) PutU64(m, KM_PB_STRING_MATCH_STRING, String(s.value).raw);
    keys.push_back(Put(InnerMap::k64, m));
  }
  return Keys(keys);
}

OuterKey PolicyLayout::Addresses(const std::vector<PolicyAddress>& v) {
  if (v.empty()) return OuterKey{};
  std::vector<OuterKey> keys;
  for (const auto& a : v) {
    Bytes m = Message(KM_PB_ADDRESS_SIZE);
    PutU64(m, KM_PB_ADDRESS_LEN, a.bytes.size());
    PutU64(m, KM_PB_ADDRESS_DATA, Put(InnerMap::k64, a.bytes).raw);
    PutU32(m, KM_PB_ADDRESS_LENGTH, a.prefix);
    keys.push_back(Put(InnerMap::k64, m));
  }
  return Keys(keys);
}

OuterKey PolicyLayout::Match(const PolicyMatch& x) {
  Bytes m = Message(KM_PB_MATCH_SIZE);
  auto list = [&](size_t n_off, size_t off, size_t n, OuterKey k) {
    PutU64(m, n_off, n);
    PutU64(m, off, k.raw);
  };
  list(KM_PB_MATCH_N_NAMESPACES, KM_PB_MATCH_NAMESPACES, x.namespaces.size(), Strings(x.namespaces));
  list(KM_PB_MATCH_N_NOT_NAMESPACES, KM_PB_MATCH_NOT_NAMESPACES, x.not_namespaces.size(),
       Strings(x.not_namespaces));
  list(KM_PB_MATCH_N_PRINCIPALS, KM_PB_MATCH_PRINCIPALS, x.principals.size(), Strings(x.principals));
  list(KM_PB_MATCH_N_NOT_PRINCIPALS, KM_PB_MATCH_NOT_PRINCIPALS, x.not_principals.size(),
       Strings(x.not_principals));
  list(KM_PB_MATCH_N_SOURCE_IPS, KM_PB_MATCH_SOURCE_IPS, x.source_ips.size(), Addresses(x.source_ips));
  list(KM_PB_MATCH_N_NOT_SOURCE_IPS, KM_PB_MATCH_NOT_SOURCE_IPS, x.not_source_ips.size(),
       Addresses(x.not_source_ips));
  list(KM_PB_MATCH_N_DESTINATION_IPS, KM_PB_MATCH_DESTINATION_IPS, x.destination_ips.size(),
       Addresses(x.destination_ips));
  list(KM_PB_MATCH_N_NOT_DESTINATION_IPS, KM_PB_MATCH_NOT_DESTINATION_IPS, x.not_destination_ips.size(),
       Addresses(x.not_destination_ips));
  list(KM_PB_MATCH_N_DESTINATION_PORTS, KM_PB_MATCH_DESTINATION_PORTS, x.destination_ports.size(),
       Ports(x.destination_ports));
  list(KM_PB_MATCH_N_NOT_DESTINATION_PORTS, KM_PB_MATCH_NOT_DESTINATION_PORTS, x.not_destination_ports.size(),
       Ports(x.not_destination_ports));
  return Put(InnerMap::k192, m);
}

OuterKey PolicyLayout::Clause(const PolicyClause& c) {
  Bytes m = Message(KM_PB_CLAUSE_SIZE);
  std::vector<OuterKey> keys;
  for (const auto& x : c.matches) keys.push_back(Match(x));
  PutU64(m, KM_PB_CLAUSE_N_MATCHES, keys.size());
  if (!keys.empty()) PutU64(m, KM_PB_CLAUSE_MATCHES, Keys(keys).raw);
  return Put(InnerMap::k64, m);
}

OuterKey PolicyLayout::Rule(const PolicyRule& r) {
  Bytes m = Message(KM_PB_RULE_SIZE);
  std::vector<OuterKey> keys;
  for (const auto& c : r.clauses) keys.push_back(Clause(c));
  PutU64(m, KM_PB_RULE_N_CLAUSES, keys.size());
  if (!keys.empty()) PutU64(m, KM_PB_RULE_CLAUSES, Keys(keys).raw);
  return Put(InnerMap::k64, m);
}

void PolicyLayout::Write(uint32_t key, const DecodedPolicy& p) {
  Bytes v(KM_AUTHZ_POLICY_VALUE_SIZE, 0);
  PutU64(v, KM_PB_AUTHZ_NAME, String(p.name).raw);
  PutU64(v, KM_PB_AUTHZ_NAMESPACE, String(p.ns).raw);
  PutU32(v, KM_PB_AUTHZ_SCOPE, p.scope_raw);
  PutU32(v, KM_PB_AUTHZ_ACTION, p.action_raw);
  std::vector<OuterKey> keys;
  for (const auto& r : p.rules) keys.push_back(Rule(r));
  PutU64(v, KM_PB_AUTHZ_N_RULES, keys.size());
  if (!keys.empty()) PutU64(v, KM_PB_AUTHZ_RULES, Keys(keys).raw);
  mem_.PutPolicy(key, v);
}

std::optional<uint32_t> InMemoryXdpMaps::AuthResult(const TupleKey& key) {
  auto it = auth_res.find(key);
  return it == auth_res.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

std::optional<uint32_t> InMemoryXdpMaps::Frontend(const std::array<uint8_t, 16>& key) {
  auto it = frontend.find(key);
  return it == frontend.end() ? std::nullopt : std::optional<uint32_t>(it->second);
}

std::optional<std::vector<uint32_t>> InMemoryXdpMaps::WorkloadPolicies(uint32_t workload) {
  auto it = wlpolicy.find(workload);
  if (it == wlpolicy.end()) return std::nullopt;
  return std::vector<uint32_t>(it->second.begin(), it->second.end());
}

PolicyAddress Cidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  if (slash == std::string::npos) throw Error("Cidr(\"" + cidr + "\"): expected ADDRESS/PREFIX");
  PolicyAddress a;
  a.bytes = IpAddr::Parse(cidr.substr(0, slash))->ToBytes();
  a.prefix = static_cast<uint32_t>(std::stoul(cidr.substr(slash + 1)));
  return a;
}

PolicyString Exact(const std::string& v) {
  PolicyString s;
  s.kind = PolicyString::Kind::kExact;
  s.match_type_case = KM_PB_STRING_MATCH_EXACT;
  s.value = v;
  return s;
}

}  // namespace kmesh::bpf_probe::testing
