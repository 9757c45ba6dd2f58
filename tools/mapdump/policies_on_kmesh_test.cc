// `kmesh-mapdump policies` and `explain` on the maps Kmesh's own deserializer wrote (e2e/conformance
// KmeshXdpUnderTest: Kmesh's XDP object in a private bpffs, a kmesh-lab-daemon running
// bpf/deserialization_to_bpf_map): every generated policy decodes to exactly the Authorization that was
// written, field by field, with no broken link; the command line prints them and explains a connection the
// way Kmesh's xdp_authz then decides it.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "base/runfiles.h"
#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/maps.h"
#include "e2e/conformance/generator.h"
#include "e2e/conformance/kmesh_xdp.h"
#include "e2e/lab/workload_authz.h"
#include "netns/process.h"

namespace bp = kmesh::bpf_probe;
namespace kc = kmesh::conformance;
namespace wa = kmesh::lab::workloadapi;

namespace {

bool Same(const bp::PolicyString& d, const wa::StringMatch& w) {
  using K = wa::StringMatch::Kind;
  switch (w.kind) {
    case K::kExact:
      return d.kind == bp::PolicyString::Kind::kExact && d.value == w.value;
    case K::kPrefix:
      return d.kind == bp::PolicyString::Kind::kPrefix && d.value == w.value;
    case K::kSuffix:
      return d.kind == bp::PolicyString::Kind::kSuffix && d.value == w.value;
    // istiod's presence has no field in Kmesh's proto: it arrives, and is stored, with no match type.
    case K::kUnset:
    case K::kPresence:
      return d.kind == bp::PolicyString::Kind::kUnset;
  }
  return false;
}

template <typename D, typename W, typename F>
bool SameList(const std::vector<D>& d, const std::vector<W>& w, F same) {
  if (d.size() != w.size()) return false;
  for (size_t i = 0; i < d.size(); ++i) {
    if (!same(d[i], w[i])) return false;
  }
  return true;
}

bool SameAddress(const bp::PolicyAddress& d, const wa::Address& w) {
  return d.broken.empty() && d.bytes == w.bytes && d.prefix == w.length;
}

bool SameMatch(const bp::PolicyMatch& d, const wa::Match& w) {
  auto s = [](const bp::PolicyString& a, const wa::StringMatch& b) { return Same(a, b); };
  return d.broken.empty() && SameList(d.namespaces, w.namespaces, s) &&
         SameList(d.not_namespaces, w.not_namespaces, s) && SameList(d.principals, w.principals, s) &&
         SameList(d.not_principals, w.not_principals, s) &&
         SameList(d.source_ips, w.source_ips, SameAddress) &&
         SameList(d.not_source_ips, w.not_source_ips, SameAddress) &&
         SameList(d.destination_ips, w.destination_ips, SameAddress) &&
         SameList(d.not_destination_ips, w.not_destination_ips, SameAddress) &&
         d.destination_ports == w.destination_ports && d.not_destination_ports == w.not_destination_ports;
}

bool SamePolicy(const bp::DecodedPolicy& d, const wa::Authorization& w) {
  if (d.name != w.name || d.ns != w.ns || d.scope_raw != static_cast<uint32_t>(w.scope) ||
      d.action_raw != static_cast<uint32_t>(w.action) || d.n_rules != w.rules.size() ||
      d.rules.size() != w.rules.size())
    return false;
  for (size_t r = 0; r < w.rules.size(); ++r) {
    const auto& dc = d.rules[r].clauses;
    const auto& wc = w.rules[r].clauses;
    if (dc.size() != wc.size()) return false;
    for (size_t c = 0; c < wc.size(); ++c) {
      if (!SameList(dc[c].matches, wc[c].matches, SameMatch)) return false;
    }
  }
  return true;
}

kmesh::netns::ProcessResult Mapdump(std::vector<std::string> args) {
  args.insert(args.begin(), kmesh::Runfile("tools/mapdump/kmesh-mapdump"));
  return kmesh::netns::Run(args);
}

}  // namespace

TEST_CASE("policies: every policy Kmesh's deserializer wrote decodes to what was written") {
  kc::KmeshXdpUnderTest node("/tmp");
  size_t policies = 0, cut = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    const kc::Case c = kc::Generate(kc::CaseSeed(/*run_seed=*/23, i));
    const kc::Written w = node.Write(c);
    bp::LivePolicyMemory mem(bp::MapCatalog::FromPinDir(node.pin_dir()));
    for (const auto& [resource, p] : w.policies) {
      INFO("case seed " << c.seed << ", policy " << resource << " (id " << p.policy_id << ")");
      if (p.stored_key != p.policy_id) {
        // D8: stored under what strncpy left of the id, maybe replaced by another cut-down policy.
        CHECK(bp::StrncpyKey(p.policy_id) == p.stored_key);
        ++cut;
        continue;
      }
      const auto value = mem.Policy(p.stored_key);
      REQUIRE(value);
      const bp::DecodedPolicy d = bp::DecodePolicy(p.stored_key, *value, mem);
      INFO("decoded: " << d.Resource() << ", problems: " << (d.problems.empty() ? "" : d.problems[0]));
      CHECK(d.problems.empty());
      CHECK(d.IdOfName() == d.key);
      CHECK(SamePolicy(d, p.authorization));
      ++policies;
    }
    node.Undo(w);
  }
  CHECK(policies > 100);
  INFO(cut << " policies stored under a cut-down key (D8) were skipped");
}

TEST_CASE(
    "kmesh-mapdump policies and explain on Kmesh's maps: the rules as written, the verdict as Kmesh's") {
  kc::KmeshXdpUnderTest node("/tmp");
  const kc::Case c = kc::Generate(kc::CaseSeed(23, 3));
  const kc::Written w = node.Write(c);
  const auto r = Mapdump({"--pin-dir", node.pin_dir(), "policies", "--json"});
  INFO(r.err);
  REQUIRE(r.ok());
  const auto j = nlohmann::json::parse(r.out);
  size_t with_rules = 0;
  for (const auto& p : j["policies"]) {
    INFO(p.dump());
    CHECK(p["problems"].empty());
    const std::string resource = p["namespace"].get<std::string>() + "/" + p["name"].get<std::string>();
    REQUIRE(w.policies.count(resource) == 1);
    CHECK(p["rules"].size() == w.policies.at(resource).authorization.rules.size());
    with_rules += !p["rules"].empty();
  }
  CHECK(with_rules > 0);
  const auto text = Mapdump({"--pin-dir", node.pin_dir(), "policies"});
  REQUIRE(text.ok());
  for (const auto& [resource, p] : w.policies) {
    if (p.stored_key == p.policy_id) CHECK_THAT(text.out, Catch::Contains("\n" + resource + ":\n"));
  }
  // explain on each connection of the case, then Kmesh's xdp_authz on its SYN.
  for (const auto& conn : c.connections) {
    const kmesh::net::Tuple& t = conn.tuple;
    const auto ex = Mapdump(
        {"--pin-dir", node.pin_dir(), "explain", "--json",
         t.src.ToString(), t.dst.ToString()});
    INFO(t.ToString() << ": " << ex.err);
    REQUIRE(ex.ok());
    const auto e = nlohmann::json::parse(ex.out);
    const kc::Observation k = node.Run(conn);
    INFO(e.dump(1) << "\nKmesh: " << k.ToString());
    if (!e["assumed_past_slots"].get<bool>()) CHECK(e["action"] == "XDP_" + bp::ToString(k.action));
  }
  node.Undo(w);
}
