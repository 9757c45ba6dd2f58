// `kmesh-mapdump explain` against Kmesh's real XDP verdicts. Kmesh's own XDP object (all four programs, tail
// calls filled as Kmesh fills them) in a private bpffs, policies written by Kmesh's C deserializer through a
// kmesh-lab-daemon (e2e/conformance KmeshXdpUnderTest); cases from the conformance generator. For each (case,
// connection): bpf_probe::ExplainXdp reads the maps (read-only) and predicts the action, the km_auth_res
// entry XDP writes and the km_tcargs state it leaves; then one BPF_PROG_TEST_RUN of xdp_authz on the
// connection's SYN says what Kmesh did. Every prediction must match. Some connections get a verdict cached in
// km_auth_res first, which explain must report as the decision.
//
//   KMESH_E2E_EXPLAIN_PAIRS   how many (policy set, connection) pairs to judge (default 2000)
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <map>

#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/xdp_explain.h"
#include "e2e/conformance/generator.h"
#include "e2e/conformance/kmesh_xdp.h"

namespace bp = kmesh::bpf_probe;
namespace kc = kmesh::conformance;

namespace {

uint64_t PairsWanted() {
  const char* s = std::getenv("KMESH_E2E_EXPLAIN_PAIRS");
  return s != nullptr && *s != '\0' ? std::strtoull(s, nullptr, 10) : 2000;
}

}  // namespace

TEST_CASE(
    "explain agrees with Kmesh's xdp_authz (BPF_PROG_TEST_RUN) on "
    "generated policies and connections") {
  kc::KmeshXdpUnderTest node("/tmp");
  const bp::MapCatalog catalog = bp::MapCatalog::FromPinDir(node.pin_dir());
  bp::LiveXdpMaps maps(catalog);
  const bp::AuthResultMap auth(catalog.Open(KM_MAP_AUTH_RES));
  const uint64_t wanted = PairsWanted();

  kc::GeneratorOptions opts;
  opts.connections = 48;
  uint64_t pairs = 0, cached = 0, misses = 0, assumed = 0;
  std::map<std::string, uint64_t> outcomes, defects;
  for (uint64_t i = 0; pairs < wanted; ++i) {
    const kc::Case c = kc::Generate(kc::CaseSeed(/*run_seed=*/19, i), opts);
    const kc::Written w = node.Write(c);
    maps.Forget();
    for (size_t ci = 0; ci < c.connections.size(); ++ci) {
      const kmesh::net::Tuple& t = c.connections[ci].tuple;
      // Every 10th connection finds a verdict cached for its tuple (as after a DENY, or userspace's deny).
      std::optional<bp::Verdict> put;
      if (ci % 10 == 3) {
        put = ci % 20 == 3 ? bp::Verdict::kDeny : bp::Verdict::kAllow;
        auth.Put(t, *put);
      }
      const bp::XdpExplanation e = bp::ExplainXdp(t, maps);
      const kc::Observation k = node.Run(c.connections[ci]);
      ++pairs;
      cached += put.has_value();
      const std::string by = e.writes_auth_res                                      ? "a policy match"
                             : e.decided_by.find("(no rules)") != std::string::npos ? "a policy without rules"
                                                                                    : e.decided_by;
      ++outcomes[put ? "cached " + bp::ToString(*put) : e.Outcome() + " by " + by];
      for (const auto& d : e.defects) ++defects[d];
      const bool agrees = e.Agrees(k.action, k.auth_res, k.tcargs);
      assumed += e.assumed_past_slots;
      if (!agrees) {
        ++misses;
        if (misses <= 5) {
          INFO("case seed " << c.seed << ", connection " << ci << " " << t.ToString()
                            << "\nKmesh: " << k.ToString() << "\n"
                            << node.DescribeMaps(w) << "\n"
                            << bp::FormatExplanation(e));
          CHECK(agrees);
        }
      }
      if (put) CHECK(e.cached == put);
    }
    node.Undo(w);
    if (node.cases_since_reset() >= 100) node.Reset();
  }
  std::cout << "explain vs Kmesh's xdp_authz: " << pairs << " pairs (" << cached
            << " with a cached verdict), " << misses << " disagreements, " << assumed
            << " read past km_wlpolicy's slots\n";
  for (const auto& [o, n] : outcomes) std::cout << "  " << n << "  " << o << "\n";
  std::cout << "  defects on the paths:";
  for (const auto& [d, n] : defects) std::cout << " " << d << "=" << n;
  std::cout << std::endl;
  CHECK(pairs >= 1000);
  CHECK(misses == 0);
  // The run reached what explain must get right: drops, passes, deferrals and policy matches.
  CHECK(outcomes.size() >= 5);
}
