#include <bpf/bpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/runfiles.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/verdict.h"
#include "net/tuple.h"
#include "e2e/lab/lab.h"
#include "e2e/policy/template.h"
#include "net/tuple.h"
#include "netns/process.h"

using kmesh::e2e::AppKind;
using kmesh::lab::Fault;
using kmesh::lab::Lab;
using kmesh::net::EncodeTupleKey;
using kmesh::net::IpAddr;
using kmesh::net::Tuple;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Vars;

namespace {

struct Curl {
  int exit_code;
  int http_code;
  double time_connect;
};

Curl CurlFrom(Lab& lab, const kmesh::e2e::App& client, const IpAddr& ip, uint16_t port, uint16_t local_port,
              const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {"curl",
                                   "-sS",
                                   "-o",
                                   "/dev/null",
                                   "-w",
                                   "%{json}",
                                   "--local-port",
                                   std::to_string(local_port),
                                   "--connect-timeout",
                                   "1",
                                   "--max-time",
                                   "3"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("http://" + kmesh::net::Endpoint{ip, port}.ToString() + "/get");
  kmesh::netns::ProcessOptions opts;
  opts.netns = lab.pod_of(client).ns.ref();
  auto r = kmesh::netns::Run(argv, opts);
  auto j = nlohmann::json::parse(r.out);
  return Curl{r.exit_code, j.value("response_code", 0), j.value("time_connect", 0.0)};
}

std::optional<uint32_t> Verdict(Lab& lab, const kmesh::e2e::App& server, const Tuple& t) {
  auto key = EncodeTupleKey(t);
  uint32_t v = 0;
  int fd = lab.kmesh(lab.pod_of(server).node).xdp->map_fd(KM_MAP_AUTH_RES);
  if (bpf_map_lookup_elem(fd, key.data(), &v) != 0) return std::nullopt;
  return v;
}

Tuple TupleOf(const kmesh::e2e::App& client, uint16_t sport, const kmesh::e2e::App& server) {
  return Tuple{{client.ip, sport}, {server.ip, server.port}};
}

}  // namespace

TEST_CASE(
    "lab: httpbin answers a sleep client across nodes, and a DENY ipBlocks policy drops the selected "
    "client") {
  auto lab = Lab::Up();
  const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const auto& a = lab->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const auto& b = lab->Deploy({"sleep-b", AppKind::kClient, 0, "test-ns2", {}, false});

  auto before = CurlFrom(*lab, a, server.ip, server.port, 40001);
  CHECK(before.exit_code == 0);
  CHECK(before.http_code == 200);

  lab->Apply(RenderPolicyTemplate(
      "ip-deny", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip.ToString())));

  auto denied = CurlFrom(*lab, a, server.ip, server.port, 40002);
  CHECK(denied.exit_code == 28);      // connect timeout: the SYN was dropped
  CHECK(denied.time_connect == 0.0);  // never connected
  CHECK(Verdict(*lab, server, TupleOf(a, 40002, server)) == std::optional<uint32_t>(1));

  auto other = CurlFrom(*lab, b, server.ip, server.port, 40003);
  CHECK(other.exit_code == 0);
  CHECK(other.http_code == 200);
  CHECK_FALSE(Verdict(*lab, server, TupleOf(b, 40003, server)).has_value());
}

