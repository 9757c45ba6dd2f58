// DecodePolicy on policies laid out like Kmesh's deserializer lays them out (testing/policy_layout.h):
// everything written is read back, and every way the chain of outer keys can break is reported where it
// breaks, with nothing guessed past it. Kmesh's own deserializer is checked in the kernel tier
// (//tools/mapdump:mapdump_policies_test).
#include "bpf_probe/kmesh_policy.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "bpf_probe/fnv.h"
#include "bpf_probe/testing/policy_layout.h"

using namespace kmesh::bpf_probe;
using kmesh::bpf_probe::testing::Cidr;
using kmesh::bpf_probe::testing::Exact;
using kmesh::bpf_probe::testing::PolicyLayout;

namespace {

DecodedPolicy Sample() {
  DecodedPolicy p;
  p.name = "deny-by-ip";
  p.ns = "test-ns1";
  p.scope_raw = 2;
  p.action_raw = 1;
  PolicyMatch from;
  from.source_ips = {Cidr("10.244.1.5/32"), Cidr("fd00::/64")};
  from.not_namespaces = {Exact("kube-system")};
  PolicyMatch to;
  to.destination_ports = {8080, 9090};
  to.not_destination_ports = {22};
  PolicyRule r;
  r.clauses = {PolicyClause{{to}, ""}, PolicyClause{{from}, ""}};
  p.rules = {r, PolicyRule{}};
  return p;
}

}  // namespace

TEST_CASE("DecodePolicy reads back every field of a policy laid out like Kmesh's") {
  PolicyMemorySnapshot mem;
  PolicyLayout(mem).Write(PolicyId("test-ns1", "deny-by-ip"), Sample());
  const auto all = DecodePolicies(mem);
  REQUIRE(all.size() == 1);
  const DecodedPolicy& d = all[0];
  CHECK(d.problems.empty());
  CHECK(d.Resource() == "test-ns1/deny-by-ip");
  CHECK(d.IdOfName() == d.key);
  CHECK(d.scope() == PolicyScope::kWorkloadSelector);
  CHECK(d.action() == PolicyAction::kDeny);
  REQUIRE(d.rules.size() == 2);
  CHECK(d.n_rules == 2);
  REQUIRE(d.rules[0].clauses.size() == 2);
  CHECK(d.rules[1].clauses.empty());
  const PolicyMatch& to = d.rules[0].clauses[0].matches.at(0);
  CHECK(to.destination_ports == std::vector<uint32_t>{8080, 9090});
  CHECK(to.not_destination_ports == std::vector<uint32_t>{22});
  const PolicyMatch& from = d.rules[0].clauses[1].matches.at(0);
  REQUIRE(from.source_ips.size() == 2);
  CHECK(from.source_ips[0].ToString() == "10.244.1.5/32");
  CHECK(from.source_ips[1].ToString() == "fd00::/64");
  REQUIRE(from.not_namespaces.size() == 1);
  CHECK(from.not_namespaces[0].ToString() == "kube-system");
  // name, namespace, rules array, 2 rules, 2 clause arrays... every blob written is reached.
  CHECK(d.blobs.size() == mem.blobs().size());
}

TEST_CASE("DecodePolicy reports a broken chain where it breaks and guesses nothing past it") {
  const uint32_t key = PolicyId("test-ns1", "deny-by-ip");
  auto fresh = [&] {
    PolicyMemorySnapshot mem;
    PolicyLayout(mem).Write(key, Sample());
    return mem;
  };
  SECTION("a missing clause blob") {
    PolicyMemorySnapshot mem = fresh();
    // The second clause of rule 0 (the layout hands out kmesh_map64 indexes children first: 1 the `to`
    // clause, 2-6 the `from` match's string match and addresses, 7 the `from` clause).
    const BlobRef clause{InnerMap::k64, 7};
    PolicyMemorySnapshot broken;
    for (const auto& [ref, v] : mem.blobs()) {
      if (!(ref == clause)) broken.PutBlob(ref, v);
    }
    broken.PutPolicy(key, *mem.Policy(key));
    const DecodedPolicy d = DecodePolicies(broken)[0];
    REQUIRE(d.problems.size() == 1);
    CHECK(d.problems[0] == "rules[0].clauses[1]: kmesh_map64[7] is missing (a Clause)");
    REQUIRE(d.rules[0].clauses.size() == 2);
    CHECK(d.rules[0].clauses[1].broken == d.problems[0]);
    CHECK(d.rules[0].clauses[1].matches.empty());
    CHECK(d.rules[0].clauses[0].broken.empty());
  }
  SECTION("a key naming the wrong inner map, and a blob of the wrong size") {
    PolicyMemorySnapshot mem = fresh();
    Bytes v = *mem.Policy(key);
    uint64_t rules;
    std::memcpy(&rules, v.data() + KM_PB_AUTHZ_RULES, 8);
    const uint64_t wrong = (rules & 0xffffff) | (uint64_t{KM_INNER_MAP_296} << 24);
    std::memcpy(v.data() + KM_PB_AUTHZ_RULES, &wrong, 8);
    mem.PutPolicy(key, v);
    DecodedPolicy d = DecodePolicies(mem)[0];
    REQUIRE(d.problems.size() == 1);
    CHECK_THAT(d.problems[0], Catch::StartsWith("rules: outer key names kmesh_map296["));
    CHECK_THAT(d.problems[0], Catch::Contains("lives in kmesh_map1600"));
    CHECK(d.rules.empty());

    PolicyMemorySnapshot short_name = fresh();
    uint64_t name;
    std::memcpy(&name, short_name.Policy(key)->data() + KM_PB_AUTHZ_NAME, 8);
    short_name.PutBlob(BlobRef{InnerMap::k192, static_cast<uint32_t>(name & 0xffffff)}, Bytes(64, 'x'));
    d = DecodePolicies(short_name)[0];
    REQUIRE(!d.problems.empty());
    CHECK(d.problems[0] ==
          "name: kmesh_map192[" + std::to_string(name & 0xffffff) + "] is 64 bytes, expected 192");
    CHECK(d.Resource() == "key " + std::to_string(key));
  }
  SECTION("a value that is not Kmesh's 64-byte Authorization") {
    PolicyMemorySnapshot mem;
    mem.PutPolicy(7, Bytes(16, 1));
    const DecodedPolicy d = DecodePolicies(mem)[0];
    REQUIRE(d.problems.size() == 1);
    CHECK_THAT(d.problems[0], Catch::Contains("16 bytes"));
  }
  SECTION("inner maps absent from the source") {
    PolicyMemorySnapshot mem = fresh();
    mem.SetHasInnerMap(InnerMap::k192, false);
    const DecodedPolicy d = DecodePolicies(mem)[0];
    CHECK_THAT(d.problems.at(0), Catch::Contains("kmesh_map192 is not among the maps read"));
  }
}

TEST_CASE("StrncpyKey: the bytes of an id up to its first zero byte (D8)") {
  CHECK(StrncpyKey(0x11223344u) == 0x11223344u);
  CHECK(StrncpyKey(0x11003344u) == 0x00003344u);  // little-endian: bytes 44 33 00 11 -> 44 33 00 00
  CHECK(StrncpyKey(0x44332200u) == 0u);
}
