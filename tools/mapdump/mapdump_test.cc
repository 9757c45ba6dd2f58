// kmesh-mapdump against live maps: the test datapath's Kmesh-like maps, an XDP attachment in a new
// namespace, bpftool for comparison, and the errors a person meets.
#include <catch2/catch.hpp>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "tools/mapdump/commands.h"
#include "bpf_probe/testing/private_bpffs.h"

using namespace kmesh::bpf_probe;
using namespace kmesh::net;
using kmesh::bpf_probe::testing::CreateMap;
using kmesh::bpf_probe::testing::TestDatapath;
using kmesh::netns::Netns;
using kmesh::netns::ProcessResult;
using kmesh::netns::Run;
using kmesh::netns::RunChecked;

namespace {

ProcessResult Mapdump(std::vector<std::string> args) {
  args.insert(args.begin(), kmesh::Runfile("tools/mapdump/kmesh-mapdump"));
  return Run(args);
}

std::string Id(uint32_t id) { return std::to_string(id); }

// A datapath with a few verdicts, policies and frontends in its maps.
struct Filled {
  TestDatapath dp;
  std::string prog = Id(dp.xdp_prog_id());
  Filled() {
    AuthResultMap auth(dp.map(KM_MAP_AUTH_RES));
    auth.Put(*Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080"), Verdict::kDeny);
    auth.Put(*Tuple::Parse("10.244.1.6:40002 -> 10.244.2.7:8080"), Verdict::kAllow);
    auth.Put(*Tuple::Parse("[fd00::5]:40001 -> [fd00::7]:9090"), Verdict::kDeny);
    WorkloadPolicyMap(dp.map(KM_MAP_WLPOLICY)).Put({77, {PolicyId("default", "deny-by-ip"), 5}});
    AuthzPolicy p;
    p.policy_id = PolicyId("default", "deny-by-ip");
    p.action = PolicyAction::kDeny;
    p.scope = PolicyScope::kWorkloadSelector;
    p.n_rules = 1;
    dp.map(KM_MAP_AUTHZ_POLICY).Update(ByteView(reinterpret_cast<const uint8_t*>(&p.policy_id), 4),
                                       EncodeAuthzPolicyValue(p));
    FrontendMap(dp.map(KM_MAP_FRONTEND)).Put({*IpAddr::Parse("10.244.2.7"), 77});
  }
};

using kmesh::bpf_probe::testing::WithPrivateBpffs;

// kmesh::mapdump::Run in this process (so it sees this thread's mounts), output captured.
std::pair<int, std::string> RunHere(const std::vector<std::string>& args) {
  char path[] = "/tmp/kme2e-mapdump-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  unlink(path);
  const int rc = kmesh::mapdump::Run(args, fd, fd);
  std::string text(static_cast<size_t>(lseek(fd, 0, SEEK_END)), '\0');
  pread(fd, text.data(), text.size(), 0);
  close(fd);
  return {rc, text};
}

}  // namespace

TEST_CASE("auth prints one line per tuple and filters; --json carries the raw key") {
  Filled f;
  auto r = Mapdump({"auth", "--prog", f.prog});
  REQUIRE(r.ok());
  CHECK(r.out ==
        "10.244.1.5:40001 -> 10.244.2.7:8080  DENY\n"
        "10.244.1.6:40002 -> 10.244.2.7:8080  ALLOW\n"
        "[fd00::5]:40001 -> [fd00::7]:9090  DENY\n");
  CHECK_THAT(r.err, Catch::Contains("3 of 3 entries shown: 2 DENY, 1 ALLOW"));

  r = Mapdump({"auth", "--prog", f.prog, "--verdict", "deny", "--dport", "8080"});
  CHECK(r.out == "10.244.1.5:40001 -> 10.244.2.7:8080  DENY\n");

  r = Mapdump({"auth", "--prog", f.prog, "--json", "--ip", "fd00::7"});
  const auto j = nlohmann::json::parse(r.out);
  REQUIRE(j.size() == 1);
  CHECK(j[0]["dst"] == "fd00::7");
  CHECK(j[0]["dport"] == 9090);
  CHECK(j[0]["verdict"] == "DENY");

  // Read as Kmesh v1.2.0 would have stored it, the same bytes give byte-swapped ports.
  r = Mapdump({"auth", "--prog", f.prog, "--port-order", "network", "--verdict", "allow"});
  CHECK(r.out == "10.244.1.6:17052 -> 10.244.2.7:36895  ALLOW\n");
}

TEST_CASE("maps lists a program's Kmesh maps with sizes, counts and the layout check") {
  Filled f;
  auto r = Mapdump({"maps", "--prog", f.prog});
  REQUIRE(r.ok());
  CHECK_THAT(r.out, Catch::StartsWith("maps from program " + f.prog + " (kmt_xdp_authz) and its tail calls\n"));
  const std::string auth_id = Id(f.dp.map(KM_MAP_AUTH_RES).info().id);
  CHECK_THAT(r.out, Catch::Matches("(.|\\n)*\\nkm_auth_res +" + auth_id + " +hash +36 +4 +8192 +0x1 +[0-9]+ +3 +ok\\n(.|\\n)*"));
  CHECK_THAT(r.out, Catch::Matches("(.|\\n)*\\nkm_wlpolicy +[0-9]+ +hash +4 +16 +512 +0x1 +[0-9]+ +1 +ok\\n(.|\\n)*"));
  CHECK_THAT(r.out, Catch::Contains("not found: km_auth_req, km_tcargs"));

  r = Mapdump({"maps", "--prog", f.prog, "--json"});
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["maps"].size() == 6);
  CHECK(j["missing"] == nlohmann::json::array({KM_MAP_AUTH_REQ, KM_MAP_TCARGS}));
}

