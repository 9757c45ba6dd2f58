// Kernel tier: the kind node transport on this machine. A process stands for the kind node container: it
// runs in a "node" namespace, in a private mount namespace with its own bpffs holding Kmesh-like pins and
// in its own pid namespace with its own /proc, where a process holds the pod's namespace, as a kind node
// does; `docker inspect` (answered by the replay) gives its pid. The kube env must then read the node's
// xfrm, Kmesh's maps through the node's pins, the pod's XDP attachment and a capture on the node, with the
// framework's collectors, exactly as on kind; and find the pod among the node's processes only, though
// another namespace on the machine (another cluster's pod) holds the same address.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/case_output.h"
#include "traffic/traffic.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/replay_testing.h"
#include "e2e/policy/policy.h"
#include "e2e/policy/template.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "node/local_node.h"
#include "node/node_local.h"

using namespace kmesh;
using namespace kmesh::kube;
using namespace kmesh::kube::testing;
using Catch::Matchers::Contains;

namespace {

std::string Addr(int host) {
  return "100.125." + std::to_string(getpid() % 250) + "." + std::to_string(host);
}

std::string Tool(const std::string& name) {
  for (const std::string dir : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
  }
  return name;
}

}  // namespace

TEST_CASE("kind transport: node namespace, node bpffs pins, pod XDP and captures through the node's pid") {
  using netns::RunChecked;
  netns::Netns node = netns::Netns::Create("knode");
  netns::Netns pod = netns::Netns::Create("kpod");
  const std::string node_ip = Addr(1), pod_ip = Addr(2);
  RunChecked({"ip", "-n", node.name(), "link", "add", "veth-pod", "type", "veth", "peer", "name", "eth0",
              "netns", pod.name()});
  RunChecked({"ip", "-n", node.name(), "addr", "add", node_ip + "/24", "dev", "veth-pod"});
  RunChecked({"ip", "-n", pod.name(), "addr", "add", pod_ip + "/24", "dev", "eth0"});
  RunChecked({"ip", "-n", node.name(), "link", "set", "veth-pod", "up"});
  RunChecked({"ip", "-n", pod.name(), "link", "set", "eth0", "up"});
  // Another cluster's pod with the same address, a process in it, outside the node: machine-wide, the
  // address is ambiguous.
  netns::Netns other = netns::Netns::Create("kother");
  RunChecked({"ip", "-n", other.name(), "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"});
  RunChecked({"ip", "-n", other.name(), "addr", "add", pod_ip + "/24", "dev", "eth0"});
  netns::ProcessOptions other_opts;
  other_opts.netns = other.ref();
  other_opts.output = netns::ProcessOptions::Output::kDiscard;
  netns::Process other_pod = netns::Process::Start({Tool("sleep"), "300"}, other_opts);

  // Kmesh-like maps and xdp program, with a realized DENY policy for the pod and a cached DENY.
  bpf_probe::testing::TestDatapath dp;
  auto link = bpf_probe::XdpLink::Attach(pod.ref(), "eth0", dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
  const uint32_t workload = bpf_probe::WorkloadId("Kubernetes//Pod/test-ns1/httpbin-0");
  const uint32_t policy_id = bpf_probe::PolicyId("test-ns1", "ip-deny-policy");
  bpf_probe::FrontendMap(dp.map(KM_MAP_FRONTEND)).Put({*kmesh::net::IpAddr::Parse(pod_ip), workload});
  bpf_probe::WorkloadPolicyMap(dp.map(KM_MAP_WLPOLICY)).Put({workload, {policy_id}});
  bpf_probe::AuthzPolicy p;
  p.policy_id = policy_id;
  p.action = bpf_probe::PolicyAction::kDeny;
  dp.map(KM_MAP_AUTHZ_POLICY)
      .Update(bpf_probe::ByteView(reinterpret_cast<const uint8_t*>(&policy_id), 4),
              bpf_probe::EncodeAuthzPolicyValue(p));
  const auto denied = *kmesh::net::Tuple::Parse("10.244.0.12:42001 -> " + pod_ip + ":8080");
  bpf_probe::AuthResultMap(dp.map(KM_MAP_AUTH_RES)).Put(denied, bpf_probe::Verdict::kDeny);

  // The "node container": its own bpffs with Kmesh's pins, in its own mount namespace, inside `node`; its
  // own pid namespace and /proc, with the pod's process (a pause container) in `pod`.
  const std::string pins = e2e::CaseOutputDir() + "/node-bpffs";
  std::filesystem::create_directories(pins);
  std::string script = "set -e; " + Tool("nsenter") + " --net=" + pod.path() + " " + Tool("sleep") +
                       " 300 & " + Tool("mount") + " -t bpf bpf " + pins + "; ";
  for (const char* name : {KM_MAP_AUTH_RES, KM_MAP_AUTHZ_POLICY, KM_MAP_WLPOLICY, KM_MAP_FRONTEND}) {
    script += Tool("bpftool") + " map pin id " + std::to_string(dp.map(name).info().id) + " " + pins + "/" +
              name + "; ";
  }
  script += "exec sleep 300";
  netns::ProcessOptions opts;
  opts.netns = node.ref();
  opts.output = netns::ProcessOptions::Output::kDiscard;
  netns::Process container = netns::Process::Start({Tool("unshare"), "--mount", "--propagation", "private",
                                                    "--pid", "--fork", "--mount-proc", "sh", "-c", script},
                                                   opts);
  const std::string node_proc = "/proc/" + std::to_string(container.pid()) + "/root/proc";
  const std::string seen_pins =
      "/proc/" + std::to_string(container.pid()) + "/root" + pins + "/" + KM_MAP_FRONTEND;
  // The pod's process, as the node's /proc lists it.
  auto pod_in_node = [&] {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(node_proc, ec)) {
      struct stat st {};
      if (stat((e.path() / "ns/net").c_str(), &st) == 0 && st.st_ino == pod.ref().inode()) return true;
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((!std::filesystem::exists(seen_pins) || !pod_in_node()) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(std::filesystem::exists(seen_pins));
  REQUIRE(pod_in_node());
  REQUIRE(std::filesystem::is_empty(pins));  // the pins exist only in the node's mount namespace
  // Machine-wide, the pod's address names two namespaces; the kind transport must look in the node only.
  CHECK_THROWS_WITH(node::RequireNetnsOwning("/proc", pod_ip, "/run/netns"),
                    Contains("network namespaces under /proc and /run/netns hold " + pod_ip));

  setenv("KMESH_E2E_KUBE_NODE_ACCESS", "kind", 1);
  setenv("KMESH_E2E_KUBE_PIN_DIR", pins.c_str(), 1);
  setenv("KMESH_E2E_KUBE_POLL_MS", "5", 1);
  auto replay = std::make_unique<ReplayRunner>();
  replay->On({"version"}, File("version.handwritten.json"));
  replay->On({"get", "pods", "kmesh-system"}, File("pods_kmesh.handwritten.json"));
  replay->On({"get", "nodes"}, File("nodes.handwritten.json"));
  replay->On({"docker", "inspect", "kmesh-testing-worker"}, Text(std::to_string(container.pid()) + "\n"));
  const std::string kubeconfig = e2e::CaseOutputDir() + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\n";
  KubeOptions o = KubeOptions();
  o.run_id = "rkind";
  o.workdir = e2e::CaseOutputDir() + "/work";
  o.node_access = NodeAccessOptions::FromEnvironment();
  KubeEnv env(
      std::make_unique<Kubectl>(KubectlConfig{"/bin/true", kubeconfig, "", false, ""}, std::move(replay)), o);
  const e2e::App server{"httpbin",
                        e2e::AppKind::kServer,
                        "kmesh-testing-worker",
                        "test-ns1",
                        *net::IpAddr::Parse(pod_ip),
                        8080,
                        9090,
                        workload,
                        "default",
                        std::nullopt};

  // The barrier reads the node's pins.
  const auto m = policy::RenderPolicyTemplate(
      "ip-deny", policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", "10.244.0.12"));
  const e2e::Realized r = env.WaitRealized(policy::ParseManifests(m.text, m.origin).at(0), server);
  INFO(r.evidence);
  CHECK_THAT(r.evidence, Contains("pin folder /proc/" + std::to_string(container.pid()) + "/root" + pins));
  CHECK_THAT(r.evidence, Contains("holds"));
  CHECK(dynamic_cast<node::LocalNode*>(&env.node("kmesh-testing-worker")) != nullptr);  // read here
  CHECK_THAT(env.node("kmesh-testing-worker").Describe(), Contains("pid " + std::to_string(container.pid())));

  const auto v = env.AuthVerdict(server, denied);
  REQUIRE(v.has_value());
  CHECK(*v == bpf_probe::Verdict::kDeny);
  const auto x = env.XdpOf(server);
  REQUIRE(x.attached());
  CHECK(x.program()->id == dp.xdp_prog_id());
  CHECK(x.ifname == "eth0");
  CHECK_THAT(x.netns, Contains(node_proc + "/"));

  // xfrm of the node's namespace (policies only: this kernel has no ESP for states).
  RunChecked({"ip",         "-n",        node.name(),  "xfrm",          "policy", "add",
              "src",        "0.0.0.0/0", "dst",        "10.244.1.0/24", "dir",    "out",
              "mark",       "0xe0",      "mask",       "0xffffffff",    "tmpl",   "src",
              "172.18.0.2", "dst",       "172.18.0.3", "proto",         "esp",    "spi",
              "0x00000001", "reqid",     "1",          "mode",          "tunnel"});
  const auto snap = env.Xfrm("kmesh-testing-worker");
  REQUIRE(snap.policies.size() == 1);
  CHECK(snap.policies[0].mark == (xfrm::Mark{0xe0, 0xffffffff}));
  xfrm::XfrmState missing;
  missing.src = "172.18.0.2";
  missing.dst = "172.18.0.3";
  missing.proto = 50;
  missing.spi = xfrm::Spi{7};
  CHECK_THROWS_WITH(env.DeleteXfrmState("kmesh-testing-worker", missing), Contains("ESRCH"));

  // A capture on the node's interface toward the pod, through the framework's capture (Env::StartCapture).
  capture::CaptureSpec spec;
  spec.filter = "tcp port 8080";
  spec.max_duration = std::chrono::milliseconds(5000);
  auto cap = env.StartCapture("kmesh-testing-worker", server.ip, spec);
  e2e::ProbeSpec probe;
  probe.dst.ip = server.ip;
  probe.dst.port = 8080;
  probe.http = false;
  probe.connect_timeout = std::chrono::milliseconds(300);
  e2e::Probe(node.ref(), probe);
  const auto summary = cap->Finish();
  INFO(summary.Describe());
  CHECK(summary.interface == "veth-pod");
  CHECK(summary.packets >= 1);

  // Every node read is in the command log as the kmesh-probe command that reads the same from the host,
  // with its exit status: the failed delete (ESRCH) as 1, the others 0.
  const std::string pid = std::to_string(container.pid());
  std::map<std::string, int> reads;
  for (const auto& e : env.kubectl().Log()) {
    if (e.command.rfind("(in process) ", 0) == 0) reads[e.command] = e.exit_code;
  }
  CHECK(reads.at("(in process) kmesh-probe --maps pin:/proc/" + pid + "/root" + pins +
                 " maps --workload-ip " + pod_ip) == 0);
  CHECK(reads.at("(in process) kmesh-probe --proc /proc/" + pid + "/root/proc xdp --pod-ip " + pod_ip) == 0);
  CHECK(reads.at("(in process) kmesh-probe xfrm --netns /proc/" + pid + "/ns/net") == 0);
  CHECK(reads.at("(in process) kmesh-probe xfrm-delete-state --src 172.18.0.2 --dst 172.18.0.3 --spi "
                 "0x00000007 --netns /proc/" +
                 pid + "/ns/net") == 1);
  CHECK(reads.at("(in process) kmesh-probe capture --netns /proc/" + pid + "/ns/net --peer " + pod_ip +
                 " --filter 'tcp port 8080' --direction both") == 0);

  CHECK(env.CleanupNow().empty());
  for (const char* var : {"KMESH_E2E_KUBE_NODE_ACCESS", "KMESH_E2E_KUBE_PIN_DIR"}) unsetenv(var);
}
