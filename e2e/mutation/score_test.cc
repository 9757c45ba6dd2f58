// The scoring rules of e2e/mutation on hand-made runs: caught means a selected case failed with the
// fault's code; anything else (another code, a passing control that was not there, a case that never ran,
// a mutant the lab never loaded) is not a kill.
#include "e2e/mutation/score.h"

#include <catch2/catch.hpp>

#include "e2e/mutation/faults.h"

namespace kmesh::mutation {
namespace {

const char* const kCase = "authz/ip-deny: selected client";
const char* const kOther = "authz/ip-deny: other client";

FaultSpec Mutant() {
  FaultSpec f;
  f.id = "deny-match-passes";
  f.kind = FaultKind::kSource;
  f.what = "a DENY match passes";
  f.kmesh_source = "authz.h:675";
  f.cases = {kCase};
  f.codes = {"syn_not_dropped"};
  return f;
}

CaseResult Result(const std::string& name, bool passed, std::vector<std::string> codes,
                  const std::string& run, const std::string& object) {
  CaseResult c;
  c.name = name;
  c.passed = passed;
  c.codes = std::move(codes);
  c.fault_run = run;
  c.datapath_object = object;
  return c;
}

SuiteRun Run(std::vector<CaseResult> cases, int exit_code = 1) {
  SuiteRun r;
  r.id = "deny-match-passes";
  r.exit_code = exit_code;
  r.cases = std::move(cases);
  return r;
}

const std::string kMutantObject = "e2e/mutation/xdp_deny-match-passes.o";

TEST_CASE("a selected case failing with the fault's code kills it", "[mutation]") {
  const FaultSpec f = Mutant();
  auto s = ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, f.id, kMutantObject)}), true);
  CHECK(s.status == FaultStatus::kKilled);
  REQUIRE(s.caught_by.size() == 1);
  CHECK(s.caught_by[0].case_name == kCase);
  CHECK(s.caught_by[0].codes == std::vector<std::string>{"syn_not_dropped"});
}

TEST_CASE("a failure with another code is not a kill", "[mutation]") {
  const FaultSpec f = Mutant();
  auto s = ScoreFault(f, Run({Result(kCase, false, {"verdict_entry_missing"}, f.id, kMutantObject)}), true);
  CHECK(s.status == FaultStatus::kSurvived);
  CHECK(s.missing_codes == std::vector<std::string>{"syn_not_dropped"});
  REQUIRE(s.other_failures.size() == 1);
  CHECK(s.detail.find("verdict_entry_missing") != std::string::npos);
}

TEST_CASE("a failure without any code (an exception, a timeout) is not a kill", "[mutation]") {
  const FaultSpec f = Mutant();
  CHECK(ScoreFault(f, Run({Result(kCase, false, {}, f.id, kMutantObject)}), true).status ==
        FaultStatus::kSurvived);
}

TEST_CASE("the code must come from a selected case", "[mutation]") {
  const FaultSpec f = Mutant();
  auto run = Run({Result(kCase, true, {}, f.id, kMutantObject),
                  Result(kOther, false, {"syn_not_dropped"}, f.id, kMutantObject)});
  CHECK(ScoreFault(f, run, true).status == FaultStatus::kSurvived);
}

TEST_CASE("every code the fault names must be shown", "[mutation]") {
  FaultSpec f = Mutant();
  f.codes = {"syn_not_dropped", "verdict_entry_missing"};
  auto s = ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, f.id, kMutantObject)}), true);
  CHECK(s.status == FaultStatus::kSurvived);
  CHECK(s.missing_codes == std::vector<std::string>{"verdict_entry_missing"});
}

TEST_CASE("nothing is scored when the control did not pass", "[mutation]") {
  const FaultSpec f = Mutant();
  auto s = ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, f.id, kMutantObject)}), false);
  CHECK(s.status == FaultStatus::kNotScored);
  CHECK(FormatScore({s}, false).find("not scored") != std::string::npos);
}

TEST_CASE("a mutant the lab never ran is not loaded, not killed", "[mutation]") {
  const FaultSpec f = Mutant();
  SuiteRun run = Run({});
  run.log = "lab: loading Kmesh's XDP datapath on node1: ... the verifier said: R1 invalid mem access\n";
  auto s = ScoreFault(f, run, true);
  CHECK(s.status == FaultStatus::kNotLoaded);
  CHECK(s.detail.find("invalid mem access") != std::string::npos);
}

