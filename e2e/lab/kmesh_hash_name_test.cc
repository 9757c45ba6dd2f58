#include "e2e/lab/kmesh_hash_name.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "bpf_probe/fnv.h"

using kmesh::bpf_probe::Fnv32a;
using kmesh::lab::KmeshHashName;

namespace {

std::string TempPath(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string p = std::string(dir != nullptr ? dir : "/tmp") + "/" + name + "-" + std::to_string(getpid());
  unlink(p.c_str());
  return p;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Two names whose FNV-32a ids collide: found by search once, checked here so the test cannot drift.
std::pair<std::string, std::string> CollidingNames() {
  std::map<uint32_t, std::string> seen;
  for (int i = 0;; ++i) {
    std::string n = "test-ns1/policy-" + std::to_string(i);
    auto [it, fresh] = seen.emplace(Fnv32a(n), n);
    if (!fresh) return {it->second, n};
  }
}

}  // namespace

TEST_CASE("a name's id is FNV-32a of the name, stable across calls") {
  KmeshHashName h("");
  CHECK(h.Hash("test-ns1/ip-deny-policy") == Fnv32a("test-ns1/ip-deny-policy"));
  CHECK(h.Hash("test-ns1/ip-deny-policy") == Fnv32a("test-ns1/ip-deny-policy"));
  CHECK(h.Find("test-ns1/ip-deny-policy") == Fnv32a("test-ns1/ip-deny-policy"));
  CHECK_FALSE(h.Find("never-hashed").has_value());
}

TEST_CASE("a collision takes the next free id (linear probing), in arrival order") {
  auto [first, second] = CollidingNames();
  REQUIRE(Fnv32a(first) == Fnv32a(second));
  KmeshHashName h("");
  CHECK(h.Hash(second) == Fnv32a(second));
  CHECK(h.Hash(first) == Fnv32a(first) + 1);
}

TEST_CASE("probing wraps from 2^32-1 to 0, as Go's uint32 does") {
  KmeshHashName h("", [](const std::string&) { return 0xffffffffu; });
  CHECK(h.Hash("a") == 0xffffffffu);
  CHECK(h.Hash("b") == 0u);
  CHECK(h.Hash("c") == 1u);
  CHECK(h.Hash("a") == 0xffffffffu);
}

TEST_CASE("the table is persisted as Kmesh does: appended lines, rewritten on delete, reloaded on start") {
  const std::string path = TempPath("hash-persist.yaml");
  {
    KmeshHashName h(path);
    h.Hash("uid-1");
    h.Hash("ns/p");
    CHECK(Slurp(path) ==
          "uid-1: " + std::to_string(Fnv32a("uid-1")) + "\nns/p: " + std::to_string(Fnv32a("ns/p")) + "\n");
    h.Delete("uid-1");
    CHECK(Slurp(path).find("uid-1") == std::string::npos);
    CHECK(h.last_error().empty());
  }
  KmeshHashName again(path);
  CHECK(again.Find("ns/p") == Fnv32a("ns/p"));
  CHECK_FALSE(again.Find("uid-1").has_value());
  again.Delete("ns/p");
  CHECK(Slurp(path).empty());
}

TEST_CASE("a file that does not parse starts an empty table and says so") {
  const std::string path = TempPath("hash-bad.yaml");
  std::ofstream(path) << "[not, a, map\n";
  KmeshHashName h(path);
  CHECK(h.names().empty());
  CHECK_THAT(h.last_error(), Catch::Contains(path) && Catch::Contains("empty"));
}
