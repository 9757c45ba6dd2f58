// The kept conformance disagreements (testdata/conformance/*.yaml), each replayed on Kmesh's own XDP: a
// fresh node, the policies written by Kmesh's deserializer, the SYN through xdp_authz with its tail calls
// (BPF_PROG_TEST_RUN).
//   - One case per file, tagged [kmesh-defect][Dn][!shouldfail]: it checks what Istio's semantics and the
//     offload contract ask of XDP, so it fails while Kmesh has the defect, and turns red ("Kmesh defect Dn
//     no longer reproduces") the day Kmesh fixes it.
//   - One ordinary case checks every file still shows its defect for the recorded reason: Istio's answer
//     is the recorded one, the model of Kmesh's XDP predicts what Kmesh did, and the disagreement has the
//     recorded kind and cause. (A [!shouldfail] case cannot tell a broken setup from a reproduced defect;
//     this one can.) It also checks that every file has its case below.
// The datapath is loaded once for the binary (the verifier spends ~2.5 s of CPU per load).
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/runfiles.h"
#include "e2e/conformance/conformance.h"

namespace kc = kmesh::conformance;

namespace {

kc::Differential& Diff() {
  static auto node = std::make_unique<kc::KmeshXdpUnderTest>("/tmp");
  static auto diff = std::make_unique<kc::Differential>(*node);
  return *diff;
}

std::string Dir() {
  return std::filesystem::path(kmesh::Runfile("testdata/conformance/README.md")).parent_path().string();
}

std::vector<std::string>& Registered() {
  static std::vector<std::string> names;
  return names;
}

struct Registration {
  explicit Registration(const char* name) { Registered().push_back(name); }
};

struct Replayed {
  kc::RegressionCase r;
  kc::ConnVerdict v;
  std::string maps;
};

Replayed Replay(const std::string& name) {
  Replayed out;
  out.r = kc::ReadRegressionCase(Dir() + "/" + name + ".yaml");
  out.v = Diff().Replay(out.r.c, &out.maps);
  return out;
}

// What Istio and the contract ask: the disagreement is gone.
[[maybe_unused]] void CheckConforms(const std::string& name) {
  const Replayed x = Replay(name);
  INFO(name << ".yaml (" << x.r.defect << ", " << x.r.kind << ")\n"
            << x.r.explanation << "\n\nreplayed:\n"
            << kc::DescribeVerdict(x.r.c, x.v, x.maps));
  CHECK_FALSE(kc::Judge(x.v.kmesh.action, x.v.kmesh.auth_res, x.v.istio).has_value());
}

}  // namespace

#define KMESH_CONCAT2(a, b) a##b
#define KMESH_CONCAT(a, b) KMESH_CONCAT2(a, b)
// One kept case: `name` is the file's name without .yaml; `tags` must name its defect.
#define KEPT_DISAGREEMENT(name, tags)                                         \
  static Registration KMESH_CONCAT(registration_, __LINE__)(name);            \
  TEST_CASE("conformance/" name ": XDP does what Istio and the contract ask", \
            "[kmesh-defect]" tags "[!shouldfail]") {                          \
    CheckConforms(name);                                                      \
  }

#include "e2e/conformance/regression_cases.inc"

TEST_CASE("every kept disagreement still shows its Kmesh defect, for the recorded reason") {
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(Dir())) {
    if (e.path().extension() == ".yaml") files.insert(e.path().stem().string());
  }
  const std::set<std::string> registered(Registered().begin(), Registered().end());
  CHECK(files == registered);  // each file has its KEPT_DISAGREEMENT in regression_cases.inc, and back
  for (const auto& name : files) {
    const Replayed x = Replay(name);
    INFO(name << ".yaml, recorded: " << x.r.defect << ", " << x.r.kind << ", Istio " << x.r.istio
              << ", Kmesh " << x.r.kmesh << "\nreplayed:\n"
              << kc::DescribeVerdict(x.r.c, x.v, x.maps));
    CHECK(kc::ToString(x.v.istio.expected) == x.r.istio);  // the oracle's answer has not moved
    CHECK(x.v.model_matches);                              // Kmesh does what the model says
    CHECK(x.v.kmesh.ToString() == x.r.kmesh);              // and what it did when the case was kept
    REQUIRE(x.v.kind.has_value());
    CHECK(kc::ToString(*x.v.kind) == x.r.kind);
    CHECK(x.v.cause.Within(x.r.defect));  // fixing the recorded defect(s) in the model makes it conform
  }
}