TEST_CASE("policies shows workload policy ids, the policies present, and ids of given names") {
  Filled f;
  auto r = Mapdump({"policies", "--prog", f.prog, "--name", "default/deny-by-ip", "--name", "default/other"});
  REQUIRE(r.ok());
  const std::string id = Id(PolicyId("default", "deny-by-ip"));
  CHECK_THAT(r.out, Catch::Contains("  workload 77: " + id + " default/deny-by-ip, 5 (not in km_authz_policy)"));
  CHECK_THAT(r.out, Catch::Contains("default/deny-by-ip  " + id + "  present"));
  CHECK_THAT(r.out, Catch::Contains("default/other  " + Id(PolicyId("default", "other")) + "  ABSENT"));
  r = Mapdump({"frontends", "--prog", f.prog});
  CHECK(r.out == "10.244.2.7  upstream 77\n");
}

TEST_CASE("xdp shows the attachments of a namespace; --netns/--dev reaches the attached program's maps") {
  Filled f;
  Netns ns = Netns::Create("mapdump");
  RunChecked({"ip", "-n", ns.name(), "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"});
  RunChecked({"ip", "-n", ns.name(), "link", "set", "eth0", "up"});
  RunChecked({"ip", "-n", ns.name(), "link", "set", "eth1", "up"});
  XdpLink link = XdpLink::Attach(ns.ref(), "eth0", f.dp.xdp_prog_fd(), XdpMode::kNative);

  auto r = Mapdump({"xdp", "--netns", ns.name()});
  REQUIRE(r.ok());
  CHECK_THAT(r.out, Catch::StartsWith("netns " + ns.path() + "\n"));
  CHECK_THAT(r.out, Catch::Matches("(.|\\n)*\\neth0 +[0-9]+ +native +" + f.prog + " +kmt_xdp_authz +[0-9a-f]{16} (.|\\n)*"));
  CHECK_THAT(r.out, Catch::Matches("(.|\\n)*\\neth1 +[0-9]+ +-\\n(.|\\n)*"));

  kmesh::netns::ProcessOptions in_ns;
  in_ns.netns = ns.ref();
  auto sleeper = kmesh::netns::Process::Start({"sleep", "30"}, in_ns);
  r = Mapdump({"xdp", "--pid", std::to_string(sleeper.pid()), "--dev", "eth0", "--json"});
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["interfaces"][0]["programs"][0]["id"] == f.dp.xdp_prog_id());
  CHECK(j["interfaces"][0]["mode"] == "native");
  sleeper.Stop();

  r = Mapdump({"auth", "--netns", ns.path(), "--dev", "eth0", "--verdict", "allow"});
  CHECK(r.out == "10.244.1.6:40002 -> 10.244.2.7:8080  ALLOW\n");
  r = Mapdump({"auth", "--netns", ns.name(), "--dev", "eth1"});
  CHECK(r.exit_code == kmesh::mapdump::kExitError);
  CHECK_THAT(r.err, Catch::Contains("no XDP program is attached to eth1"));
}

