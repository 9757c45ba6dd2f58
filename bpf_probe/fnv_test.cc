#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "base/runfiles.h"
#include "bpf_probe/fnv.h"

using namespace kmesh::bpf_probe;

TEST_CASE("FNV-32a matches independently computed vectors") {
  std::ifstream in(kmesh::Runfile("bpf_probe/testdata/fnv32a_vectors.tsv"));
  REQUIRE(in.good());
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    const uint32_t want = static_cast<uint32_t>(std::stoul(line.substr(0, tab), nullptr, 16));
    const std::string input = line.substr(tab + 1);
    CAPTURE(input);
    CHECK(Fnv32a(input) == want);
    ++checked;
  }
  CHECK(checked >= 8);  // the file was read, not silently empty
}

TEST_CASE("policy and workload ids are FNV-32a of \"namespace/name\" and of the UID") {
  CHECK(PolicyId("default", "deny-by-ip") == Fnv32a("default/deny-by-ip"));
  CHECK(PolicyId("default", "deny-by-ip") == 0x442a2c3du);
  CHECK(WorkloadId("3f7b2b0e-1c2d-4e5f-9a8b-7c6d5e4f3a2b") == 0x0e65bee4u);
  static_assert(Fnv32a("") == kFnv32Offset, "empty input is the offset basis");
}
