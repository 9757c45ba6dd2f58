#include "bpf_probe/verdict.h"

#include <catch2/catch.hpp>

using namespace kmesh::bpf_probe;

TEST_CASE("verdicts print and parse") {
  CHECK(ToString(Verdict::kAllow) == "ALLOW");
  CHECK(ToString(Verdict::kDeny) == "DENY");
  CHECK(ToString(static_cast<Verdict>(7)) == "UNKNOWN(7)");
  CHECK(Drops(static_cast<Verdict>(7)));
  CHECK_FALSE(Drops(Verdict::kAllow));
  CHECK(ParseVerdict("Deny") == Verdict::kDeny);
  CHECK_THROWS_WITH(ParseVerdict("drop"), Catch::Contains("expected allow or deny"));
}
