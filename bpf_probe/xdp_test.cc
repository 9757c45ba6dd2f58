#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/prog.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "netns/netns.h"
#include "netns/route.h"
#include "netns/process.h"

using namespace kmesh::bpf_probe;
using namespace kmesh::net;
using kmesh::bpf_probe::testing::TestDatapath;
using kmesh::netns::Netns;
using kmesh::netns::NetnsRef;
using kmesh::netns::RunChecked;

namespace {

// A client and a server namespace joined by a veth pair, like a pod behind its veth.
struct Pair {
  Netns cli = Netns::Create("xdpcli");
  Netns srv = Netns::Create("xdpsrv");
  Pair() {
    RunChecked({"ip", "-n", cli.name(), "link", "add", "veth-c", "type", "veth", "peer", "name", "veth-s", "netns",
                srv.name()});
    RunChecked({"ip", "-n", cli.name(), "addr", "add", "10.251.0.1/24", "dev", "veth-c"});
    RunChecked({"ip", "-n", srv.name(), "addr", "add", "10.251.0.2/24", "dev", "veth-s"});
    RunChecked({"ip", "-n", cli.name(), "link", "set", "veth-c", "up"});
    RunChecked({"ip", "-n", srv.name(), "link", "set", "veth-s", "up"});
    kmesh::netns::WaitOperUp(cli.ref(), "veth-c");  // no carrier yet drops the first ARP (netns/route.h)
    kmesh::netns::WaitOperUp(srv.ref(), "veth-s");
  }
};

uint32_t AuthMapId(const TestDatapath& dp) { return dp.map(KM_MAP_AUTH_RES).info().id; }

}  // namespace

TEST_CASE("an XDP program attached to a veth in a new namespace is reported with mode, tag and maps") {
  TestDatapath dp;
  Pair p;
  const ProgramInfo loaded = ReadProgramInfo(dp.xdp_prog_fd());
  {
    XdpLink link = XdpLink::Attach(p.srv.ref(), "veth-s", dp.xdp_prog_fd(), XdpMode::kNative);

    const XdpAttachment a = QueryXdp(p.srv.ref(), "veth-s");
    REQUIRE(a.attached());
    CHECK(a.mode == XdpMode::kNative);  // flags 0 or DRV on a veth: native, as Kmesh gets
    CHECK(a.netns == p.srv.path());
    const ProgramInfo* prog = a.program(XdpMode::kNative);
    REQUIRE(prog != nullptr);
    CHECK(prog->id == loaded.id);
    CHECK(prog->name == "kmt_xdp_authz");
    CHECK(prog->TypeName() == "xdp");
    CHECK(prog->tag == loaded.tag);
    CHECK(prog->tag.size() == 16);
    CHECK(std::find(prog->map_ids.begin(), prog->map_ids.end(), AuthMapId(dp)) != prog->map_ids.end());

    // The tool a person would use agrees: `ip link` shows "xdp" and the same program id and tag.
    const std::string ip_out = RunChecked({"ip", "-n", p.srv.name(), "link", "show", "veth-s"}).out;
    CHECK_THAT(ip_out, Catch::Contains(" xdp ") && Catch::Contains("prog/xdp id " + std::to_string(loaded.id)) &&
                           Catch::Contains("tag " + loaded.tag));

    // The precise way to Kmesh's maps: from the attached program.
    CHECK(MapCatalog::FromProgram(prog->id).Open(KM_MAP_AUTH_RES).info().id == AuthMapId(dp));

    // Every interface of the namespace; only veth-s has a program.
    const std::vector<XdpAttachment> all = QueryXdpAll(p.srv.ref());
    REQUIRE(all.size() == 2);
    CHECK(all[0].ifname == "lo");
    CHECK_FALSE(all[0].attached());
    CHECK(all[0].mode == XdpMode::kNone);
    CHECK(all[1].ifname == "veth-s");
    CHECK(all[1].mode == XdpMode::kNative);

    // By the pid of a process living in the namespace, as for a pod.
    kmesh::netns::ProcessOptions in_srv;
    in_srv.netns = p.srv.ref();
    auto sleeper = kmesh::netns::Process::Start({"sleep", "30"}, in_srv);
    CHECK(QueryXdp(NetnsRef::OfPid(sleeper.pid()), "veth-s").program()->id == loaded.id);
    sleeper.Stop();

    // The client side of the pair, in generic mode.
    XdpLink g = XdpLink::Attach(p.cli.ref(), "veth-c", dp.xdp_prog_fd(), XdpMode::kGeneric);
    CHECK(QueryXdp(p.cli.ref(), "veth-c").mode == XdpMode::kGeneric);
    CHECK_THAT(RunChecked({"ip", "-n", p.cli.name(), "link", "show", "veth-c"}).out, Catch::Contains("xdpgeneric"));

    // Never replaces a program already there.
    CHECK_THROWS_WITH(XdpLink::Attach(p.srv.ref(), "veth-s", dp.policies_prog_fd(), XdpMode::kNative),
                      Catch::Contains("already has an XDP program"));
    // The machine's own namespace is untouched.
    for (const auto& own : QueryXdpAll(NetnsRef::Self())) CHECK((own.program() == nullptr || own.program()->id != loaded.id));
  }
  // Links gone: detached.
  CHECK_FALSE(QueryXdp(p.srv.ref(), "veth-s").attached());
  CHECK_FALSE(QueryXdp(p.cli.ref(), "veth-c").attached());
  CHECK_THROWS_WITH(QueryXdp(p.srv.ref(), "eth0"),
                    Catch::Contains("no interface eth0") && Catch::Contains("it has: lo, veth-s"));
}

