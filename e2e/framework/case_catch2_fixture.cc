// A Catch2 binary that fails on purpose, one way per test case, each inside a kmesh::e2e::Case: run by
// case_catch2_test (and tools/report's test) to show that every way a Catch2 case can fail marks its
// evidence bundle failed. Never a test itself: its failures are its output.
#include <catch2/catch.hpp>

#include <csignal>
#include <stdexcept>

#include "e2e/framework/case.h"

using kmesh::e2e::Case;

namespace {

int Answer() { return 41; }

bool ThrowsWhileChecked() { throw std::runtime_error("km_auth_res could not be read: map id 7 is gone"); }

}  // namespace

TEST_CASE("fixture: passes") {
  Case c("fixture", "passes", "none");
  CHECK(Answer() + 1 == 42);
}

TEST_CASE("fixture: a CHECK fails") {
  Case c("fixture", "check-fails", "none");
  CHECK(Answer() == 42);
  c.Note("the case went on after the CHECK");
}

TEST_CASE("fixture: a REQUIRE fails") {
  Case c("fixture", "require-fails", "none");
  REQUIRE(Answer() == 42);
  c.Note("never reached");
}

TEST_CASE("fixture: an exception escapes the case") {
  Case c("fixture", "exception-escapes", "none");
  CHECK(Answer() == 41);
  throw std::runtime_error("policy 7 never showed up in km_authz_policy");
}

TEST_CASE("fixture: an exception inside a CHECK") {
  Case c("fixture", "exception-in-check", "none");
  CHECK(ThrowsWhileChecked());
}

TEST_CASE("fixture: an explained failure and its CHECK") {
  Case c("fixture", "fail-and-check", "none");
  const bool ok = false;
  c.Fail("[probe] expected ok(200), client saw connect_timeout");
  CHECK(ok);
}

TEST_CASE("fixture: the test catches an exception that ended a case") {
  try {
    Case c("fixture", "exception-caught-by-test", "none");
    throw std::runtime_error("caught below");
  } catch (const std::runtime_error&) {
  }
  CHECK(true);
}

TEST_CASE("fixture: a failure after the first case closed fails only the second") {
  {
    Case first("fixture", "first-passes", "none");
    CHECK(Answer() == 41);
  }
  Case second("fixture", "second-fails", "none");
  CHECK(Answer() == 40);
}

// Hidden: run on its own, since the process dies in it.
TEST_CASE("fixture: a fatal signal", "[.crash]") {
  Case c("fixture", "crash", "none");
  std::raise(SIGSEGV);
}
