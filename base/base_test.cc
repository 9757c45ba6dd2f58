#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "base/hex.h"
#include "base/mounts.h"
#include "base/names.h"

using kmesh::BytesFromHex;

TEST_CASE("BytesFromHex decodes either case and says where it stopped") {
  CHECK(BytesFromHex("") == std::vector<uint8_t>{});
  CHECK(BytesFromHex("0aFf10") == std::vector<uint8_t>{0x0a, 0xff, 0x10});
  const uint8_t bytes[] = {0x00, 0x7f, 0x80, 0xff};
  CHECK(BytesFromHex(kmesh::HexBytes(bytes, sizeof bytes)) == std::vector<uint8_t>{0x00, 0x7f, 0x80, 0xff});
  size_t bad = 99;
  CHECK_FALSE(BytesFromHex("abc", &bad));
  CHECK(bad == 3);  // odd: the size
  CHECK_FALSE(BytesFromHex("00g0", &bad));
  CHECK(bad == 2);  // the first digit that is not hex
  CHECK_FALSE(BytesFromHex("0x", &bad));
  CHECK(bad == 1);
}

TEST_CASE("the mount table has the root and nothing under a folder that does not exist") {
  bool root = false;
  for (const kmesh::Mount& m : kmesh::Mounts()) root |= m.point == "/" && !m.fstype.empty();
  CHECK(root);
  CHECK(kmesh::HasMountUnder("/"));
  CHECK_FALSE(kmesh::HasMountUnder("/nonexistent-kmesh-e2e-folder"));
}

TEST_CASE("SweepStaleFolders removes a gone run's folders of that label and nothing else") {
  const kmesh::ScratchDir parent("sweeptest");
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  REQUIRE(gone > 0);
  waitpid(gone, nullptr, 0);  // reaped: its pid names no process now
  const std::string prefix = parent.path + "/" + kmesh::kNamePrefix;
  const std::string stale = prefix + std::to_string(gone) + "-conformance-0";
  const std::string other_label = prefix + std::to_string(gone) + "-lab-0";
  const std::string live = prefix + std::to_string(getpid()) + "-conformance-0";
  for (const auto& d : {stale, other_label, live}) std::filesystem::create_directories(d + "/state");
  CHECK(kmesh::SweepStaleFolders(parent.path, "conformance") == std::vector<std::string>{stale});
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(other_label));
  CHECK(std::filesystem::exists(live));
}