TEST_CASE("a sockops mutant is checked against the sockops object the lab loaded", "[mutation]") {
  FaultSpec f = Mutant();
  f.program = Program::kSockops;
  CHECK(f.object() == "e2e/mutation/sockops_deny-match-passes.o");
  CHECK(f.inject_env() == "KMESH_E2E_LAB_SOCKOPS_OBJECT=e2e/mutation/sockops_deny-match-passes.o");
  CaseResult c = Result(kCase, false, {"syn_not_dropped"}, f.id, "third_party/kmesh/xdp.o");
  CHECK(ScoreFault(f, Run({c}), true).status == FaultStatus::kNoResult);  // the lab ran Kmesh's sockops
  c.sockops_object = f.object();
  CHECK(ScoreFault(f, Run({c}), true).status == FaultStatus::kKilled);
}

TEST_CASE("bundles of another object or another run do not count", "[mutation]") {
  const FaultSpec f = Mutant();
  CHECK(ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, f.id, "third_party/kmesh/xdp.o")}), true)
            .status == FaultStatus::kNoResult);
  CHECK(ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, "control", kMutantObject)}), true)
            .status == FaultStatus::kNoResult);
}

TEST_CASE("a patch that compiles to Kmesh's own object is not a mutant", "[mutation]") {
  const FaultSpec f = Mutant();
  const CaseResult c = Result(kCase, false, {"syn_not_dropped"}, f.id, kMutantObject);
  CHECK(ScoreFault(f, Run({c}), true, "40f5830c", "40f5830c").status == FaultStatus::kSameObject);
  CHECK(ScoreFault(f, Run({c}), true, "7e95f94a", "40f5830c").status == FaultStatus::kKilled);
}

TEST_CASE("an equivalent mutant must survive, and stays out of the score", "[mutation]") {
  FaultSpec f = Mutant();
  f.equivalent = "no case can tell it apart";
  auto survived = ScoreFault(f, Run({Result(kCase, true, {}, f.id, kMutantObject)}), true);
  CHECK(survived.status == FaultStatus::kEquivalent);
  CHECK(AsExpected(survived.status));
  // Any failure of a selected case refutes the claim, whatever its code.
  auto refuted = ScoreFault(f, Run({Result(kCase, false, {"deny_cached"}, f.id, kMutantObject)}), true);
  CHECK(refuted.status == FaultStatus::kNotEquivalent);
  CHECK_FALSE(AsExpected(refuted.status));
  const FaultSpec g = Mutant();
  auto killed = ScoreFault(g, Run({Result(kCase, false, {"syn_not_dropped"}, g.id, kMutantObject)}), true);
  CHECK(FormatScore({killed, survived}, true) ==
        "mutation score: killed 1 / 1 (1 equivalent mutant run, not counted)");
}

TEST_CASE("a known survivor counts as not killed, and a kill of it says the row is stale", "[mutation]") {
  FaultSpec f = Mutant();
  f.survivor = "no case runs the path it changes";
  auto survived = ScoreFault(f, Run({Result(kCase, true, {}, f.id, kMutantObject)}), true);
  CHECK(survived.status == FaultStatus::kKnownSurvivor);
  CHECK(AsExpected(survived.status));
  CHECK(FormatScore({survived}, true) == "mutation score: killed 0 / 1, 1 known survivor");
  auto killed = ScoreFault(f, Run({Result(kCase, false, {"syn_not_dropped"}, f.id, kMutantObject)}), true);
  CHECK(killed.status == FaultStatus::kSurvivorKilled);
  CHECK_FALSE(AsExpected(killed.status));
}

TEST_CASE("a timed-out or incomplete run has no result", "[mutation]") {
  FaultSpec f = Mutant();
  f.kind = FaultKind::kRuntime;
  SuiteRun run = Run({});
  CHECK(ScoreFault(f, run, true).status == FaultStatus::kNoResult);
  run.timed_out = true;
  CHECK(ScoreFault(f, run, true).status == FaultStatus::kNoResult);
}

TEST_CASE("the control passes only when every selected case ran and passed", "[mutation]") {
  SuiteRun control = Run({Result(kCase, true, {}, "control", "")}, 0);
  CHECK(JudgeControl(control, {kCase}).passed);
  CHECK_FALSE(JudgeControl(control, {kCase, kOther}).passed);  // kOther never ran
  control.cases[0].passed = false;
  CHECK_FALSE(JudgeControl(control, {kCase}).passed);
  control.cases[0].passed = true;
  control.exit_code = 1;
  CHECK_FALSE(JudgeControl(control, {kCase}).passed);
}

TEST_CASE("a TEST_CASE's bundle is found by its short title", "[mutation]") {
  SuiteRun run = Run({Result("authz/remove-restores-access", false, {}, "x", "")});
  CHECK(run.Find("authz/remove-restores-access: a new connection after the DENY is removed") != nullptr);
  CHECK(run.Find("authz/remove-restores") == nullptr);
}

