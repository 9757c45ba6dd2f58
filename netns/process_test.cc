#include <catch2/catch.hpp>

#include <chrono>

#include "base/error.h"
#include "netns/process.h"

using namespace std::chrono_literals;
using kmesh::netns::Process;
using kmesh::netns::Run;
using kmesh::netns::RunChecked;

TEST_CASE("a command's exit code, stdout and stderr come back") {
  auto r = Run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.timed_out);
}

TEST_CASE("a command that outlives its bound is killed and reported as timed out") {
  const auto start = std::chrono::steady_clock::now();
  auto r = Run({"sleep", "30"}, {}, 200ms);
  CHECK(r.timed_out);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_THAT(r.Describe(), Catch::Contains("timed out"));
}

TEST_CASE("RunChecked names the command and its stderr when it fails") {
  CHECK_THROWS_WITH(RunChecked({"sh", "-c", "echo no such thing >&2; exit 2"}),
                    Catch::Contains("exited 2") && Catch::Contains("no such thing"));
}

TEST_CASE("a missing program is an error naming it, not a silent exit code") {
  CHECK_THROWS_WITH(Run({"/nonexistent/kmesh-e2e-tool"}),
                    Catch::Contains("exec") && Catch::Contains("/nonexistent/kmesh-e2e-tool"));
}

TEST_CASE("stopping a process kills its whole group") {
  auto p = Process::Start({"sh", "-c", "sleep 30 & sleep 30; wait"});
  CHECK(p.Running());
  auto r = p.Stop(500ms);
  CHECK_FALSE(p.Running());
  CHECK(r.elapsed < 5s);
  // No `sleep 30` of this group is left.
  auto left = Run({"sh", "-c", "pgrep -g " + std::to_string(p.pid()) + " || true"});
  CHECK(left.out.empty());
}

TEST_CASE("an env entry replaces the inherited variable of the same name") {
  setenv("KMESH_E2E_PROCESS_TEST", "inherited", 1);
  kmesh::netns::ProcessOptions opts;
  opts.env = {"KMESH_E2E_PROCESS_TEST=given"};
  auto r = Run({"sh", "-c", "env | grep '^KMESH_E2E_PROCESS_TEST='"}, opts);
  CHECK(r.out == "KMESH_E2E_PROCESS_TEST=given\n");
  unsetenv("KMESH_E2E_PROCESS_TEST");
}
