// authz_offload as explain reads it: the global in the .data map of the xdp_authz program that uses the
// km_auth_res being explained (bpf_probe/authz_offload.h), on Kmesh's own XDP object in a private bpffs.
// With `kmeshctl authz disable` (0) XDP reads no policy: explain says so, and agrees with xdp_authz under
// BPF_PROG_TEST_RUN (a tuple userspace denied is reset once and its entry deleted; anything else passes).
#include "bpf_probe/authz_offload.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/test_run.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/node_bpffs.h"
#include "netns/process.h"

namespace bp = kmesh::bpf_probe;

namespace {

// A folder of the test's own, removed last (after the bpffs mounted in it).
struct Folder {
  std::string path;
  Folder() {
    const char* t = std::getenv("TEST_TMPDIR");
    path = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/" + kmesh::UniqueName("offload");
    std::filesystem::create_directories(path);
  }
  ~Folder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

TEST_CASE("authz_offload: read from the xdp_authz program's .data; explain with it off agrees with Kmesh") {
  Folder folder;
  auto bpffs = kmesh::lab::NodeBpffs::Mount(folder.path, "offload");
  auto dp = kmesh::lab::KmeshAuthzDatapath::Load(bpffs);
  const uint32_t auth_id = dp->map_id(KM_MAP_AUTH_RES);

  auto a = bp::ReadAuthzOffload(auth_id);
  REQUIRE(a);
  CHECK(a->value == 1);
  CHECK(bp::ReadProgramById(a->prog_id).name == "xdp_authz");
  CHECK_FALSE(bp::ReadAuthzOffload(dp->map_id(KM_MAP_AUTHZ_POLICY)));  // only policies_check reads it

  dp->SetAuthzOffload(0);
  a = bp::ReadAuthzOffload(auth_id);
  REQUIRE(a);
  CHECK(a->value == 0);

  const bp::AuthResultMap auth(dp->OpenMap(KM_MAP_AUTH_RES));
  const kmesh::net::Tuple denied = *kmesh::net::Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080");
  const kmesh::net::Tuple other = *kmesh::net::Tuple::Parse("10.244.1.6:40002 -> 10.244.2.7:8080");
  auth.Put(denied, bp::Verdict::kDeny);
  auto explain = [&](const kmesh::net::Tuple& t) {
    const auto r = kmesh::netns::Run(
        {kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "--pin-dir", dp->pin_dir(), "explain", "--json",
         t.src.ToString(), t.dst.ToString()});
    INFO(r.Describe());
    REQUIRE(r.ok());
    return nlohmann::json::parse(r.out);
  };
  const auto e_denied = explain(denied);
  const auto e_other = explain(other);
  CHECK(e_denied["authz_offload"] == 0);
  CHECK(e_denied["to_userspace"] == true);
  CHECK_THAT(e_denied["decided_by"].get<std::string>(), Catch::Contains("reset"));
  CHECK(e_other["decided_by"] == "authz_offload = 0");

  // Kmesh's xdp_authz: both pass; the denied tuple's entry is consumed by the reset.
  const int prog = dp->prog_fd("xdp_authz");
  CHECK(bp::TestRunXdp(prog, denied).action == bp::XdpAction::kPass);
  CHECK(e_denied["action"] == "XDP_PASS");
  CHECK_FALSE(auth.Lookup(denied));
  CHECK(bp::TestRunXdp(prog, other).action == bp::XdpAction::kPass);
  CHECK(e_other["action"] == "XDP_PASS");
  CHECK_FALSE(auth.Lookup(other));
}
