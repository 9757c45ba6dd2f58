// Kernel tier: the static kmesh-probe on this machine, against a node and a pod made by the test (two
// namespaces and a veth, Kmesh-like maps and an XDP program from bpf_probe's test datapath, Kmesh-like
// xfrm policies), read through the same JSON the kube env reads (node/probe_json.h), and compared with
// what the framework's collectors read directly. Reads name the test's own namespaces and programs; the
// one address looked up is unique to this process, and a case gives it to two namespaces to show every
// lookup by address refuses then. Nothing is left behind: namespaces, the XDP link and the
// maps are RAII; the pin test uses a bpffs in a private mount namespace that dies with its process.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/case_output.h"
#include "traffic/traffic.h"
#include "xfrm/xfrm.h"
#include "node/probe_json.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "netns/route.h"

using namespace kmesh;
using namespace kmesh::node;
using Catch::Matchers::Contains;
using kmesh::bpf_probe::testing::TestDatapath;
using kmesh::netns::Netns;

namespace {

// The pod's address: 100.64.0.0/10 (shared address space, used nowhere else in this project) plus this
// process's pid, which no live process shares, so a lookup by address finds this test's pod alone (pids
// are below 2^22). The node's address is never looked up by the probe.
std::string PodAddr() {
  const uint32_t a = (100u << 24 | 64u << 16) + static_cast<uint32_t>(getpid());
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." + std::to_string(a >> 8 & 255) +
         "." + std::to_string(a & 255);
}
constexpr const char* kNodeAddr = "100.127.255.1";
// An address no namespace holds (a unique-local IPv6 address nothing here assigns).
constexpr const char* kUnheldAddr = "fd6b:6d65:6532:6500::99";

// A node namespace and a pod namespace behind a veth (the pod side named eth0, as in Kubernetes), each
// address a /32 with a route to the other.
struct NodeAndPod {
  Netns node = Netns::Create("pnode");
  Netns pod = Netns::Create("ppod");
  std::string node_ip = kNodeAddr, pod_ip = PodAddr();
  NodeAndPod() {
    using netns::RunChecked;
    RunChecked({"ip", "-n", node.name(), "link", "add", "veth-pod", "type", "veth", "peer", "name", "eth0",
                "netns", pod.name()});
    RunChecked({"ip", "-n", node.name(), "addr", "add", node_ip + "/32", "dev", "veth-pod"});
    RunChecked({"ip", "-n", pod.name(), "addr", "add", pod_ip + "/32", "dev", "eth0"});
    for (const auto& [ns, dev] : {std::pair{node.name(), "veth-pod"}, std::pair{pod.name(), "eth0"},
                                  std::pair{node.name(), "lo"}, std::pair{pod.name(), "lo"}}) {
      RunChecked({"ip", "-n", ns, "link", "set", dev, "up"});
    }
    RunChecked({"ip", "-n", node.name(), "route", "add", pod_ip + "/32", "dev", "veth-pod"});
    RunChecked({"ip", "-n", pod.name(), "route", "add", node_ip + "/32", "dev", "eth0"});
    netns::WaitOperUp(node.ref(), "veth-pod");  // no carrier yet drops the first ARP (netns/route.h)
    netns::WaitOperUp(pod.ref(), "eth0");
  }
};

std::string ProbeBinary() { return Runfile("tools/probe/kmesh-probe"); }

netns::ProcessResult RunProbe(std::vector<std::string> args) {
  args.insert(args.begin(), ProbeBinary());
  return netns::Run(args, {}, std::chrono::milliseconds(20000));
}

// Runs kmesh-probe and parses its report as the kube env does.
nlohmann::json Report(const std::vector<std::string>& args, const std::string& command) {
  const auto r = RunProbe(args);
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  return ParseReport(r.out, command, "kmesh-probe " + command);
}

// kmesh-probe's error report for a call that must fail (exit 1 with {"error": ...}).
std::string ErrorOf(const std::vector<std::string>& args, const std::string& command) {
  const auto r = RunProbe(args);
  INFO(r.Describe());
  REQUIRE(r.exit_code == 1);
  try {
    ParseReport(r.out, command, "kmesh-probe " + command);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("kmesh-probe " << command << " exited 1 without an error report: " << r.out);
  return "";
}

std::string Tool(const std::string& name) {
  for (const std::string dir : {"/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/"}) {
    if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
  }
  return name;
}

}  // namespace

TEST_CASE(
    "kmesh-probe reads a pod's XDP attachment, Kmesh's maps through it, and km_auth_res, as the framework "
    "does") {
  NodeAndPod np;
  TestDatapath dp;
  auto link = bpf_probe::XdpLink::Attach(np.pod.ref(), "eth0", dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
  const uint32_t workload = bpf_probe::WorkloadId("Kubernetes//Pod/test-ns1/httpbin-0");
  const uint32_t policy = bpf_probe::PolicyId("test-ns1", "ip-deny-policy");
  bpf_probe::FrontendMap(dp.map(KM_MAP_FRONTEND)).Put({*kmesh::net::IpAddr::Parse(np.pod_ip), workload});
  bpf_probe::WorkloadPolicyMap(dp.map(KM_MAP_WLPOLICY)).Put({workload, {policy}});
  bpf_probe::AuthzPolicy p;
  p.policy_id = policy;
  p.action = bpf_probe::PolicyAction::kDeny;
  p.scope = bpf_probe::PolicyScope::kWorkloadSelector;
  const uint32_t key = policy;
  dp.map(KM_MAP_AUTHZ_POLICY)
      .Update(bpf_probe::ByteView(reinterpret_cast<const uint8_t*>(&key), 4),
              bpf_probe::EncodeAuthzPolicyValue(p));
  const auto denied = *kmesh::net::Tuple::Parse(np.node_ip + ":42001 -> " + np.pod_ip + ":8080");
  bpf_probe::AuthResultMap(dp.map(KM_MAP_AUTH_RES)).Put(denied, bpf_probe::Verdict::kDeny);

  // Which namespace holds the pod's address, found in /proc like a Kmesh pod finds it in /host/proc (the
  // address is this test's alone; the next case gives it to two namespaces).
  const NetnsOwner owner =
      NetnsOwnerFromJson(Report({"find-netns", "--ip", np.pod_ip}, "find-netns"), "find-netns");
  CHECK(owner.inode == np.pod.ref().inode());
  CHECK(owner.ifname == "eth0");

  // XDP: the same program, mode and interface as QueryXdp sees in the pod's namespace.
  const auto direct = bpf_probe::QueryXdp(np.pod.ref(), "eth0");
  const auto via = XdpAttachmentFromJson(Report({"xdp", "--pod-ip", np.pod_ip}, "xdp"), "xdp");
  REQUIRE(via.attached());
  CHECK(via.mode == bpf_probe::XdpMode::kNative);
  CHECK(via.program()->id == dp.xdp_prog_id());
  CHECK(via.program()->id == direct.program()->id);
  CHECK(via.program()->tag == direct.program()->tag);
  CHECK(via.program()->map_ids == direct.program()->map_ids);
  CHECK(XdpAttachmentFromJson(Report({"xdp", "--netns", np.pod.path(), "--dev", "eth0"}, "xdp"), "xdp")
            .program()
            ->id == dp.xdp_prog_id());

  // Maps, found through the XDP program in the pod's namespace (named by its path, with or without the
  // interface, or found by the pod's address) and its tail calls, and by program id.
  for (const std::string& source :
       std::vector<std::string>{"xdp:" + np.pod.path(), "xdp:" + np.pod.path() + "@eth0", "xdp:" + np.pod_ip,
                                "prog:" + std::to_string(dp.xdp_prog_id())}) {
    INFO(source);
    const MapsReport m =
        MapsReportFromJson(Report({"--maps", source, "maps", "--workload-ip", np.pod_ip}, "maps"), "maps");
    CHECK(m.HasPolicy(policy));
    CHECK(m.workload_id == workload);
    CHECK(m.WorkloadLists(policy));
    CHECK(m.authz_value_problem.empty());
    auto auth = std::find_if(m.maps.begin(), m.maps.end(),
                             [](const MapSummary& s) { return s.name == KM_MAP_AUTH_RES; });
    REQUIRE(auth != m.maps.end());
    CHECK(auth->entries == 1);
    CHECK(auth->key_size == KM_TUPLE_SIZE);
  }

  // km_auth_res: the cached DENY for exactly that tuple, nothing for another source port.
  const std::string maps = "xdp:" + np.pod.path();
  const AuthReport deny =
      AuthReportFromJson(Report({"--maps", maps, "auth", "--tuple", denied.ToString()}, "auth"), "auth");
  REQUIRE(deny.verdict.has_value());
  CHECK(*deny.verdict == bpf_probe::Verdict::kDeny);
  CHECK(deny.tuple == denied);
  const auto other = *kmesh::net::Tuple::Parse(np.node_ip + ":42002 -> " + np.pod_ip + ":8080");
  CHECK_FALSE(
      AuthReportFromJson(Report({"--maps", maps, "auth", "--tuple", other.ToString()}, "auth"), "auth")
          .verdict.has_value());
  // Kmesh v1.2.0 keys ports in network order: the same entry is not found that way.
  CHECK_FALSE(
      AuthReportFromJson(
          Report({"--maps", maps, "--port-order", "network", "auth", "--tuple", denied.ToString()}, "auth"),
          "a")
          .verdict.has_value());

  // An address no namespace holds is an error report naming where it looked.
  CHECK_THAT(ErrorOf({"--maps", std::string("xdp:") + kUnheldAddr, "maps"}, "maps"),
             Contains(std::string("no network namespace under /proc or /run/netns holds ") + kUnheldAddr));
  // A namespace path that does not exist, or one whose interfaces carry no XDP program.
  CHECK_THAT(ErrorOf({"--maps", "xdp:/run/netns/kme2e-no-such-netns", "maps"}, "maps"),
             Contains("/run/netns/kme2e-no-such-netns not found"));
  CHECK_THAT(
      ErrorOf({"--maps", "xdp:" + np.node.path(), "maps"}, "maps"),
      Contains("no XDP program is attached to any interface in " + np.node.path()) && Contains("veth-pod"));
}

TEST_CASE(
    "an address two namespaces hold is refused naming both; each namespace's path still reads its own") {
  NodeAndPod np;
  TestDatapath dp, twin_dp;
  auto link = bpf_probe::XdpLink::Attach(np.pod.ref(), "eth0", dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
  const auto t = *kmesh::net::Tuple::Parse(np.node_ip + ":42006 -> " + np.pod_ip + ":8080");
  bpf_probe::AuthResultMap(dp.map(KM_MAP_AUTH_RES)).Put(t, bpf_probe::Verdict::kDeny);
  bpf_probe::AuthResultMap(twin_dp.map(KM_MAP_AUTH_RES)).Put(t, bpf_probe::Verdict::kAllow);
  // A twin holding the same address on its eth0 (another program there), as another lab's pod would.
  Netns twin = Netns::Create("ptwin");
  for (const char* dev : {"eth0", "eth1"}) {
    netns::RunChecked({"ip", "-n", twin.name(), "link", "add", dev, "type", "veth", "peer", "name",
                       std::string("peer-") + dev});
    netns::RunChecked({"ip", "-n", twin.name(), "link", "set", dev, "up"});
    netns::RunChecked({"ip", "-n", twin.name(), "link", "set", std::string("peer-") + dev, "up"});
  }
  netns::RunChecked({"ip", "-n", twin.name(), "addr", "add", np.pod_ip + "/32", "dev", "eth0"});
  auto twin_link =
      bpf_probe::XdpLink::Attach(twin.ref(), "eth0", twin_dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);

  const NetnsHolders holders =
      NetnsHoldersFromJson(Report({"find-netns", "--ip", np.pod_ip, "--all"}, "find-netns"), "find-netns");
  INFO(holders.Describe());
  CHECK(holders.holders.size() == 2);
  REQUIRE(holders.WithInode(np.pod.ref().inode()) != nullptr);
  REQUIRE(holders.WithInode(twin.ref().inode()) != nullptr);
  CHECK(holders.WithInode(np.pod.ref().inode())->netns == np.pod.path());
  CHECK(holders.WithInode(twin.ref().inode())->ifname == "eth0");
  CHECK(holders.searched == "/proc and /run/netns");

  // Every lookup by address refuses rather than pick one, and says how to name the namespace.
  for (const auto& [args, command] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"find-netns", "--ip", np.pod_ip}, "find-netns"},
           {{"xdp", "--pod-ip", np.pod_ip}, "xdp"},
           {{"--maps", "xdp:" + np.pod_ip, "maps"}, "maps"},
           {{"--maps", "xdp:" + np.pod_ip + "@eth0", "auth", "--tuple", t.ToString()}, "auth"},
           {{"capture", "--pod-ip", np.pod_ip, "--iface", "eth0", "--seconds", "1"}, "capture"}}) {
    INFO("kmesh-probe " << command);
    CHECK_THAT(ErrorOf(args, command),
               Contains("2 network namespaces under /proc and /run/netns hold " + np.pod_ip) &&
                   Contains(np.pod.path() + " (eth0, inode ") && Contains(twin.path() + " (eth0, inode ") &&
                   Contains("--netns PATH") && Contains("xdp:PATH[@IFNAME]"));
  }

