// Test-only: lays a policy out in a PolicyMemorySnapshot the way Kmesh's deserializer lays it out in the
// kernel (deserialization_to_bpf_map.c:530-652: strings in kmesh_map192, messages in the smallest inner map
// they fit, repeated fields as kmesh_map1600 arrays, indexes handed out from 1 upward per inner map), so
// unit tests can decode and explain policies without a kernel. The kernel tests check the decoder against
// Kmesh's own deserializer; this layout is only for the unit tier's golden files.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>

#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/xdp_explain.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe::testing {

class PolicyLayout {
 public:
  explicit PolicyLayout(PolicyMemorySnapshot& memory) : mem_(memory) {}
  // Writes `p` (its name, ns, scope_raw, action_raw and rules; n_rules is taken from rules) under `key`.
  void Write(uint32_t key, const DecodedPolicy& p);

 private:
  OuterKey Alloc(InnerMap m);
  OuterKey Put(InnerMap m, Bytes value);
  OuterKey String(const std::string& s);
  OuterKey Keys(const std::vector<OuterKey>& keys);
  Bytes Message(size_t size);
  OuterKey Rule(const PolicyRule& r);
  OuterKey Clause(const PolicyClause& c);
  OuterKey Match(const PolicyMatch& m);
  OuterKey Strings(const std::vector<PolicyString>& v);
  OuterKey Addresses(const std::vector<PolicyAddress>& v);
  OuterKey Ports(const std::vector<uint32_t>& v);

  PolicyMemorySnapshot& mem_;
  uint32_t next_[KM_INNER_MAP_COUNT] = {1, 1, 1, 1};
};

// km_auth_res, km_frontend and km_wlpolicy held in memory, over a policy snapshot.
class InMemoryXdpMaps final : public XdpMaps {
 public:
  std::map<net::TupleKey, uint32_t> auth_res;
  std::map<std::array<uint8_t, 16>, uint32_t> frontend;
  std::map<uint32_t, std::array<uint32_t, 4>> wlpolicy;
  PolicyMemorySnapshot memory;

  std::optional<uint32_t> AuthResult(const net::TupleKey& key) override;
  std::optional<uint32_t> Frontend(const std::array<uint8_t, 16>& key) override;
  std::optional<std::vector<uint32_t>> WorkloadPolicies(uint32_t workload) override;
  PolicyMemory& policies() override { return memory; }
};

// Shorthands for building policies in tests.
PolicyAddress Cidr(const std::string& cidr);  // "10.0.0.1/32"
PolicyString Exact(const std::string& v);

}  // namespace kmesh::bpf_probe::testing
