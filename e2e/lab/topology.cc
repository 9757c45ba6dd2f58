#include "e2e/lab/topology.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>

#include "base/error.h"
#include "base/names.h"
#include "net/ip.h"
#include "netns/route.h"

namespace kmesh::lab {
namespace {

constexpr const char* kPodGateway = "169.254.1.1";
// The IPv6 gateway: a link-local address on the node side of every pod veth (Calico uses
// fe80::ecee:eeff:feee:eeee the same way); link-local, so each veth can own the same one.
constexpr const char* kPodGateway6 = "fe80::1";

std::string NewUuid() {
  std::ifstream f("/proc/sys/kernel/random/uuid");
  std::string s;
  std::getline(f, s);
  return s;
}

// Host number `host` of a pod CIDR, either family: "10.244.1.0/24" + 5 -> "10.244.1.5",
// "fd00:10:244:1::/64" + 5 -> "fd00:10:244:1::5".
std::string HostInCidr(const std::string& cidr, int host) {
  const net::Cidr block = *net::Cidr::Parse(cidr);
  const int host_bits = block.address().bits() - block.prefix_len();
  if (host < 1 || (host_bits < 31 && host >= (1 << host_bits) - 1)) {
    throw Error("lab: pod CIDR " + cidr + " has no host number " + std::to_string(host));
  }
  std::vector<uint8_t> bytes = block.address().ToBytes();
  for (size_t i = bytes.size(), n = static_cast<size_t>(host); n > 0 && i > 0; n >>= 8)
    bytes[--i] |= n & 0xff;
  return (bytes.size() == 4 ? net::IpAddr::V4(bytes.data()) : net::IpAddr::V6(bytes.data())).ToString();
}

// No duplicate address detection in a lab namespace: an IPv6 address is usable at once instead of
// tentative for a second or more. Set before any interface exists, so every interface inherits it.
void NoDad(const netns::NetnsRef& ns) {
  SetSysctl(ns, "net.ipv6.conf.all.accept_dad", "0");
  SetSysctl(ns, "net.ipv6.conf.default.accept_dad", "0");
}

}  // namespace

std::vector<NodeSpec> DefaultNodes() {
  return {{"node1", "172.18.0.2", "10.244.1.0/24", "fc00:f853:ccd:e793::2", "fd00:10:244:1::/64"},
          {"node2", "172.18.0.3", "10.244.2.0/24", "fc00:f853:ccd:e793::3", "fd00:10:244:2::/64"}};
}

void IpBatch(const netns::NetnsRef& ns, const std::vector<std::string>& lines) {
  char path[] = "/tmp/kme2e-ipbatch-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) ThrowErrno("mkstemp for ip -batch");
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!written) {
    unlink(path);
    throw Error(std::string("cannot write ") + path);
  }
  netns::ProcessOptions opts;
  opts.netns = ns;
  auto r = netns::Run({"ip", "-batch", path}, opts);
  unlink(path);
  if (!r.ok()) throw Error("in network namespace " + ns.path() + ": " + r.Describe());
}

void SetSysctl(const netns::NetnsRef& ns, const std::string& dotted, const std::string& value) {
  std::string path = "/proc/sys/" + dotted;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  netns::RunIn(ns, [&] {
    std::ofstream f(path);
    f << value;
    f.close();
    if (!f) throw Error("cannot set sysctl " + dotted + "=" + value + " in " + ns.path());
  });
}

std::unique_ptr<Topology> Topology::Up(const std::vector<NodeSpec>& specs) {
  if (specs.size() != 2)
    throw Error("the lab topology has exactly two nodes, got " + std::to_string(specs.size()));
  netns::SweepStale();
  std::unique_ptr<Topology> t(new Topology());
  for (const auto& s : specs) {
    if (s.underlay_ip6.empty() != s.pod_cidr6.empty()) {
      throw Error("lab: node " + s.name +
                  " needs both an IPv6 underlay address and an IPv6 pod CIDR, or neither");
    }
    t->nodes_.push_back(std::make_unique<Node>(Node{s, netns::Netns::Create(s.name), NewUuid()}));
    NoDad(t->nodes_.back()->ns.ref());
  }
  Node& a = *t->nodes_[0];
  Node& b = *t->nodes_[1];
  if (a.spec.underlay_ip6.empty() != b.spec.underlay_ip6.empty()) {
    throw Error("lab: both nodes are dual stack or neither (" + a.spec.name + " and " + b.spec.name +
                " differ)");
  }
  // The underlay: one veth pair between the two node namespaces, both ends named eth0 like a kind node.
  IpBatch(a.ns.ref(),
          {"link add eth0 type veth peer name eth0-peer netns " + b.ns.name(),
           "addr add " + a.spec.underlay_ip + "/16 dev eth0", "link set lo up", "link set eth0 up"});
  IpBatch(b.ns.ref(), {"link set eth0-peer name eth0", "addr add " + b.spec.underlay_ip + "/16 dev eth0",
                       "link set lo up", "link set eth0 up"});
  // Both ends able to send before anything does (netns::WaitOperUp says why).
  netns::WaitOperUp(a.ns.ref(), "eth0");
  netns::WaitOperUp(b.ns.ref(), "eth0");
  for (const auto& [self_ptr, peer_ptr] : {std::make_pair(&a, &b), std::make_pair(&b, &a)}) {
    Node& self = *self_ptr;
    Node& peer = *peer_ptr;
    SetSysctl(self.ns.ref(), "net.ipv4.ip_forward", "1");
    std::vector<std::string> lines = {"route add " + peer.spec.pod_cidr + " via " + peer.spec.underlay_ip +
                                      " dev eth0"};
    if (!self.spec.underlay_ip6.empty()) {
      SetSysctl(self.ns.ref(), "net.ipv6.conf.all.forwarding", "1");
      lines.push_back("addr add " + self.spec.underlay_ip6 + "/64 dev eth0 nodad");
      lines.push_back("route add " + peer.spec.pod_cidr6 + " via " + peer.spec.underlay_ip6 + " dev eth0");
    }
    IpBatch(self.ns.ref(), lines);
  }
  return t;
}