  // By path, each namespace gives its own program's verdict.
  auto verdict = [&](const std::string& maps) {
    return AuthReportFromJson(Report({"--maps", maps, "auth", "--tuple", t.ToString()}, "auth"), "auth")
        .verdict;
  };
  CHECK(verdict("xdp:" + np.pod.path()) == bpf_probe::Verdict::kDeny);
  CHECK(verdict("xdp:" + twin.path()) == bpf_probe::Verdict::kAllow);
  CHECK(verdict("xdp:" + twin.path() + "@eth0") == bpf_probe::Verdict::kAllow);

  // Interfaces of one namespace carrying different programs: the path alone is refused, @IFNAME picks.
  auto twin_eth1 =
      bpf_probe::XdpLink::Attach(twin.ref(), "eth1", dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
  CHECK_THAT(ErrorOf({"--maps", "xdp:" + twin.path(), "maps"}, "maps"),
             Contains("interfaces in " + twin.path() + " carry different XDP programs") &&
                 Contains("eth0: prog " + std::to_string(twin_dp.xdp_prog_id())) &&
                 Contains("eth1: prog " + std::to_string(dp.xdp_prog_id())));
  CHECK(verdict("xdp:" + twin.path() + "@eth1") == bpf_probe::Verdict::kDeny);
  CHECK(verdict("xdp:" + twin.path() + "@eth0") == bpf_probe::Verdict::kAllow);
}

TEST_CASE("kmesh-probe finds Kmesh's maps in a pin folder, as in a Kmesh pod's /sys/fs/bpf") {
  NodeAndPod np;
  TestDatapath dp;
  const auto t = *kmesh::net::Tuple::Parse(np.node_ip + ":42003 -> " + np.pod_ip + ":8080");
  bpf_probe::AuthResultMap(dp.map(KM_MAP_AUTH_RES)).Put(t, bpf_probe::Verdict::kDeny);
  const std::string dir = e2e::CaseOutputDir() + "/bpffs";
  std::filesystem::create_directories(dir);
  // A bpffs of our own in a private mount namespace (Kmesh's pin layout), gone when the shell exits.
  std::string script = "set -e; " + Tool("mount") + " -t bpf bpf " + dir + "; ";
  for (const char* name : {KM_MAP_AUTH_RES, KM_MAP_AUTHZ_POLICY, KM_MAP_WLPOLICY, KM_MAP_FRONTEND}) {
    script += Tool("bpftool") + " map pin id " + std::to_string(dp.map(name).info().id) + " " + dir + "/" +
              name + "; ";
  }
  script += ProbeBinary() + " --maps pin:" + dir + " auth --tuple '" + t.ToString() + "'";
  const auto r = netns::Run({Tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", script}, {},
                            std::chrono::milliseconds(20000));
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  const AuthReport a = AuthReportFromJson(ParseReport(r.out, "auth", "kmesh-probe auth"), "auth");
  CHECK_THAT(a.map, Contains("km_auth_res"));
  REQUIRE(a.verdict.has_value());
  CHECK(*a.verdict == bpf_probe::Verdict::kDeny);
  // Outside that mount namespace the folder is an empty directory again: nothing was pinned for real.
  CHECK(std::filesystem::is_empty(dir));
}

TEST_CASE("kmesh-probe's xfrm report of a node equals the framework's netlink snapshot") {
  NodeAndPod np;
  const std::string ns = np.node.name();
  // Kmesh's policy layout (kmesh-facts.md §3.4); policies need no ESP, which this kernel lacks.
  netns::RunChecked({"ip",         "-n",        ns,           "xfrm",          "policy", "add",
                     "src",        "0.0.0.0/0", "dst",        "10.244.0.0/24", "dir",    "in",
                     "mark",       "0xd0",      "mask",       "0xffffffff",    "tmpl",   "src",
                     "172.18.0.3", "dst",       "172.18.0.2", "proto",         "esp",    "reqid",
                     "1",          "mode",      "tunnel"});
  netns::RunChecked({"ip",         "-n",        ns,           "xfrm",          "policy", "add",
                     "src",        "0.0.0.0/0", "dst",        "10.244.0.0/24", "dir",    "fwd",
                     "mark",       "0xd0",      "mask",       "0xffffffff",    "tmpl",   "src",
                     "172.18.0.3", "dst",       "172.18.0.2", "proto",         "esp",    "reqid",
                     "1",          "mode",      "tunnel"});
  netns::RunChecked({"ip",         "-n",        ns,           "xfrm",          "policy", "add",
                     "src",        "0.0.0.0/0", "dst",        "10.244.1.0/24", "dir",    "out",
                     "mark",       "0xe0",      "mask",       "0xffffffff",    "tmpl",   "src",
                     "172.18.0.2", "dst",       "172.18.0.3", "proto",         "esp",    "spi",
                     "0x00000002", "reqid",     "1",          "mode",          "tunnel"});
  const xfrm::XfrmSnapshot direct = xfrm::Snapshot(np.node.ref());
  const xfrm::XfrmSnapshot via =
      XfrmSnapshotFromJson(Report({"xfrm", "--netns", np.node.path()}, "xfrm").at("snapshot"), "xfrm");
  CHECK(via.netns == np.node.path());
  REQUIRE(via.policies.size() == 3);
  REQUIRE(direct.policies.size() == 3);
  for (size_t i = 0; i < direct.policies.size(); ++i) {
    INFO(direct.policies[i].Id());
    CHECK(via.policies[i].Id() == direct.policies[i].Id());
    CHECK(via.policies[i].selector == direct.policies[i].selector);
    CHECK(via.policies[i].mark == direct.policies[i].mark);
    CHECK(via.policies[i].templates == direct.policies[i].templates);
    CHECK(via.policies[i].index == direct.policies[i].index);
  }
  CHECK(via.states.size() == direct.states.size());
  // xfrm_stat comes back by name (JSON objects are unordered), the same counters with the same values.
  auto sorted = [](std::vector<std::pair<std::string, uint64_t>> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  CHECK(sorted(via.stats.counters) == sorted(direct.stats.counters));

  // Deleting a state that is not there says which one and where.
  const auto r = RunProbe({"xfrm-delete-state", "--netns", np.node.path(), "--src", "172.18.0.3", "--dst",
                           "172.18.0.2", "--spi", "9"});
  CHECK(r.exit_code == 1);
  CHECK_THROWS_WITH(
      ParseReport(r.out, "xfrm-delete-state", "probe"),
      Contains("delete xfrm state esp spi 0x00000009 src 172.18.0.3 dst 172.18.0.2 in " + np.node.path()) &&
          Contains("ESRCH"));
}

TEST_CASE("kmesh-probe captures a probe's packets on the pod's interface and saves the pcap") {
  NodeAndPod np;
  const std::string pcap = e2e::CaseOutputDir() + "/pod.pcap";
  const auto inner = *net::Tuple::Parse(np.node_ip + ":42005 -> " + np.pod_ip + ":8080");
  auto capture = netns::Process::Start({ProbeBinary(), "capture", "--netns", np.pod.path(), "--iface", "eth0",
                                        "--filter", "tcp port 8080", "--seconds", "3", "--inner",
                                        inner.ToString(), "--save", pcap});
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the capture opens its handle first
  e2e::ProbeSpec spec;
  spec.dst.ip = *kmesh::net::IpAddr::Parse(np.pod_ip);
  spec.dst.port = 8080;
  spec.src_port = 42005;
  spec.http = false;
  const auto outcome = e2e::Probe(np.node.ref(), spec);  // nothing listens: SYN, then RST
  CHECK(outcome.kind == e2e::OutcomeKind::kRefused);
  const auto r = capture.Wait(std::chrono::milliseconds(15000));
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  const auto s =
      CaptureSummaryFromJson(ParseReport(r.out, "capture", "kmesh-probe capture").at("summary"), "capture");
  INFO(s.Describe());
  CHECK(s.interface == "eth0");
  CHECK(s.packets >= 2);
  CHECK(s.esp_packets == 0);
  CHECK_FALSE(s.plaintext.empty());  // the probe's own tuple, in clear
  CHECK_FALSE(capture::JudgeEncrypted(s).pass);
  CHECK(capture::JudgePlaintextVisible(s).pass);
  CHECK(s.pcap_path == pcap);
  CHECK(std::filesystem::file_size(pcap) > 24);  // more than the pcap file header
}
