#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "e2e/framework/case_output.h"

using kmesh::e2e::CaseFolderName;
using kmesh::e2e::CaseOutputDir;

TEST_CASE("case folder names keep safe characters and replace the rest") {
  CHECK(CaseFolderName("deny ip: selected client") == "deny_ip__selected_client");
  CHECK(CaseFolderName("a/b\\c..d") == "a_b_c..d");
  CHECK(CaseFolderName("..") == "_..");
  CHECK(CaseFolderName("") == "_");
}

TEST_CASE("each test case gets its own evidence folder under the run's folder") {
  const std::string dir = CaseOutputDir();
  CHECK(std::filesystem::is_directory(dir));
  CHECK(std::filesystem::path(dir).filename() ==
        "each_test_case_gets_its_own_evidence_folder_under_the_run_s_folder");
  if (const char* bazel = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    CHECK(std::filesystem::path(dir).parent_path() == std::filesystem::path(bazel));
  }
  std::ofstream(dir + "/probe-file.txt") << "{}\n";
  CHECK(std::filesystem::exists(dir + "/probe-file.txt"));
}