TEST_CASE("dump gives bpftool's raw bytes plus BTF and Kmesh decoding") {
  Filled f;
  const Map auth = f.dp.map(KM_MAP_AUTH_RES);
  auto r = Mapdump({"dump", Id(auth.info().id)});
  REQUIRE(r.ok());
  const auto ours = nlohmann::json::parse(r.out);
  const auto bpftool = nlohmann::json::parse(RunChecked({"bpftool", "-j", "map", "dump", "id", Id(auth.info().id)}).out);
  REQUIRE(ours.size() == 3);
  REQUIRE(bpftool.size() == 3);
  std::set<std::string> ours_raw, bpftool_raw;
  for (const auto& rec : ours) ours_raw.insert(rec["key"].dump() + rec["value"].dump());
  for (const auto& rec : bpftool) bpftool_raw.insert(rec["key"].dump() + rec["value"].dump());
  CHECK(ours_raw == bpftool_raw);  // the raw view is exactly bpftool's
  // The BTF view too: km_tuple's anonymous union nested under "", as bpftool nests it.
  std::map<std::string, nlohmann::json> theirs_formatted;
  for (const auto& rec : bpftool) theirs_formatted[rec["key"].dump()] = rec["formatted"];
  for (const auto& rec : ours) {
    CHECK(rec["formatted"] == theirs_formatted[rec["key"].dump()]);
    CHECK(rec["formatted"]["key"][""].contains("ipv4"));
    CHECK(rec["kmesh"]["tuple"].is_string());
  }

  // By name through the program, without BTF decoding.
  r = Mapdump({"dump", KM_MAP_WLPOLICY, "--prog", f.prog, "--no-btf"});
  const auto wl = nlohmann::json::parse(r.out);
  REQUIRE(wl.size() == 1);
  CHECK_FALSE(wl[0].contains("formatted"));
  CHECK(wl[0]["kmesh"]["workload_id"] == 77);
}

TEST_CASE("errors say what was not found and what was found instead, and which capability is missing") {
  Filled f;
  auto r = Mapdump({"dump", "km_nope", "--prog", f.prog});
  CHECK(r.exit_code == kmesh::mapdump::kExitError);
  CHECK_THAT(r.err, Catch::Contains("map km_nope not found in program " + f.prog) &&
                        Catch::Contains("Kmesh maps found there instead: ") && Catch::Contains("km_auth_res (id "));

  r = Mapdump({"dump", "4294967295"});
  CHECK(r.exit_code == kmesh::mapdump::kExitError);
  CHECK_THAT(r.err, Catch::Contains("BPF map id 4294967295 does not exist"));

  r = Run({"setpriv", "--bounding-set=-sys_admin,-bpf", kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "auth",
           "--prog", f.prog});
  CHECK(r.exit_code == kmesh::mapdump::kExitError);
  CHECK_THAT(r.err, Catch::Contains("Operation not permitted") && Catch::Contains("needs CAP_SYS_ADMIN"));

  // A map pinned as km_auth_res with another layout: expected vs found, and the versions.
  const std::string dir = "/tmp/" + kmesh::UniqueName("pins");
  WithPrivateBpffs(dir, [&] {
    Map odd = CreateMap(BPF_MAP_TYPE_HASH, KM_MAP_AUTH_RES, 16, 4, 64);
    REQUIRE(bpf_obj_pin(odd.fd(), (dir + "/" KM_MAP_AUTH_RES).c_str()) == 0);
    auto [rc, text] = RunHere({"auth", "--pin-dir", dir});
    CHECK(rc == kmesh::mapdump::kExitError);
    CHECK_THAT(text, Catch::Contains("expected key 36 B and value 4 B, found key 16 B and value 4 B") &&
                         Catch::Contains("v1.2.0"));
    auto [rc2, maps] = RunHere({"maps", "--pin-dir", dir});
    CHECK(rc2 == kmesh::mapdump::kExitOk);
    CHECK_THAT(maps, Catch::Contains("MISMATCH") && Catch::Contains("not found: km_auth_req"));
  });
  auto [rc, text] = RunHere({"maps", "--pin-dir", dir});
  CHECK(rc == kmesh::mapdump::kExitError);
  CHECK_THAT(text, Catch::Contains("pin folder " + dir + " does not exist"));
}
