// Kernel tier: kmesh-probe run "on a node" of the embedded lab. The lab's datapath keeps Kmesh's maps and
// attaches its XDP program to the server pod, as Kmesh does; after an ip-deny policy drops a probe,
// kmesh-probe must find the same evidence the lab Env reads directly: the policy id in km_authz_policy and
// in km_wlpolicy of the server's workload, DENY for the probe's exact tuple, and the same XDP program on
// the server pod's interface.
//
// Every lab on this machine uses the same pod addresses, and a Kmesh (or another test's Kmesh-named maps)
// may be loaded beside it, so every read names this lab's own objects: the server pod's namespace path,
// the program attached there, never an address or a map name. The decoy case proves that this matters:
// a second namespace holds the server's address with a Kmesh-like datapath whose km_auth_res says ALLOW
// for the very tuple the lab denied; the lookups by address must refuse, and the scoped ones must still
// read the lab's DENY.
#include <algorithm>
#include <catch2/catch.hpp>

#include "base/defaults.h"
#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "node/probe_json.h"
#include "e2e/lab/lab_env.h"
#include "e2e/policy/template.h"
#include "netns/netns.h"
#include "netns/process.h"

using namespace kmesh;
using namespace kmesh::e2e;
using Catch::Matchers::Contains;

namespace {

netns::ProcessResult RunProbe(std::vector<std::string> args) {
  args.insert(args.begin(), Runfile("tools/probe/kmesh-probe"));
  return netns::Run(args, {}, defaults::Command());
}

nlohmann::json Report(const std::vector<std::string>& args, const std::string& command) {
  const auto r = RunProbe(args);
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  return node::ParseReport(r.out, command, "kmesh-probe " + command);
}

// kmesh-probe's error report for a call that must fail (exit 1 with {"error": ...}).
std::string ErrorOf(const std::vector<std::string>& args, const std::string& command) {
  const auto r = RunProbe(args);
  INFO(r.Describe());
  REQUIRE(r.exit_code == 1);
  try {
    node::ParseReport(r.out, command, "kmesh-probe " + command);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("kmesh-probe " << command << " exited 1 without an error report: " << r.out);
  return "";
}

// One case of the lab: server and client deployed, an ip-deny policy realized, one probe denied by XDP.
struct DeniedProbe {
  lab::LabEnv env;
  App server = env.Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  App client = env.Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  std::vector<policy::AuthorizationPolicy> policies;
  Realized realized;
  kmesh::net::Tuple tuple;

  // The server pod's namespace, by its path under /run/netns: this lab's and no other's.
  std::string ServerNetns() { return env.lab().pod_of(server).ns.path(); }
  unsigned long ClientInode() { return env.lab().pod_of(client).ns.ref().inode(); }

  void ApplyAndProbe() {
    const auto vars =
        policy::Vars().Set("Namespace", "test-ns1").Set("App", server.name).Set("Ip", client.ip.ToString());
    policies = env.Apply(policy::RenderPolicyTemplate("ip-deny", vars));
    realized = env.WaitRealized(policies.at(0), server);
    const ProbeOutcome out = env.Probe(client, server, ProbeSpec{});
    INFO("the denied probe: " << out.ToString());
    REQUIRE(out.kind == OutcomeKind::kConnectTimeout);
    tuple = out.tuple;
    // What every read below compares against: Kmesh's XDP itself denied this tuple (a connect timeout
    // alone could also be a SYN that never reached the server pod).
    REQUIRE(env.AuthVerdict(server, tuple) == bpf_probe::Verdict::kDeny);
  }

  // kmesh-probe's scoped reads against what the lab Env reads directly.
  void CheckScopedReads() {
    const auto lab_xdp = env.XdpOf(server);
    REQUIRE(lab_xdp.attached());
    const auto lab_verdict = env.AuthVerdict(server, tuple);
    REQUIRE(lab_verdict.has_value());
    // The maps in the server node's pin folder (as on a Kmesh node: its bpffs), through the XDP program in
    // the server pod's namespace, and through that program's id.
    for (const std::string& maps :
         {"pin:" + env.lab().kmesh(server.node).pin_dir(), "xdp:" + ServerNetns(),
          "xdp:" + ServerNetns() + "@eth0", "prog:" + std::to_string(lab_xdp.program()->id)}) {
      INFO("--maps " << maps);
      const node::MapsReport m = node::MapsReportFromJson(
          Report({"--maps", maps, "maps", "--workload-ip", server.ip.ToString()}, "maps"), "maps");
      CHECK(m.HasPolicy(realized.policy_id));
      CHECK(m.workload_id == server.workload_id);
      CHECK(m.WorkloadLists(realized.policy_id));

      const node::AuthReport a = node::AuthReportFromJson(
          Report({"--maps", maps, "auth", "--tuple", tuple.ToString()}, "auth"), "auth");
      REQUIRE(a.verdict.has_value());
      CHECK(*a.verdict == bpf_probe::Verdict::kDeny);
      CHECK(*a.verdict == *lab_verdict);
    }
    const auto xdp =
        node::XdpAttachmentFromJson(Report({"xdp", "--netns", ServerNetns(), "--dev", "eth0"}, "xdp"), "xdp");
    REQUIRE(xdp.attached());
    CHECK(xdp.program()->name == KM_PROG_XDP_AUTHZ);
    CHECK(xdp.program()->id == lab_xdp.program()->id);
    CHECK(xdp.mode == lab_xdp.mode);
  }
};

}  // namespace

TEST_CASE(
    "kmesh-probe on a lab node reads what the lab Env reads: policy realized, DENY for the tuple, "
    "xdp_authz") {
  DeniedProbe c;
  c.ApplyAndProbe();
  c.CheckScopedReads();

  // The client side by address: every namespace holding the client's address is listed, the lab's among
  // them; a single answer is given only when the address is the lab's alone (other labs use it too).
  const auto holders = node::NetnsHoldersFromJson(
      Report({"find-netns", "--ip", c.client.ip.ToString(), "--all"}, "find-netns"), "find-netns");
  INFO(holders.Describe());
  REQUIRE(holders.WithInode(c.ClientInode()) != nullptr);
  CHECK(holders.WithInode(c.ClientInode())->ifname == "eth0");
  if (holders.holders.size() == 1) {
    const auto owner = node::NetnsOwnerFromJson(
        Report({"find-netns", "--ip", c.client.ip.ToString()}, "find-netns"), "find-netns");
    CHECK(owner.inode == c.ClientInode());
  } else {
    CHECK_THAT(ErrorOf({"find-netns", "--ip", c.client.ip.ToString()}, "find-netns"),
               Contains("network namespaces under /proc and /run/netns hold " + c.client.ip.ToString()));
  }
  c.env.Remove(c.policies);
}

TEST_CASE(
    "a decoy datapath on the server's address: lookups by address refuse, scoped reads give the lab's "
    "DENY, not the decoy's ALLOW") {
  DeniedProbe c;
  // The decoy: Kmesh-named maps (km_auth_res, km_authz_policy, km_wlpolicy, km_frontend) and an XDP
  // program, attached in a namespace of its own that holds the lab server's address (never on the
  // machine's own interfaces).
  bpf_probe::testing::TestDatapath decoy;
  netns::Netns decoy_ns = netns::Netns::Create("decoy");
  netns::RunChecked(
      {"ip", "-n", decoy_ns.name(), "link", "add", "eth0", "type", "veth", "peer", "name", "decoy-peer"});
  netns::RunChecked(
      {"ip", "-n", decoy_ns.name(), "addr", "add", c.server.ip.ToString() + "/24", "dev", "eth0"});
  for (const char* dev : {"eth0", "decoy-peer"})
    netns::RunChecked({"ip", "-n", decoy_ns.name(), "link", "set", dev, "up"});
  auto decoy_link =
      bpf_probe::XdpLink::Attach(decoy_ns.ref(), "eth0", decoy.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
  const uint32_t decoy_workload = bpf_probe::WorkloadId("Kubernetes//Pod/decoy/httpbin-decoy");
  const uint32_t decoy_policy = bpf_probe::PolicyId("decoy", "decoy-allow");
  REQUIRE(decoy_workload != c.server.workload_id);
  bpf_probe::FrontendMap(decoy.map(KM_MAP_FRONTEND)).Put({c.server.ip, decoy_workload});
  bpf_probe::WorkloadPolicyMap(decoy.map(KM_MAP_WLPOLICY)).Put({decoy_workload, {decoy_policy}});
  bpf_probe::AuthzPolicy p;
  p.policy_id = decoy_policy;
  p.action = bpf_probe::PolicyAction::kAllow;
  p.scope = bpf_probe::PolicyScope::kWorkloadSelector;
  decoy.map(KM_MAP_AUTHZ_POLICY)
      .Update(bpf_probe::ByteView(reinterpret_cast<const uint8_t*>(&decoy_policy), 4),
              bpf_probe::EncodeAuthzPolicyValue(p));

  c.ApplyAndProbe();
  // The decoy contradicts the lab for the very tuple the case probed.
  bpf_probe::AuthResultMap(decoy.map(KM_MAP_AUTH_RES)).Put(c.tuple, bpf_probe::Verdict::kAllow);
  const std::string decoy_prog = "prog:" + std::to_string(decoy.xdp_prog_id());
  const node::AuthReport wrong = node::AuthReportFromJson(
      Report({"--maps", decoy_prog, "auth", "--tuple", c.tuple.ToString()}, "auth"), "auth");
  REQUIRE(wrong.verdict == bpf_probe::Verdict::kAllow);  // what a lookup that picked the decoy would read

  // Unscoped, the setup is ambiguous: both namespaces hold the address, two maps are named km_auth_res.
  const auto holders = node::NetnsHoldersFromJson(
      Report({"find-netns", "--ip", c.server.ip.ToString(), "--all"}, "find-netns"), "find-netns");
  INFO(holders.Describe());
  CHECK(holders.holders.size() >= 2);
  CHECK(holders.WithInode(decoy_ns.ref().inode()) != nullptr);
  CHECK(holders.WithInode(netns::NetnsRef::Resolve(c.ServerNetns()).inode()) != nullptr);
  const auto by_name = bpf_probe::MapCatalog::FromKernel().Named(KM_MAP_AUTH_RES);
  const auto lab_auth_id =
      bpf_probe::MapCatalog::FromProgram(c.env.XdpOf(c.server).program()->id).Open(KM_MAP_AUTH_RES).info().id;
  auto has_id = [&](uint32_t id) {
    return std::any_of(by_name.begin(), by_name.end(),
                       [&](const bpf_probe::MapInfo& m) { return m.id == id; });
  };
  CHECK(has_id(lab_auth_id));
  CHECK(has_id(decoy.map(KM_MAP_AUTH_RES).info().id));
  CHECK_THROWS_WITH(bpf_probe::MapCatalog::FromKernel().Open(KM_MAP_AUTH_RES),
                    Contains("maps are named km_auth_res"));

  // kmesh-probe's lookups by address refuse, naming both holders and how to scope, instead of guessing.
  for (const auto& [args, command] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--maps", "xdp:" + c.server.ip.ToString(), "auth", "--tuple", c.tuple.ToString()}, "auth"},
           {{"--maps", "xdp:" + c.server.ip.ToString(), "maps", "--workload-ip", c.server.ip.ToString()},
            "maps"},
           {{"xdp", "--pod-ip", c.server.ip.ToString()}, "xdp"},
           {{"find-netns", "--ip", c.server.ip.ToString()}, "find-netns"}}) {
    INFO("kmesh-probe " << command << " " << args.at(1));
    const std::string e = ErrorOf(args, command);
    CHECK_THAT(e, Contains("hold " + c.server.ip.ToString()) && Contains(decoy_ns.path()) &&
                      Contains(c.ServerNetns()) && Contains("xdp:PATH"));
  }

  // Scoped, kmesh-probe reads the lab's own evidence: DENY, the lab's policy and workload, xdp_authz.
  c.CheckScopedReads();
  c.env.Remove(c.policies);
}