Topology::~Topology() {
  // Processes first (they keep namespaces busy), then pods, then nodes.
  for (auto& p : processes_) p->Stop();
  processes_.clear();
  pods_.clear();
  nodes_.clear();
}

Node& Topology::node(const std::string& name) {
  for (auto& n : nodes_) {
    if (n->spec.name == name) return *n;
  }
  std::string have;
  for (auto& n : nodes_) have += " " + n->spec.name;
  throw Error("lab: no node named " + name + " (nodes:" + have + ")");
}

Node& Topology::node_by_underlay(const std::string& ip) {
  for (auto& n : nodes_) {
    if (n->spec.underlay_ip == ip) return *n;
  }
  throw Error("lab: no node with underlay address " + ip);
}

Pod& Topology::pod(const std::string& name) {
  for (auto& p : pods_) {
    if (p->name == name) return *p;
  }
  throw Error("lab: no pod named " + name);
}

Pod& Topology::AddPod(const std::string& node_name, const std::string& name, const std::string& k8s_ns,
                      const std::map<std::string, std::string>& labels) {
  for (auto& p : pods_) {
    if (p->name == name) throw Error("lab: a pod named " + name + " already exists");
  }
  Node& n = node(node_name);
  if (n.next_host > 254) throw Error("lab: node " + node_name + " has no free pod address");
  const int host = n.next_host++;
  const std::string ip = HostInCidr(n.spec.pod_cidr, host);
  const std::string ip6 = n.spec.pod_cidr6.empty() ? "" : HostInCidr(n.spec.pod_cidr6, host);
  auto pod =
      std::make_unique<Pod>(Pod{name, k8s_ns, labels, node_name, ip, ip6, "",
                                "Kubernetes//Pod/" + k8s_ns + "/" + name, netns::Netns::Create("pod")});
  NoDad(pod->ns.ref());
  // Node-side name: unique within the node namespace, <= 15 characters.
  pod->host_veth = "lxc" + std::to_string(n.next_host - 1);
  // The node side owns the pods' gateway address, so a pod's ARP for it is answered by its own veth.
  std::vector<std::string> node_side = {
      "link add " + pod->host_veth + " type veth peer name eth0 netns " + pod->ns.name(),
      std::string("addr add ") + kPodGateway + "/32 dev " + pod->host_veth + " scope link",
      "link set " + pod->host_veth + " up", "route add " + ip + "/32 dev " + pod->host_veth};
  std::vector<std::string> pod_side = {
      "addr add " + ip + "/32 dev eth0", "link set lo up", "link set eth0 up",
      std::string("route add ") + kPodGateway + " dev eth0 scope link",
      std::string("route add 10.244.0.0/16 via ") + kPodGateway + " dev eth0",
      // Like a Kubernetes pod. Kmesh's enrolment trigger (a connect to
      // 0.0.0.2:929, pkg/utils/enroll.go:84-98) needs a route to leave;
      // the node has no default route, so nothing goes further than the
      // pod's node.
      std::string("route add default via ") + kPodGateway + " dev eth0"};
  if (!ip6.empty()) {
    node_side.push_back(std::string("addr add ") + kPodGateway6 + "/64 dev " + pod->host_veth + " nodad");
    node_side.push_back("route add " + ip6 + "/128 dev " + pod->host_veth);
    pod_side.push_back("addr add " + ip6 + "/128 dev eth0 nodad");
    pod_side.push_back(std::string("route add ::/0 via ") + kPodGateway6 + " dev eth0");
  }
  IpBatch(n.ns.ref(), node_side);
  IpBatch(pod->ns.ref(), pod_side);
  // A pod's first packet is often a probe judged against a 500 ms connect timeout: both ends of its veth
  // must be able to send before it (netns::WaitOperUp says why).
  netns::WaitOperUp(n.ns.ref(), pod->host_veth);
  netns::WaitOperUp(pod->ns.ref(), "eth0");
  pods_.push_back(std::move(pod));
  return *pods_.back();
}

void Topology::RemovePod(const std::string& name) {
  auto it = std::find_if(pods_.begin(), pods_.end(), [&](auto& p) { return p->name == name; });
  if (it == pods_.end()) throw Error("lab: no pod named " + name);
  pods_.erase(it);  // the namespace goes, and with it both ends of its veth
}

netns::Process& Topology::Spawn(const netns::NetnsRef& ns, const std::vector<std::string>& argv,
                                const std::string& log_file, netns::ProcessOptions opts) {
  opts.netns = ns;
  opts.output = netns::ProcessOptions::Output::kFile;
  opts.output_file = log_file;
  processes_.push_back(std::make_unique<netns::Process>(netns::Process::Start(argv, opts)));
  return *processes_.back();
}

}  // namespace kmesh::lab
