// Unit tier: what `bazel test //e2e/... --config=kind` runs, without a cluster.
//   - the selection: the suites tagged `kube` (tools/bazel/defs.bzl tags a suite that links //e2e/envs)
//     are exactly the cluster suites; the mutation suite (lab faults, source mutants) is not among them;
//   - no VM: tools/vm/vm_test.sh runs a suite's binary on the host when KMESH_E2E_ENV=kube, and through
//     tools/vm/run otherwise (a stand-in runner here says whether it was asked to boot);
//   - the settings: every KMESH_E2E_* the suites read on a cluster (base/defaults.h's tunables, the
//     settings e2e/kube reads) is passed through by .bazelrc's test:kind, with KUBECONFIG, HOME and PATH.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "base/runfiles.h"
#include "netns/process.h"

using namespace kmesh;
using Catch::Matchers::Contains;

namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> Lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.insert(l);
  }
  return out;
}

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

netns::ProcessOptions In(const std::string& cwd, const std::string& env) {
  netns::ProcessOptions o;
  o.cwd = cwd;
  o.env = {env};
  return o;
}

void WriteScript(const std::string& path, const std::string& body) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << "#!/bin/sh\n" << body;
  chmod(path.c_str(), 0755);
}

// test:kind --test_env=NAME[=VALUE] lines of .bazelrc: NAME -> VALUE ("" when passed from the client).
std::map<std::string, std::string> KindTestEnv(const std::string& bazelrc) {
  std::map<std::string, std::string> out;
  std::regex line(R"(^test:kind\s+--test_env=([A-Za-z_][A-Za-z0-9_]*)(=(.*))?$)");
  std::istringstream in(bazelrc);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) out[m[1]] = m[3];
  }
  return out;
}

}  // namespace

TEST_CASE("kind: --config=kind selects exactly the cluster suites") {
  // bazel query 'attr(tags, "\bkube\b", tests(...))' over the e2e tier suites, run at build time.
  const auto selected = Lines(Read(Runfile("e2e/kube/kind_selection")));
  CHECK(selected == std::set<std::string>{"//e2e/authz:authz_test", "//e2e/ipsec:ipsec_test"});
  CHECK(selected.count("//e2e/mutation:mutation_test") == 0);
  // The e2e tier they come from (so the check above is not vacuous).
  const auto tier = Lines(Read(Runfile("e2e/kube/e2e_tier")));
  CHECK(tier.count("//e2e/mutation:mutation_test") == 1);
  for (const auto& t : selected) CHECK(tier.count(t) == 1);
  // Of the selected, the one that would boot a VM on the lab goes through vm_test.sh (next case).
  CHECK(Lines(Read(Runfile("e2e/kube/kind_selection_vm"))) ==
        std::set<std::string>{"//e2e/ipsec:ipsec_test"});

  const auto rc = KindTestEnv(Read(Runfile(".bazelrc")));
  const std::string bazelrc = Read(Runfile(".bazelrc"));
  CHECK_THAT(bazelrc, Contains("test:kind --test_tag_filters=kube\n"));
  CHECK_THAT(bazelrc, !Contains("test:kind --config=e2e"));
  REQUIRE(rc.count("KMESH_E2E_ENV") == 1);
  CHECK(rc.at("KMESH_E2E_ENV") == "kube");
}

TEST_CASE("kind: vm_test.sh runs a cluster suite on the host and never boots a VM") {
  const std::string root = TmpDir() + "/vm_test_sh";
  std::filesystem::remove_all(root);
  // A runfiles tree as vm_test.sh expects it: tools/vm/run (here a stand-in that records being asked) and
  // the suite's binary (here a script that says where it ran).
  WriteScript(root + "/tools/vm/run", "echo \"tools/vm/run asked to boot: $*\"; exit 42\n");
  WriteScript(root + "/suite", "echo \"suite ran here with: $*\"\n");
  const std::string script = Runfile("tools/vm/vm_test.sh");

  SECTION("KMESH_E2E_ENV=kube: the binary itself, with its arguments") {
    const auto r =
        netns::Run({"bash", script, "auto", "suite", "--test-arg"}, In(root, "KMESH_E2E_ENV=kube"));
    INFO(r.Describe() << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "suite ran here with: --test-arg\n");
    CHECK_THAT(r.out + r.err, !Contains("asked to boot"));
  }
  SECTION("the lab (KMESH_E2E_ENV unset or lab): through tools/vm/run, as before") {
    for (const std::string env : {"KMESH_E2E_ENV=", "KMESH_E2E_ENV=lab"}) {
      const auto r = netns::Run({"bash", script, "vm", "suite"}, In(root, env));
      INFO(env << ": " << r.Describe() << "\n" << r.out << r.err);
      CHECK(r.exit_code == 42);
      CHECK_THAT(r.out, Contains("tools/vm/run asked to boot: --kernel vm"));
    }
  }
}

TEST_CASE("kind: every KMESH_E2E_* setting the suites read on a cluster is passed through") {
  const auto rc = KindTestEnv(Read(Runfile(".bazelrc")));
  std::set<std::string> needed = {"KUBECONFIG", "HOME", "PATH", "DOCKER_HOST", "KMESH_E2E_ENV",
                                  // ipsec/ipsec_secret.cc: show raw keys when a person asks.
                                  "KMESH_E2E_REVEAL_KEYS"};
  // base/defaults.h: Tunable("NAME", ...) is read as KMESH_E2E_NAME_MS.
  const std::string defaults = Read(Runfile("base/defaults.h"));
  std::regex tunable(R"re(Tunable\("([A-Z0-9_]+)")re");
  int tunables = 0;
  for (std::sregex_iterator it(defaults.begin(), defaults.end(), tunable), end; it != end; ++it, ++tunables) {
    needed.insert("KMESH_E2E_" + (*it)[1].str() + "_MS");
  }
  CHECK(tunables >= 20);
  // e2e/kube's sources: every KMESH_E2E_ name they mention (settings and the tunables they cite).
  std::regex name(R"(KMESH_E2E_[A-Z0-9_]*[A-Z0-9])");
  int sources = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(Runfile("e2e/kube/kube_env.h")).parent_path())) {
    const std::string file = entry.path().filename().string();
    const bool source = entry.path().extension() == ".cc" || entry.path().extension() == ".h";
    if (!source || file.find("_test") != std::string::npos || file == "replay_testing.h") continue;
    ++sources;
    const std::string text = Read(entry.path().string());
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it)
      needed.insert((*it)[0].str());
  }
  CHECK(sources >= 10);
  // Test-only and build-internal names are not settings.
  for (const char* internal : {"KMESH_E2E_TIER"}) needed.erase(internal);

  std::string missing;
  for (const auto& n : needed) {
    if (rc.count(n) == 0) missing += "\n  test:kind --test_env=" + n;
  }
  INFO("add to .bazelrc:" << missing);
  CHECK(missing.empty());
}
