#include <catch2/catch.hpp>

#include <linux/bpf.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "bpf_probe/dump_json.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/json_writer.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"

using namespace kmesh::bpf_probe;
using namespace kmesh::net;
using kmesh::bpf_probe::testing::CreateMap;
using kmesh::bpf_probe::testing::TestDatapath;

namespace {

struct AuthCase {
  const char* tuple;
  Verdict verdict;
};

// IPv4 and IPv6, DENY and ALLOW, ports that read differently in each byte order.
const std::vector<AuthCase> kAuthCases = {
    {"10.244.1.5:40001 -> 10.244.2.7:8080", Verdict::kDeny},
    {"10.244.1.5:40002 -> 10.244.2.7:8080", Verdict::kAllow},
    {"10.244.3.9:51234 -> 10.244.2.7:19090", Verdict::kDeny},
    {"[fd00:10:244::5]:40001 -> [fd00:10:244::7]:8080", Verdict::kDeny},
    {"[fd00:10:244::5]:40003 -> [fd00:10:244::7]:8080", Verdict::kAllow},
};

// The same km_auth_res layout, with BTF (from the test datapath's object) and without (bpf_map_create).
Map AuthMap(bool btf, const TestDatapath& dp) {
  if (btf) return dp.map(KM_MAP_AUTH_RES);
  return CreateMap(BPF_MAP_TYPE_HASH, KM_MAP_AUTH_RES, KM_TUPLE_SIZE, 4, KM_AUTH_RES_MAX_ENTRIES, BPF_F_NO_PREALLOC);
}

}  // namespace

TEST_CASE("km_auth_res decodes exactly: IPv4 and IPv6, both port orders, DENY and ALLOW, with and without BTF") {
  for (bool btf : {true, false}) {
    for (PortOrder order : {PortOrder::kHost, PortOrder::kNetwork}) {
      CAPTURE(btf, ToString(order));
      TestDatapath dp;
      AuthResultMap auth(AuthMap(btf, dp), order);
      CHECK(auth.map().info().HasBtf() == btf);
      for (const auto& c : kAuthCases) auth.Put(*Tuple::Parse(c.tuple), c.verdict);

      const std::vector<AuthEntry> entries = auth.Entries();
      REQUIRE(entries.size() == kAuthCases.size());
      for (const auto& c : kAuthCases) {
        const Tuple t = *Tuple::Parse(c.tuple);
        auto it = std::find_if(entries.begin(), entries.end(), [&](const AuthEntry& e) { return e.tuple == t; });
        REQUIRE(it != entries.end());
        CHECK(it->verdict == c.verdict);
        CHECK(it->key == EncodeTupleKey(t, order));
        CHECK(auth.Lookup(t) == c.verdict);
        CHECK(LookupVerdict(auth.map().fd(), t, order) == c.verdict);
        CHECK(LookupVerdictById(auth.map().info().id, t, order) == c.verdict);
      }
      // The same map read with the other port order finds none of the tuples.
      const PortOrder other = order == PortOrder::kHost ? PortOrder::kNetwork : PortOrder::kHost;
      CHECK_FALSE(LookupVerdict(auth.map().fd(), *Tuple::Parse(kAuthCases[0].tuple), other).has_value());
      CHECK_FALSE(auth.Lookup(*Tuple::Parse("10.244.1.5:40009 -> 10.244.2.7:8080")).has_value());
      CHECK(auth.Erase(*Tuple::Parse(kAuthCases[0].tuple)));
      CHECK(auth.Entries().size() == kAuthCases.size() - 1);
    }
  }
}

TEST_CASE("a map named km_auth_res with another layout is refused with expected vs found and the versions") {
  Map odd = CreateMap(BPF_MAP_TYPE_HASH, KM_MAP_AUTH_RES, 16, 4, 64);
  CHECK_THROWS_WITH(AuthResultMap(std::move(odd)),
                    Catch::Contains("expected key 36 B and value 4 B, found key 16 B and value 4 B") &&
                        Catch::Contains("v1.2.0") && Catch::Contains("host order after commits 1c2ccfa2"));
  Map odd_key = CreateMap(BPF_MAP_TYPE_HASH, KM_MAP_AUTHZ_POLICY, 8, 64, 64);
  CHECK_THROWS_WITH(AuthzPolicyMap(std::move(odd_key)), Catch::Contains("found key 8 B and value 64 B"));
}

TEST_CASE("km_authz_policy with its own value layout (like a test datapath's) still yields its policy ids") {
  Map own = CreateMap(BPF_MAP_TYPE_HASH, KM_MAP_AUTHZ_POLICY, 4, 1368, 64);
  const uint32_t id = PolicyId("test-ns1", "ip-deny-policy");
  own.Update(ByteView(reinterpret_cast<const uint8_t*>(&id), 4), Bytes(1368, 0xab));
  const AuthzPolicyMap policies(std::move(own));
  CHECK_THAT(policies.value_layout_problem(), Catch::Contains("found key 4 B and value 1368 B"));
  CHECK(policies.PolicyIds() == std::set<uint32_t>{id});
  CHECK(policies.Contains(id));
  const auto entries = policies.Entries();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].policy_id == id);
  CHECK_FALSE(entries[0].decoded);
}