TEST_CASE(
    "lab: dual stack: pods and nodes have IPv6 addresses beside IPv4, httpbin answers over both across "
    "nodes, and Kmesh's XDP keys an IPv6 connection by its 36-byte IPv6 tuple") {
  auto lab = Lab::Up();
  const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const auto& a = lab->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  REQUIRE(server.ip6);
  REQUIRE(a.ip6);
  // kind's dual-stack layout: each node's pods in its own /64 of fd00:10:244::/56.
  CHECK(kmesh::net::Cidr::Parse("fd00:10:244:2::/64")->Contains(*server.ip6));
  CHECK(kmesh::net::Cidr::Parse("fd00:10:244:1::/64")->Contains(*a.ip6));
  for (const auto& n : lab->topology().nodes()) {
    // Usable at once: no address of a lab namespace is tentative (DAD off there, never on the machine).
    kmesh::netns::ProcessOptions opts;
    opts.netns = n->ns.ref();
    const auto addrs = kmesh::netns::RunChecked({"ip", "-6", "addr", "show", "dev", "eth0"}, opts).out;
    CHECK(addrs.find(n->spec.underlay_ip6) != std::string::npos);
    CHECK(addrs.find("tentative") == std::string::npos);
  }

  uint16_t local_port = 40020;  // a fresh source port per connection (a closed one waits in TIME_WAIT)
  for (uint16_t port : {server.port, Lab::kHttpbinAltPort}) {
    for (const IpAddr& ip : {server.ip, *server.ip6}) {
      INFO("sleep-a -> " << ip.ToString() << ":" << port);
      auto r = CurlFrom(*lab, a, ip, port, local_port++);
      CHECK(r.exit_code == 0);
      CHECK(r.http_code == 200);
    }
  }
  // Kmesh's frontend entry for each of the pod's addresses (what xdp_authz looks the destination up by).
  const auto frontend = lab->kmesh("node2").xdp->OpenMap(KM_MAP_FRONTEND);
  for (const IpAddr& ip : {server.ip, *server.ip6}) {
    const auto key = kmesh::bpf_probe::EncodeFrontendKey(ip);
    INFO("km_frontend[" << ip.ToString() << "]");
    CHECK(frontend.Lookup(kmesh::bpf_probe::ByteView(key.data(), key.size())).has_value());
  }

  // A port DENY (decided by XDP whatever the family): the IPv6 SYN is dropped and km_auth_res holds the
  // verdict under the IPv6 key (addresses at 0..31, ports at 32..35), the IPv4 one under the IPv4 key.
  lab->Apply(
      RenderPolicyTemplate("port-deny", Vars()
                                            .Set("Namespace", "test-ns1")
                                            .Set("App", "httpbin")
                                            .SetList("Ports", {std::to_string(Lab::kHttpbinAltPort)})));
  auto denied6 = CurlFrom(*lab, a, *server.ip6, Lab::kHttpbinAltPort, 40013);
  CHECK(denied6.exit_code == 28);
  const Tuple t6{{*a.ip6, 40013}, {*server.ip6, Lab::kHttpbinAltPort}};
  CHECK(EncodeTupleKey(t6)[0] == 0xfd);  // the key starts with the client's IPv6 address
  CHECK(Verdict(*lab, server, t6) == std::optional<uint32_t>(1));
  // kmesh-mapdump on the node's pin folder prints the IPv6 tuple as Kmesh keyed it.
  const auto dump = kmesh::netns::Run(
      {kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "--pin-dir", lab->kmesh("node2").pin_dir(), "auth"});
  INFO(dump.Describe() << "\n" << dump.out);
  CHECK(dump.ok());
  CHECK(dump.out.find(t6.ToString() + "  DENY") != std::string::npos);
  auto denied4 = CurlFrom(*lab, a, server.ip, Lab::kHttpbinAltPort, 40014);
  CHECK(denied4.exit_code == 28);
  CHECK(Verdict(*lab, server, Tuple{{a.ip, 40014}, {server.ip, Lab::kHttpbinAltPort}}) ==
        std::optional<uint32_t>(1));
  auto other6 = CurlFrom(*lab, a, *server.ip6, server.port, 40015);
  CHECK(other6.http_code == 200);
}

TEST_CASE("lab: xdp-detached takes Kmesh's xdp_authz off the server, and clearing it puts it back") {
  auto lab = Lab::Up();
  const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const auto& a = lab->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  lab->Apply(RenderPolicyTemplate(
      "ip-deny", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip.ToString())));
  const auto pod = lab->pod_of(server).ns.ref();
  lab->Inject(Fault::kXdpDetached);
  CHECK_FALSE(lab->kmesh("node2").xdp->Attached(pod, "eth0"));
  CHECK(CurlFrom(*lab, a, server.ip, server.port, 41000).http_code == 200);
  lab->Clear(Fault::kXdpDetached);
  CHECK(lab->kmesh("node2").xdp->Attached(pod, "eth0"));
  CHECK(CurlFrom(*lab, a, server.ip, server.port, 41001).exit_code == 28);
}

TEST_CASE("lab: up then down leaves no namespace, XDP program, map, bpffs mount, cgroup or process") {
  std::vector<std::string> namespaces;
  uint32_t prog_id = 0, map_id = 0;
  pid_t gunicorn = 0, daemon = 0;
  std::string bpffs, cgroup;
  {
    auto lab = Lab::Up();
    const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 0, "test-ns1", {}, false});
    for (const auto& n : lab->topology().nodes()) namespaces.push_back(n->ns.name());
    for (const auto& p : lab->topology().pods()) namespaces.push_back(p->ns.name());
    auto& k = lab->kmesh("node1");
    prog_id = k.xdp->identity().program("xdp_authz").id;
    map_id = k.xdp->map_id(KM_MAP_AUTH_RES);
    daemon = k.daemon->daemon_pid();
    bpffs = k.bpffs.path();
    cgroup = k.cgroup.name();
    auto pg = kmesh::netns::Run({"pgrep", "-f", "gunicorn -b " + server.ip.ToString()});
    REQUIRE(pg.ok());
    gunicorn = std::stoi(pg.out);
  }
  auto listed = kmesh::netns::RunChecked({"ip", "netns", "list"}).out;
  for (const auto& n : namespaces) CHECK(listed.find(n) == std::string::npos);
  CHECK(kill(gunicorn, 0) != 0);
  CHECK(kill(daemon, 0) != 0);
  const auto mounts = kmesh::netns::RunChecked({"cat", "/proc/self/mountinfo"}).out;
  CHECK(mounts.find(bpffs) == std::string::npos);
  CHECK(kmesh::netns::Run({"grep", "-rq", cgroup, "/proc/self/cgroup"}).exit_code != 0);
  // BPF objects are freed after an RCU grace period: poll, bounded.
  bool prog_gone = false, map_gone = false;
  for (int i = 0; i < 100 && !(prog_gone && map_gone); ++i) {
    int pfd = bpf_prog_get_fd_by_id(prog_id);
    int mfd = bpf_map_get_fd_by_id(map_id);
    prog_gone = pfd < 0;
    map_gone = mfd < 0;
    if (pfd >= 0) close(pfd);
    if (mfd >= 0) close(mfd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(prog_gone);
  CHECK(map_gone);
}
