// The userspace half of Kmesh's authorization offload, end to end, with Kmesh's own programs: Kmesh's
// sockops (//third_party/kmesh:sockops) loaded first and Kmesh's XDP (//third_party/kmesh:xdp) loaded
// after it into the same node bpffs, so both use one km_auth_res; a server in the node's cgroup, enrolled
// the way Kmesh's CNI enrols a pod; the authorizer (Rbac, Kmesh's rbac.go ported) reading km_auth_req.
//
// The server's workload has no policy in XDP's maps (km_frontend / km_wlpolicy are empty), so xdp_authz
// passes every SYN and the verdict is userspace's alone, as for a NAMESPACE-scoped policy, which Kmesh's
// XDP never sees. The XDP object is loaded once for the binary (~2.7 s of verifier time); the cases share
// one node.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "base/unique_fd.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/verdict.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/kmesh_sockops.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/lab/node_cgroup.h"
#include "e2e/lab/rbac.h"
#include "e2e/lab/workload_authz.h"
#include "e2e/policy/policy.h"
#include "net/tuple.h"
#include "netns/netns.h"
#include "netns/process.h"

namespace bp = kmesh::bpf_probe;
namespace lab = kmesh::lab;
namespace netns = kmesh::netns;
namespace wa = kmesh::lab::workloadapi;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr const char* kServerIp = "10.244.2.7";
constexpr uint16_t kServerPort = 8080;
constexpr const char* kClientAIp = "10.244.1.5";  // namespace team-a: allowed
constexpr const char* kClientBIp = "10.244.1.6";  // namespace team-b: denied
constexpr const char* kGateway = "169.254.1.1";

// An HTTP/1.1 server answering 200 to every GET, one thread per connection (a denied connection's
// thread just waits), with a listen backlog that a burst of test connections cannot overflow (Python's
// http.server listens with 5, and an overflow costs a client a 1 s SYN retransmission).
constexpr const char* kServerPy = R"(import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
)";

// The only policy: DENY from namespace team-b, on the server (what istiod sends for it).
constexpr const char* kPolicy = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-team-b, namespace: ns-srv}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - from:
    - source: {namespaces: [team-b]}
)";

void Ip(const netns::NetnsRef& ns, const std::string& cmd) {
  std::vector<std::string> argv = {"ip", "-n", ns.name()};
  std::istringstream in(cmd);
  for (std::string w; in >> w;) argv.push_back(w);
  netns::RunChecked(argv);
}

// Whether `pid` (in its own netns) has a TCP socket listening on `port` (/proc/PID/net/tcp, state 0A).
bool Listening(pid_t pid, uint16_t port) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(in, line);
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state;
    f >> sl >> local >> remote >> state;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want) return true;
  }
  return false;
}