TEST_CASE("km_wlpolicy, km_authz_policy and km_frontend read back what was written") {
  TestDatapath dp;
  const uint32_t deny_ip = PolicyId("default", "deny-by-ip");
  const uint32_t allow_port = PolicyId("default", "allow-port");
  const uint32_t workload = WorkloadId("3f7b2b0e-1c2d-4e5f-9a8b-7c6d5e4f3a2b");

  WorkloadPolicyMap wl(dp.map(KM_MAP_WLPOLICY));
  wl.Put({workload, {deny_ip, allow_port}});
  wl.Put({7, {}});
  REQUIRE(wl.Entries().size() == 2);
  CHECK(wl.Lookup(workload)->policy_ids == std::vector<uint32_t>{deny_ip, allow_port});
  CHECK(wl.Lookup(7)->policy_ids.empty());
  CHECK_FALSE(wl.Lookup(8).has_value());
  CHECK_THROWS_WITH(wl.Put({9, {1, 2, 3, 4, 5}}), Catch::Contains("at most 4"));

  AuthzPolicyMap policies(dp.map(KM_MAP_AUTHZ_POLICY));
  const Map raw = dp.map(KM_MAP_AUTHZ_POLICY);
  for (auto [id, action] : {std::pair{deny_ip, PolicyAction::kDeny}, std::pair{allow_port, PolicyAction::kAllow}}) {
    AuthzPolicy p;
    p.policy_id = id;
    p.action = action;
    p.scope = PolicyScope::kWorkloadSelector;
    p.n_rules = 1;
    p.name_outer_key = 0x01000005;
    raw.Update(ByteView(reinterpret_cast<const uint8_t*>(&id), 4), EncodeAuthzPolicyValue(p));
  }
  CHECK(policies.PolicyIds() == std::set<uint32_t>{deny_ip, allow_port});
  CHECK(policies.Contains(deny_ip));
  CHECK_FALSE(policies.Contains(PolicyId("default", "other")));
  for (const auto& p : policies.Entries()) {
    CHECK(p.action == (p.policy_id == deny_ip ? PolicyAction::kDeny : PolicyAction::kAllow));
    CHECK(p.scope == PolicyScope::kWorkloadSelector);
    CHECK(p.n_rules == 1);
    CHECK(p.name_outer_key == 0x01000005);
  }

  FrontendMap fe(dp.map(KM_MAP_FRONTEND));
  fe.Put({*IpAddr::Parse("10.244.2.7"), workload});
  fe.Put({*IpAddr::Parse("fd00:10:244::7"), 42});
  CHECK(fe.Lookup(*IpAddr::Parse("10.244.2.7")) == workload);
  const auto all = fe.Entries();
  REQUIRE(all.size() == 2);
  CHECK(all[0].ip.ToString() == "10.244.2.7");
  CHECK(all[1].ip.ToString() == "fd00:10:244::7");
  CHECK(all[1].upstream_id == 42);
}

TEST_CASE("JSON dumps carry bpftool's raw bytes, the BTF-formatted view and Kmesh's meaning") {
  for (bool btf : {true, false}) {
    CAPTURE(btf);
    TestDatapath dp;
    AuthResultMap auth(AuthMap(btf, dp));
    const Tuple t = *Tuple::Parse("10.244.1.5:40000 -> 10.244.1.7:19090");
    auth.Put(t, Verdict::kDeny);
    std::string out;
    {
      JsonWriter w(&out);
      const DumpStats stats = WriteMapJson(auth.map(), w);
      CHECK(stats.records == 1);
      CHECK(stats.complete);
    }
    const auto j = nlohmann::json::parse(out);
    REQUIRE(j.size() == 1);
    const auto& rec = j[0];
    // The facts' example key: 0a f4 01 05 0a f4 01 07 40 9c 92 4a, then zeros.
    CHECK(rec["key"][0] == "0x0a");
    CHECK(rec["key"][8] == "0x40");
    CHECK(rec["key"][11] == "0x4a");
    CHECK(rec["key"].size() == 36);
    CHECK(rec["value"] == nlohmann::json::array({"0x01", "0x00", "0x00", "0x00"}));
    CHECK(rec["kmesh"]["tuple"] == t.ToString());
    CHECK(rec["kmesh"]["verdict"] == "DENY");
    CHECK(rec.contains("formatted") == btf);
    if (btf) {
      CHECK(rec["formatted"]["key"][""]["ipv4"]["sport"] == 40000);  // the anonymous union, as bpftool
      CHECK(rec["formatted"]["key"][""]["ipv4"]["dport"] == 19090);
      CHECK(rec["formatted"]["value"] == 1);
    }
  }
}