TEST_CASE("run statistics prove the attached program saw real packets") {
  TestDatapath dp;
  Pair p;
  XdpLink link = XdpLink::Attach(p.srv.ref(), "veth-s", dp.xdp_prog_fd(), XdpMode::kNative);
  BpfStatsSession stats = BpfStatsSession::Start();
  CHECK(BpfStatsEnabled());
  const uint64_t before = ReadProgramById(dp.xdp_prog_id()).stats.run_cnt;
  RunChecked({"ip", "netns", "exec", p.cli.name(), "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.251.0.2"});
  const ProgStats after = QueryXdp(p.srv.ref(), "veth-s").program()->stats;
  INFO(after.Describe());
  CHECK(after.collected);
  CHECK(after.run_cnt >= before + 3);  // three echo requests at least (plus ARP)
  CHECK(after.run_time_ns > 0);

  ProgStats off;
  CHECK_THAT(off.Describe(), Catch::Contains("kernel.bpf_stats_enabled is 0"));
}

TEST_CASE("BPF_PROG_TEST_RUN on a crafted SYN: DROP when km_auth_res denies the tuple, PASS otherwise") {
  struct Row {
    const char* stored;  // tuple written to the map ("" = nothing)
    Verdict verdict;
    PortOrder stored_order;  // port order the entry was written in
    const char* sent;        // tuple of the SYN
    XdpAction expect;
  };
  const char* v4 = "10.244.1.5:40001 -> 10.244.2.7:8080";
  const char* v6 = "[fd00::5]:40001 -> [fd00::7]:8080";
  const std::vector<Row> kRows = {
      {v4, Verdict::kDeny, PortOrder::kHost, v4, XdpAction::kDrop},
      {v4, Verdict::kAllow, PortOrder::kHost, v4, XdpAction::kPass},
      {"", Verdict::kDeny, PortOrder::kHost, v4, XdpAction::kPass},
      {v4, Verdict::kDeny, PortOrder::kHost, "10.244.1.5:40002 -> 10.244.2.7:8080", XdpAction::kPass},
      {v6, Verdict::kDeny, PortOrder::kHost, v6, XdpAction::kDrop},
      {v6, Verdict::kAllow, PortOrder::kHost, v6, XdpAction::kPass},
      // A deny written in the other version's port order is not the key the datapath looks up.
      {v4, Verdict::kDeny, PortOrder::kNetwork, v4, XdpAction::kPass},
  };
  for (PortOrder datapath_order : {PortOrder::kHost, PortOrder::kNetwork}) {
    for (const auto& r : kRows) {
      // Rows are written for a host-order datapath; mirror them for a network-order one.
      const PortOrder stored_order = datapath_order == PortOrder::kHost
                                         ? r.stored_order
                                         : (r.stored_order == PortOrder::kHost ? PortOrder::kNetwork : PortOrder::kHost);
      CAPTURE(ToString(datapath_order), r.stored, ToString(r.verdict), ToString(stored_order), r.sent);
      TestDatapath dp;
      dp.SetPortOrder(datapath_order);
      if (*r.stored)
        AuthResultMap(dp.map(KM_MAP_AUTH_RES), stored_order).Put(*Tuple::Parse(r.stored), r.verdict);
      CHECK(ToString(TestRunXdp(dp.xdp_prog_fd(), *Tuple::Parse(r.sent)).action) == ToString(r.expect));
    }
  }
}

TEST_CASE("a miss with policies for the workload reaches the tail call, like Kmesh's policies_check") {
  TestDatapath dp;
  const Tuple t = *Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080");
  CHECK(TestRunXdp(dp.xdp_prog_fd(), t).action == XdpAction::kPass);  // no frontend: pass
  FrontendMap(dp.map(KM_MAP_FRONTEND)).Put({t.dst.ip, 77});
  WorkloadPolicyMap(dp.map(KM_MAP_WLPOLICY)).Put({77, {5}});
  AuthzPolicy deny;
  deny.policy_id = 0;  // kmt_policies reads id 0
  deny.action = PolicyAction::kDeny;
  const uint32_t id = 0;
  dp.map(KM_MAP_AUTHZ_POLICY).Update(ByteView(reinterpret_cast<const uint8_t*>(&id), 4), EncodeAuthzPolicyValue(deny));
  CHECK(TestRunXdp(dp.xdp_prog_fd(), t).action == XdpAction::kDrop);
}
