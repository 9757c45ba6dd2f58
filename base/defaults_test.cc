#include <catch2/catch.hpp>

#include <cstdlib>
#include <unistd.h>

#include "base/defaults.h"
#include "base/names.h"

using kmesh::defaults::Millis;

TEST_CASE("tunables read KMESH_E2E_<NAME>_MS and ignore garbage") {
  unsetenv("KMESH_E2E_CONNECT_TIMEOUT_MS");
  CHECK(kmesh::defaults::ConnectTimeout() == Millis(500));
  setenv("KMESH_E2E_CONNECT_TIMEOUT_MS", "250", 1);
  CHECK(kmesh::defaults::ConnectTimeout() == Millis(250));
  setenv("KMESH_E2E_CONNECT_TIMEOUT_MS", "12x", 1);
  CHECK(kmesh::defaults::ConnectTimeout() == Millis(500));
  setenv("KMESH_E2E_CONNECT_TIMEOUT_MS", "-5", 1);
  CHECK(kmesh::defaults::ConnectTimeout() == Millis(500));
  unsetenv("KMESH_E2E_CONNECT_TIMEOUT_MS");
}

TEST_CASE("count tunables read KMESH_E2E_<NAME> and ignore garbage") {
  unsetenv("KMESH_E2E_MUTATION_JOBS");
  CHECK(kmesh::defaults::MutationJobs() == 2);
  setenv("KMESH_E2E_MUTATION_JOBS", "1", 1);
  CHECK(kmesh::defaults::MutationJobs() == 1);
  for (const char* garbage : {"0", "-1", "2x", "1000"}) {
    setenv("KMESH_E2E_MUTATION_JOBS", garbage, 1);
    CHECK(kmesh::defaults::MutationJobs() == 2);
  }
  unsetenv("KMESH_E2E_MUTATION_JOBS");
}

TEST_CASE("unique names carry the owner pid and never repeat") {
  const std::string a = kmesh::UniqueName("node1");
  const std::string b = kmesh::UniqueName("node1");
  CHECK(a != b);
  CHECK(kmesh::OwnerPid(a) == getpid());
  CHECK_FALSE(kmesh::ProcessGone(kmesh::OwnerPid(a)));
  CHECK(kmesh::OwnerPid("kme2e-x-node") == -1);
  CHECK(kmesh::OwnerPid("other-123-node") == -1);
  CHECK(kmesh::OwnerPid("kme2e-4194999-node-0") == 4194999);
}