// What the authorizer decided, collected on its thread and awaited on the test's.
class Decisions {
 public:
  void Add(const lab::AuthDecision& d) {
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(d);
    cv_.notify_all();
  }
  std::optional<lab::AuthDecision> WaitFor(const kmesh::net::Tuple& t, milliseconds bound) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<lab::AuthDecision> found;
    cv_.wait_for(lock, bound, [&] {
      for (const auto& d : all_) {
        if (d.tuple && *d.tuple == t) {
          found = d;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<lab::AuthDecision> all_;
};

// One node: a router namespace with pods behind veths (pod default route via a link-local gateway the
// node side owns, as Calico does), the node cgroup, its bpffs, Kmesh's sockops and XDP, the authorizer.
struct Node {
  kmesh::ScratchDir work{"kmus-test"};  // the node's bpffs is mounted in it
  netns::Netns node = netns::Netns::Create("us-node");
  netns::Netns srv = netns::Netns::Create("us-srv");
  netns::Netns cli_a = netns::Netns::Create("us-cli-a");
  netns::Netns cli_b = netns::Netns::Create("us-cli-b");
  lab::NodeCgroup cgroup = lab::NodeCgroup::Create("us-node");
  lab::NodeBpffs bpffs = lab::NodeBpffs::Mount(work.path, "us-node");
  std::optional<lab::KmeshSockops> sockops;
  std::unique_ptr<lab::KmeshAuthzDatapath> xdp;
  lab::Rbac rbac;
  Decisions decisions;
  std::unique_ptr<lab::AuthorizerThread> authorizer;
  std::optional<netns::Process> server;

  Node() {
    netns::RunIn(node.ref(), [] {
      std::ofstream("/proc/sys/net/ipv4/ip_forward") << "1";  // this namespace's own sysctl
    });
    Pod(srv, kServerIp, "v-srv");
    Pod(cli_a, kClientAIp, "v-a");
    Pod(cli_b, kClientBIp, "v-b");
  }
  void Pod(const netns::Netns& pod, const std::string& ip, const std::string& host_if) {
    Ip(node.ref(), "link add " + host_if + " type veth peer name eth0 netns " + pod.name());
    Ip(node.ref(), "addr add " + std::string(kGateway) + "/32 dev " + host_if);
    Ip(node.ref(), "link set " + host_if + " up");
    Ip(node.ref(), "route add " + ip + "/32 dev " + host_if);
    Ip(pod.ref(), "link set lo up");
    Ip(pod.ref(), "addr add " + ip + "/32 dev eth0");
    Ip(pod.ref(), "link set eth0 up");
    Ip(pod.ref(), "route add " + std::string(kGateway) + " dev eth0 scope link");
    Ip(pod.ref(), "route add default via " + std::string(kGateway) + " dev eth0");
  }
  ~Node() {
    authorizer.reset();
    if (server) server->Stop();
    xdp.reset();  // loaded after sockops, unloaded before it
    sockops.reset();
  }
};

Node& TheNode() {
  static std::unique_ptr<Node> node;
  if (!node) {
    auto made = std::make_unique<Node>();  // a failed setup is torn down here, and retried by the next case
    Node& n = *made;
    // Kmesh's load order (loader.go:126-137): sockops first, then XDP reusing its pins.
    n.sockops = lab::KmeshSockops::Load(kmesh::Runfile("third_party/kmesh/sockops.o"), n.bpffs, n.cgroup,
                                        lab::SockopsGlobals{*kmesh::net::IpAddr::Parse("172.18.0.2"),
                                                            *kmesh::net::IpAddr::Parse("10.244.2.0")});
    n.xdp = lab::KmeshAuthzDatapath::Load(n.bpffs);
    n.xdp->Attach(n.srv.ref(), "eth0");
    // The server, in the node's cgroup from its first instruction.
    netns::ProcessOptions opts;
    opts.netns = n.srv.ref();
    opts.output = netns::ProcessOptions::Output::kDiscard;
    n.server = netns::Process::Start({"python3", "-c", kServerPy, kServerIp, std::to_string(kServerPort)},
                                     n.cgroup.Join(opts));
    const auto deadline = Clock::now() + kmesh::defaults::AppReady();
    while (!Listening(n.server->pid(), kServerPort)) {
      if (!n.server->Running() || Clock::now() > deadline) {
        throw kmesh::Error("the test's python3 HTTP server did not listen on " + std::string(kServerIp) +
                           ":" + std::to_string(kServerPort) + " in the server pod");
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    // What istiod would send: the three workloads and the policy.
    const auto policies = kmesh::policy::ParseManifests(kPolicy, "kmesh_userspace_test.cc");
    lab::Workload s;
    s.uid = "ns-srv/httpbin";
    s.ns = "ns-srv";
    s.service_account = "httpbin";
    s.addresses = {*kmesh::net::IpAddr::Parse(kServerIp)};
    s.authorization_policies = wa::WorkloadPolicyNames(policies, "ns-srv", {{"app", "httpbin"}});
    n.rbac.AddOrUpdateWorkload(s);
    for (auto [ip, ns] : {std::pair{kClientAIp, "team-a"}, std::pair{kClientBIp, "team-b"}}) {
      lab::Workload c;
      c.uid = std::string(ns) + "/sleep";
      c.ns = ns;
      c.service_account = "sleep";
      c.addresses = {*kmesh::net::IpAddr::Parse(ip)};
      n.rbac.AddOrUpdateWorkload(c);
    }
    for (const auto& p : policies) n.rbac.UpdatePolicy(wa::Translate(p));
    n.authorizer = std::make_unique<lab::AuthorizerThread>(
        n.sockops->map_dir(), n.rbac, [&n](const lab::AuthDecision& d) { n.decisions.Add(d); });
    node = std::move(made);
  }
  return *node;
}

// A client connection made inside a pod namespace (the socket keeps that namespace).
struct Client {
  kmesh::UniqueFd fd;
  kmesh::net::Tuple tuple;
  Clock::time_point connect_called;  // the SYN is about to leave
  Clock::time_point established;     // connect() returned (client side of the handshake done)
};

Client Connect(const netns::Netns& pod) {
  return netns::RunIn(pod.ref(), [] {
    Client c;
    c.fd = kmesh::UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!c.fd.valid()) kmesh::ThrowErrno("socket");
    const int syn_retries = 1;  // fail fast instead of minutes if a SYN is dropped
    setsockopt(c.fd.get(), IPPROTO_TCP, TCP_SYNCNT, &syn_retries, sizeof syn_retries);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(kServerPort);
    inet_pton(AF_INET, kServerIp, &dst.sin_addr);
    c.connect_called = Clock::now();
    if (connect(c.fd.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
      kmesh::ThrowErrno(std::string("connect to ") + kServerIp);
    }
    c.established = Clock::now();
    sockaddr_in src{};
    socklen_t len = sizeof src;
    getsockname(c.fd.get(), reinterpret_cast<sockaddr*>(&src), &len);
    c.tuple.src.ip = kmesh::net::IpAddr::V4(reinterpret_cast<const uint8_t*>(&src.sin_addr));
    c.tuple.src.port = ntohs(src.sin_port);
    c.tuple.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
    c.tuple.dst.port = kServerPort;
    return c;
  });
}

// Sends a GET on an established connection and says what the client saw: "ok(200)", "reset",
// "read_timeout", or what else happened.
std::string Request(const Client& c, milliseconds bound) {
  const std::string req = "GET / HTTP/1.1\r\nHost: httpbin\r\n\r\n";
  if (send(c.fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) {
    return errno == ECONNRESET || errno == EPIPE ? "reset" : std::string("send: ") + std::strerror(errno);
  }
  const auto deadline = Clock::now() + bound;
  std::string got;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return got.empty() ? "read_timeout" : "partial response: " + got.substr(0, 40);
    pollfd p{c.fd.get(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[512];
    const ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
    if (n < 0) return errno == ECONNRESET ? "reset" : std::string("recv: ") + std::strerror(errno);
    if (n == 0) return got.empty() ? "closed without a response" : "closed after " + got.substr(0, 40);
    got.append(buf, static_cast<size_t>(n));
    if (got.size() >= 12 && got.compare(0, 5, "HTTP/") == 0) return "ok(" + got.substr(9, 3) + ")";
  }
}

std::optional<bp::Verdict> AuthRes(Node& n, const kmesh::net::Tuple& t) {
  return bp::LookupVerdict(n.xdp->map_fd("km_auth_res"), t);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

}  // namespace

TEST_CASE(
    "Kmesh's sockops and XDP share one km_auth_res through the node's pin folder; sockops sits on the node "
    "cgroup") {
  Node& n = TheNode();
  // Sockops created the pins, XDP reused them: one map for both objects.
  CHECK(n.sockops->map("km_auth_res").info().id == n.xdp->map_id("km_auth_res"));
  CHECK(n.sockops->map("km_manage").info().id > 0);
  CHECK(bp::Map::OpenPinned(n.sockops->map_dir() + "/km_auth_req").info().id ==
        n.sockops->map("km_auth_req").info().id);
  for (const auto& p : n.sockops->pinned_maps()) CHECK_FALSE(p.reused);  // the first loader on this node
  // Attached as Kmesh attaches it: a BPF_CGROUP_SOCK_OPS link on the cgroup, pinned in the sockops folder.
  const auto attached = lab::KmeshSockops::AttachedPrograms(n.cgroup);
  CHECK(std::find(attached.begin(), attached.end(), n.sockops->prog_id()) != attached.end());
  CHECK(std::filesystem::exists(n.sockops->link_pin()));
  // The server runs in the node cgroup; the harness does not.
  CHECK(lab::CgroupOfPid(n.server->pid()) == n.cgroup.path());
  CHECK(lab::CgroupOfPid(getpid()) != n.cgroup.path());
}

TEST_CASE("a pod is reported only once Kmesh's enrolment put its IP in km_manage") {
  Node& n = TheNode();
  const auto km_manage = n.sockops->map("km_manage");
  const auto server_ip = *kmesh::net::IpAddr::Parse(kServerIp);
  if (lab::ManagedValue(km_manage, server_ip))
    lab::UnenrollPod(n.cgroup, n.srv.ref());  // another case enrolled it
  REQUIRE_FALSE(lab::ManagedValue(km_manage, server_ip));

  // Not enrolled: sockops sees the accepted connection but reports nothing.
  const size_t before = n.decisions.size();
  {
    Client c = Connect(n.cli_b);
    CHECK_FALSE(n.decisions.WaitFor(c.tuple, 4 * kmesh::defaults::PollInterval()));
    CHECK(Request(c, kmesh::defaults::ResponseTimeout()) == "ok(200)");
  }
  CHECK(n.decisions.size() == before);

  // Kmesh's CNI trigger: a connect to 0.0.0.2:929 from the pod; sockops records the pod's IP, value 0.
  CHECK(lab::EnrollPod(n.cgroup, n.srv.ref()) == server_ip);
  CHECK(lab::ManagedValue(km_manage, server_ip) == std::optional<uint32_t>(0));
  CHECK(bp::Map::OpenPinned(n.sockops->map_dir() + "/km_manage").CountEntries() == 1);
}

TEST_CASE(
    "namespace DENY decided in userspace: the record arrives, Rbac denies, km_auth_res = 1 after the "
    "handshake; "
    "authz_offload 1 then drops (the request hangs), 0 resets; an allowed namespace gets nothing written") {
  Node& n = TheNode();
  const auto server_ip = *kmesh::net::IpAddr::Parse(kServerIp);
  if (!lab::ManagedValue(n.sockops->map("km_manage"), server_ip)) lab::EnrollPod(n.cgroup, n.srv.ref());
  const auto bound = kmesh::defaults::PolicyRealized();

  SECTION("allowed namespace (team-a): the record is allowed, nothing is written, the request is answered") {
    n.xdp->SetAuthzOffload(1);
    Client c = Connect(n.cli_a);
    auto d = n.decisions.WaitFor(c.tuple, bound);
    REQUIRE(d);
    INFO(d->Describe());
    CHECK(d->verdict.allow);
    CHECK(d->verdict.reason == lab::RbacReason::kNoAllowPolicy);
    CHECK_FALSE(d->written);
    CHECK_FALSE(AuthRes(n, c.tuple));
    CHECK(Request(c, kmesh::defaults::ResponseTimeout()) == "ok(200)");
  }

  SECTION(
      "denied namespace (team-b), authz_offload = 1 (Kmesh's default): connected, then the request hangs") {
    n.xdp->SetAuthzOffload(1);
    Client c = Connect(n.cli_b);  // the handshake completes: XDP has no policy for this pod
    auto d = n.decisions.WaitFor(c.tuple, bound);
    REQUIRE(d);
    INFO(d->Describe());
    CHECK_FALSE(d->verdict.allow);
    CHECK(d->verdict.reason == lab::RbacReason::kDenyPolicyMatched);
    CHECK(d->verdict.policy == "ns-srv/deny-team-b");
    REQUIRE(d->written);
    // The record comes from the server's end of the handshake (BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB), so the
    // deny follows it; on a veth it often lands even before the client's connect() has returned.
    CHECK(*d->written > c.connect_called);
    CHECK(AuthRes(n, c.tuple) == std::optional<bp::Verdict>(bp::Verdict::kDeny));
    // The key is the client->server tuple, IPs network order, ports host order, bytes 12..35 zero.
    CHECK(d->key == [&] {
      auto k = kmesh::net::EncodeTupleKey(c.tuple);
      return bp::Bytes(k.begin(), k.end());
    }());
    // xdp_authz finds the cached deny and drops the request: no reset, no answer.
    CHECK(Request(c, kmesh::defaults::ResponseTimeout()) == "read_timeout");
    CHECK(AuthRes(n, c.tuple) ==
          std::optional<bp::Verdict>(bp::Verdict::kDeny));  // kept while the server's socket lives
  }

  SECTION(
      "denied namespace (team-b), authz_offload = 0: connected, then reset by xdp_shutdown_in_userspace") {
    n.xdp->SetAuthzOffload(0);
    Client c = Connect(n.cli_b);
    auto d = n.decisions.WaitFor(c.tuple, bound);
    REQUIRE(d);
    INFO(d->Describe());
    CHECK_FALSE(d->verdict.allow);
    REQUIRE(d->written);
    CHECK(AuthRes(n, c.tuple) == std::optional<bp::Verdict>(bp::Verdict::kDeny));
    // The request's segment becomes an RST at XDP (the entry is consumed); the client's retransmission
    // then meets no socket and is answered with RST.
    CHECK(Request(c, kmesh::defaults::ResponseTimeout()) == "reset");
    CHECK_FALSE(AuthRes(n, c.tuple));
    n.xdp->SetAuthzOffload(1);
  }
}

TEST_CASE("latency of the userspace deny: connection established -> record read -> km_auth_res written") {
  Node& n = TheNode();
  const auto server_ip = *kmesh::net::IpAddr::Parse(kServerIp);
  if (!lab::ManagedValue(n.sockops->map("km_manage"), server_ip)) lab::EnrollPod(n.cgroup, n.srv.ref());
  // Reset mode, so that each client's FIN is turned into an RST and its entry consumed: no residue.
  n.xdp->SetAuthzOffload(0);
  constexpr int kConnections = 20;
  // From connect() called to the record read; from the record read to the deny written; and from
  // connect() returning to the deny written (negative: the deny was in place before the client could send).
  std::vector<double> to_record, processing, after_connected;
  std::vector<kmesh::net::Tuple> tuples;
  for (int i = 0; i < kConnections; ++i) {
    Client c = Connect(n.cli_b);
    tuples.push_back(c.tuple);
    auto d = n.decisions.WaitFor(c.tuple, kmesh::defaults::PolicyRealized());
    REQUIRE(d);
    REQUIRE(d->written);
    to_record.push_back(Ms(d->received - c.connect_called));
    processing.push_back(Ms(*d->written - d->received));
    after_connected.push_back(Ms(*d->written - c.established));
  }
  auto max = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  std::cout << "kmesh_userspace_test: " << kConnections << " denied connections (median, max in ms): "
            << "connect() called -> km_auth_req record read " << Median(to_record) << ", " << max(to_record)
            << "; record read -> km_auth_res written " << Median(processing) << ", " << max(processing)
            << "; connect() returned -> km_auth_res written " << Median(after_connected) << ", "
            << max(after_connected) << "\n";
  CHECK(Median(processing) >= 0);
  CHECK(Median(to_record) > 0);
  // Every client closed: each FIN met its deny at XDP and became an RST that consumed the entry.
  const auto deadline = Clock::now() + kmesh::defaults::PolicyRealized();
  auto left = [&] {
    int count = 0;
    for (const auto& t : tuples) count += AuthRes(n, t).has_value();
    return count;
  };
  while (left() != 0 && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
  CHECK(left() == 0);
  n.xdp->SetAuthzOffload(1);
}

TEST_CASE("unenrolment (Kmesh's 930 trigger) removes the pod from km_manage and stops the reports") {
  Node& n = TheNode();
  const auto server_ip = *kmesh::net::IpAddr::Parse(kServerIp);
  if (!lab::ManagedValue(n.sockops->map("km_manage"), server_ip)) lab::EnrollPod(n.cgroup, n.srv.ref());
  CHECK(lab::UnenrollPod(n.cgroup, n.srv.ref()) == server_ip);
  CHECK_FALSE(lab::ManagedValue(n.sockops->map("km_manage"), server_ip));
  Client c = Connect(n.cli_b);
  CHECK_FALSE(n.decisions.WaitFor(c.tuple, 4 * kmesh::defaults::PollInterval()));
  CHECK(Request(c, kmesh::defaults::ResponseTimeout()) == "ok(200)");
  CHECK(n.authorizer->error().empty());
}
