// Kernel tier: kmesh-probe run "on a node" of the embedded lab. The lab's reference datapath keeps
// Kmesh's maps and attaches its XDP program to the server pod, as Kmesh does; after an ip-deny policy
// drops a probe, kmesh-probe must find the same evidence the lab Env reads directly: the policy id in
// km_authz_policy and in km_wlpolicy of the server's workload, DENY for the probe's exact tuple, and the
// same XDP program on the server pod's interface.
#include <catch2/catch.hpp>

#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "e2e/kube/probe_json.h"
#include "e2e/lab/lab_env.h"
#include "e2e/policy/template.h"
#include "netns/process.h"

using namespace kmesh;
using namespace kmesh::e2e;

namespace {

nlohmann::json Report(std::vector<std::string> args, const std::string& command) {
  args.insert(args.begin(), Runfile("tools/probe/kmesh-probe"));
  const auto r = netns::Run(args, {}, std::chrono::milliseconds(20000));
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  return kube::ParseReport(r.out, command, "kmesh-probe " + command);
}

}  // namespace

TEST_CASE(
    "kmesh-probe on a lab node reads what the lab Env reads: policy realized, DENY for the tuple, "
    "xdp_authz") {
  lab::LabEnv env;
  const App server = env.Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const App client = env.Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const auto vars = policy::Vars().Set("Namespace", "test-ns1").Set("App", server.name).Set("Ip", client.ip);
  const auto policies = env.Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  const Realized realized = env.WaitRealized(policies.at(0), server);
  const ProbeOutcome out = env.Probe(client, server, ProbeSpec{});
  REQUIRE(out.kind == OutcomeKind::kConnectTimeout);
  const auto tuple = bpf_probe::Tuple::Parse(out.tuple.ToString());

  // The lab's maps are not pinned: kmesh-probe finds them through the XDP program on the server pod.
  const std::string maps = "xdp:" + server.ip;
  const kube::MapsReport m =
      kube::MapsReportFromJson(Report({"--maps", maps, "maps", "--workload-ip", server.ip}, "maps"), "maps");
  CHECK(m.HasPolicy(realized.policy_id));
  CHECK(m.workload_id == server.workload_id);
  CHECK(m.WorkloadLists(realized.policy_id));

  const kube::AuthReport a =
      kube::AuthReportFromJson(Report({"--maps", maps, "auth", "--tuple", tuple.ToString()}, "auth"), "auth");
  const auto lab_verdict = env.AuthVerdict(server, tuple);
  REQUIRE(lab_verdict.has_value());
  REQUIRE(a.verdict.has_value());
  CHECK(*a.verdict == bpf_probe::Verdict::kDeny);
  CHECK(*a.verdict == *lab_verdict);

  const auto xdp = kube::XdpAttachmentFromJson(Report({"xdp", "--pod-ip", server.ip}, "xdp"), "xdp");
  const auto lab_xdp = env.XdpOf(server);
  REQUIRE(xdp.attached());
  CHECK(xdp.program()->name == KM_PROG_XDP_AUTHZ);
  CHECK(xdp.program()->id == lab_xdp.program()->id);
  CHECK(xdp.mode == lab_xdp.mode);

  // And the client side: the probe's source namespace is the client pod's.
  const auto owner =
      kube::NetnsOwnerFromJson(Report({"find-netns", "--ip", client.ip}, "find-netns"), "find-netns");
  CHECK(owner.inode == env.lab().pod_of(env.lab().app(client.name)).ns.ref().inode());
  env.Remove(policies);
}
