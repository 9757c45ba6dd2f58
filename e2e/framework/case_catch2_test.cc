// Every way a Catch2 case can fail marks its evidence bundle failed: runs case_catch2_fixture (a binary
// whose cases fail on purpose) with its own outputs folder and reads the bundles and the JUnit it wrote.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "base/runfiles.h"
#include "netns/process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct FixtureRun {
  kmesh::netns::ProcessResult result;
  std::map<std::string, json> bundles;  // by title
  std::string junit;
};

// Runs the fixture with `filter` into a fresh folder; collects every evidence.json by its title.
FixtureRun RunFixture(const std::string& name, const std::string& filter) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const fs::path dir = fs::path(tmp ? tmp : "/tmp") / ("case_catch2_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir / "outputs");
  kmesh::netns::ProcessOptions opts;
  opts.env = {"TEST_UNDECLARED_OUTPUTS_DIR=" + (dir / "outputs").string(),
              "XML_OUTPUT_FILE=" + (dir / "test.xml").string(), "TESTBRIDGE_TEST_ONLY="};
  FixtureRun run;
  run.result = kmesh::netns::Run({kmesh::Runfile("e2e/framework/case_catch2_fixture"), filter}, opts);
  for (const auto& e : fs::recursive_directory_iterator(dir / "outputs")) {
    if (e.path().filename() != "evidence.json") continue;
    json j = json::parse(std::ifstream(e.path()));
    run.bundles[j.at("title").get<std::string>()] = j;
  }
  std::ifstream x(dir / "test.xml");
  run.junit.assign(std::istreambuf_iterator<char>(x), {});
  return run;
}

std::string Kinds(const json& bundle) {
  std::string out;
  for (const auto& f : bundle.at("catch2_failures")) out += (out.empty() ? "" : ",") + f.at("kind").get<std::string>();
  return out;
}

}  // namespace

TEST_CASE("a bundle fails with every Catch2 failure inside it, and only then") {
  const FixtureRun run = RunFixture("all", "~[.crash]");
  INFO(run.result.Describe() << "\n" << run.result.out);
  CHECK(run.result.exit_code == 6);  // Catch2 exits with the number of failed test cases
  REQUIRE(run.bundles.size() == 9);

  CHECK(run.bundles.at("passes").at("passed") == true);
  CHECK(Kinds(run.bundles.at("passes")).empty());
  CHECK(run.bundles.at("first-passes").at("passed") == true);

  const json& check = run.bundles.at("check-fails");
  CHECK(check.at("passed") == false);
  CHECK(Kinds(check) == "assertion");
  CHECK_THAT(check["catch2_failures"][0]["where"].get<std::string>(),
             Catch::StartsWith("e2e/framework/case_catch2_fixture.cc:"));
  CHECK(check["catch2_failures"][0]["text"] == "CHECK( Answer() == 42 ) with expansion 41 == 42");
  CHECK(check.at("notes") == json::array({"the case went on after the CHECK"}));
  CHECK(check.at("failures").empty());

  const json& require = run.bundles.at("require-fails");
  CHECK(require.at("passed") == false);
  CHECK(Kinds(require) == "assertion");  // the unwinding after a REQUIRE is Catch2's own, not an exception
  CHECK(require.at("notes").empty());

  // The message is only known after the unwinding: the bundle is rewritten with it.
  const json& escaped = run.bundles.at("exception-escapes");
  CHECK(escaped.at("passed") == false);
  CHECK(Kinds(escaped) == "exception");
  CHECK(escaped["catch2_failures"][0]["text"] == "policy 7 never showed up in km_authz_policy");

  const json& in_check = run.bundles.at("exception-in-check");
  CHECK(in_check.at("passed") == false);
  CHECK(Kinds(in_check) == "exception");
  CHECK_THAT(in_check["catch2_failures"][0]["text"].get<std::string>(),
             Catch::Contains("km_auth_res could not be read: map id 7 is gone"));

  const json& both = run.bundles.at("fail-and-check");
  CHECK(both.at("passed") == false);
  CHECK(both.at("failures") == json::array({"[probe] expected ok(200), client saw connect_timeout"}));
  CHECK(Kinds(both) == "assertion");

  const json& caught = run.bundles.at("exception-caught-by-test");
  CHECK(caught.at("passed") == false);
  CHECK(Kinds(caught) == "exception");
  CHECK_THAT(caught["catch2_failures"][0]["text"].get<std::string>(), Catch::Contains("the test caught it itself"));

  CHECK(run.bundles.at("second-fails").at("passed") == false);

  // The JUnit file names the same failures (6 failed test cases of 8).
  CHECK_THAT(run.junit, Catch::Contains("tests=\"8\" failures=\"6\""));
  CHECK_THAT(run.junit, Catch::Contains("policy 7 never showed up in km_authz_policy"));
}

TEST_CASE("a fatal signal in a case writes its bundle failed before the process dies") {
  const FixtureRun run = RunFixture("crash", "[.crash]");
  INFO(run.result.Describe());
  CHECK(run.result.signal == SIGSEGV);
  REQUIRE(run.bundles.count("crash") == 1);
  const json& crash = run.bundles.at("crash");
  CHECK(crash.at("passed") == false);
  CHECK(Kinds(crash) == "crash");
  CHECK_THAT(crash["catch2_failures"][0]["text"].get<std::string>(), Catch::Contains("SIGSEGV"));
  CHECK_THAT(run.junit, Catch::Contains("failures=\"1\""));
}
