// Test targets that pass every Catch2 case, have their JUnit written, and then fail as a process: one
// aborts at exit (a crash in teardown), one hangs at exit until Bazel's timeout. capture.sh runs them
// with `bazel test` to record the build event file tools/test_summary.py must read as failed.
// Never run by //...: tagged manual.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <unistd.h>

namespace {

// Runs after Catch2 wrote the JUnit file (the listener writes it when the run ends, before main returns).
void AtExit() {
#ifdef KMESH_E2E_HANG_AT_EXIT
  for (;;) pause();
#else
  std::abort();
#endif
}

}  // namespace

TEST_CASE("bep fixture: every case passes before the process fails at exit") {
  REQUIRE(std::atexit(AtExit) == 0);
  CHECK(1 + 1 == 2);
}

TEST_CASE("bep fixture: a second passing case") { CHECK(true); }