TEST_CASE("a bundle's codes, object and run are read", "[mutation]") {
  auto c = ParseBundle(
      {{"suite", "authz"},
       {"title", "ip-deny: selected client"},
       {"passed", false},
       {"disagreements", {"syn_not_dropped"}},
       {"failures", {"[selected client] sleep-a -> httpbin\n  expected: ..."}},
       {"datapath",
        {{"object", kMutantObject},
         {"object_sha256", "7e95f94a"},
         {"sockops_object", "third_party/kmesh/sockops.o"},
         {"patches", {"deny-match-passes.patch"}},
         {"nodes",
          {{"node1", {{"programs", {{{"name", "policy_check"}, {"verified_insns", 976001}}}}}},
           {"node2", {{"programs", {{{"name", "policy_check"}, {"verified_insns", 976002}}}}}}}}}},
       {"fault_run", "deny-match-passes"}});
  CHECK(c.name == kCase);
  CHECK_FALSE(c.passed);
  CHECK(c.codes == std::vector<std::string>{"syn_not_dropped"});
  CHECK(c.first_failure == "[selected client] sleep-a -> httpbin");
  CHECK(c.datapath_object == kMutantObject);
  CHECK(c.object_sha256 == "7e95f94a");
  CHECK(c.sockops_object == "third_party/kmesh/sockops.o");
  CHECK(c.policy_check_insns == 976002);
  CHECK(c.fault_run == "deny-match-passes");
}

TEST_CASE("an IPsec bundle is found by its case's evidence folder, and a tc mutant by its digest",
          "[mutation]") {
  const std::string name = "ipsec: connectivity across nodes is encrypted in Kmesh's layout";
  CaseResult c = ParseBundle(
      {{"suite", "ipsec"},
       {"title", "connectivity"},
       {"passed", false},
       {"disagreements", {"mark_missing", "plaintext_on_wire"}},
       {"marking",
        {{{"node", "node1"},
          {"marking", {{"loaded", {{{"name", "tc_mark_encrypt"}, {"object_sha256", "91424f5f"}}}}}}}}},
       {"fault_run", "encrypt-mark-changed"}});
  CHECK(c.tc_encrypt_sha256 == "91424f5f");
  c.folder = "ipsec__connectivity_across_nodes_is_encrypted_in_Kmesh_s_layout";
  SuiteRun run;
  run.id = "encrypt-mark-changed";
  run.exit_code = 1;
  run.cases = {c};
  REQUIRE(run.Find(name) == &run.cases[0]);
  CHECK(run.Find("ipsec: key rotation under continuous traffic") == nullptr);

  FaultSpec f;
  f.id = "encrypt-mark-changed";
  f.kind = FaultKind::kSource;
  f.program = Program::kTcEncrypt;
  f.suite = Suite::kIpsec;
  f.cases = {name};
  f.codes = {"mark_missing", "plaintext_on_wire"};
  CHECK(f.object() == "e2e/mutation/tc_encrypt_encrypt-mark-changed.o");
  CHECK(f.inject_env() == "KMESH_E2E_LAB_TC_ENCRYPT_OBJECT=e2e/mutation/tc_encrypt_encrypt-mark-changed.o");
  CHECK(ScoreFault(f, run, true, "91424f5f", "3c8034e2").status == FaultStatus::kKilled);
  // The agents loaded Kmesh's own object: no result, whatever failed.
  auto s = ScoreFault(f, run, true, "0badcafe", "3c8034e2");
  CHECK(s.status == FaultStatus::kNoResult);
  CHECK(s.detail.find("not the mutant") != std::string::npos);
  // Two bundles in one folder: the name must say which.
  run.cases.push_back(c);
  CHECK(run.Find(name) == nullptr);
}

TEST_CASE("the fault table is well formed", "[mutation]") {
  CHECK_NOTHROW(CheckFaults(Faults()));
  CHECK(Faults().size() >= 15);
  CHECK(FaultsOf(Suite::kIpsec).size() >= 6);
  for (const auto& f : FaultsOf(Suite::kIpsec)) CHECK(f.cases.front().rfind("ipsec: ", 0) == 0);
  for (const auto& f : FaultsOf(Suite::kAuthz)) CHECK(f.cases.front().rfind("authz/", 0) == 0);
  auto dup = Faults();
  dup.push_back(dup.front());
  CHECK_THROWS(CheckFaults(dup));
}

}  // namespace
}  // namespace kmesh::mutation
