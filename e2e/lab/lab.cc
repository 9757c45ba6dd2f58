#include "e2e/lab/lab.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "net/tuple.h"

namespace kmesh::lab {
namespace {

using e2e::App;
using e2e::AppKind;
using Clock = std::chrono::steady_clock;

const std::vector<std::pair<Fault, const char*>>& FaultNames() {
  static const std::vector<std::pair<Fault, const char*>> names = {
      {Fault::kXdpDetached, "xdp-detached"},
      {Fault::kXfrmStateMissing, "xfrm-state-missing"},
      {Fault::kWrongKey, "wrong-key"},
      {Fault::kEgressNotMarked, "egress-not-marked"},
      {Fault::kRotationNotApplied, "rotation-not-applied"},
      {Fault::kNodeinfoEntryMissing, "nodeinfo-entry-missing"},
      {Fault::kWaypointBypassed, "waypoint-bypassed"},
      {Fault::kTailCallPoliciesCheckEmptied, "tailcall-policies-check-empty"},
      {Fault::kTailCallPolicyCheckEmptied, "tailcall-policy-check-empty"},
      {Fault::kAuthzOffloadOff, "authz-offload-off"},
      {Fault::kFrontendMissing, "km-frontend-missing"},
      {Fault::kFrontendWrong, "km-frontend-wrong"},
      {Fault::kWlPolicyMissing, "km-wlpolicy-missing"},
      {Fault::kWlPolicyHole, "km-wlpolicy-hole"},
      {Fault::kAuthzPolicyMissing, "km-authz-policy-missing"},
      {Fault::kAuthzPolicyActionFlipped, "km-authz-policy-action-flipped"},
      {Fault::kManageMissing, "km-manage-missing"},
  };
  return names;
}

// True once something accepts TCP connections on ip:port, tried from inside `ns`.
bool Accepts(const netns::NetnsRef& ns, const std::string& ip, uint16_t port) {
  const net::Endpoint to{*net::IpAddr::Parse(ip), port};
  return netns::RunIn(ns, [&] {
    sockaddr_storage ss{};
    const socklen_t len = to.ToSockaddr(ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
    close(fd);
    return ok;
  });
}

// "10.244.1.5:8000", "[fd00:10:244:1::5]:8000": how gunicorn and the waypoint take an address.
std::string HostPort(const std::string& ip, uint16_t port) {
  return net::Endpoint{*net::IpAddr::Parse(ip), port}.ToString();
}

void WaitAccepts(const netns::NetnsRef& ns, const std::string& what, const std::string& ip, uint16_t port,
                 netns::Process& proc, const std::string& log) {
  const auto deadline = Clock::now() + defaults::AppReady();
  while (!Accepts(ns, ip, port)) {
    if (!proc.Running()) {
      std::ifstream f(log);
      std::stringstream s;
      s << f.rdbuf();
      throw Error(what + " exited before listening on " + ip + ":" + std::to_string(port) + "; its log (" +
                  log + "):\n" + s.str());
    }
    if (Clock::now() > deadline) {
      throw Error(what + " did not listen on " + ip + ":" + std::to_string(port) + " within " +
                  std::to_string(defaults::AppReady().count()) + " ms (KMESH_E2E_APP_READY_MS); log: " + log);
    }
    std::this_thread::sleep_for(defaults::PollInterval());
  }
}

// The documents of a manifest, each with the line it starts on (1-based), split at "---" lines.
std::vector<std::pair<int, std::string>> Documents(const std::string& text) {
  std::vector<std::pair<int, std::string>> docs{{1, ""}};
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("---", 0) == 0) {
      docs.push_back({n + 1, ""});
      continue;
    }
    docs.back().second += line + "\n";
  }
  return docs;
}

// The network address of a CIDR ("10.244.1.0/24" -> 10.244.1.0).
net::IpAddr CidrBase(const std::string& cidr) { return *net::IpAddr::Parse(cidr.substr(0, cidr.find('/'))); }

// Whether the policy uses what Kmesh's XDP defers to userspace (authz.h:463-468).
bool UsesIdentity(const policy::AuthorizationPolicy& p) {
  for (const auto& r : p.rules) {
    for (const auto& f : r.from) {
      if (!f.namespaces.empty() || !f.not_namespaces.empty() || !f.principals.empty() ||
          !f.not_principals.empty()) {
        return true;
      }
    }
    for (const auto& c : r.when) {
      using K = policy::ConditionKey::Kind;
      if (c.key.kind == K::kSourceNamespace || c.key.kind == K::kSourcePrincipal) return true;
    }
  }
  return false;
}

// Kmesh's sockops object, or a source mutant of it (e2e/mutation): a runfile.
std::string SockopsObject() {
  const char* object = std::getenv("KMESH_E2E_LAB_SOCKOPS_OBJECT");
  return object && *object ? object : "third_party/kmesh/sockops.o";
}

// A plain value's bytes, for map keys and values.
template <typename T>
bpf_probe::ByteView Raw(const T& v) {
  return bpf_probe::ByteView(reinterpret_cast<const uint8_t*>(&v), sizeof v);
}

bool LabelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

const char* FaultName(Fault f) {
  for (const auto& [fault, name] : FaultNames()) {
    if (fault == f) return name;
  }
  return "unknown";
}

Fault ParseFault(const std::string& name) {
  std::string known;
  for (const auto& [fault, n] : FaultNames()) {
    if (name == n) return fault;
    known += std::string(known.empty() ? "" : ", ") + n;
  }
  throw Error("unknown lab fault '" + name + "' (known: " + known + ")");
}

const std::vector<Fault>& AllFaults() {
  static const std::vector<Fault> all = [] {
    std::vector<Fault> v;
    for (const auto& [f, n] : FaultNames()) v.push_back(f);
    return v;
  }();
  return all;
}

std::vector<std::string> Lab::SweepStale() {
  std::vector<std::string> removed;
  for (const auto& n : netns::SweepStale()) removed.push_back("netns " + n);
  for (const auto& m : SweepStaleBpffs()) removed.push_back("bpffs " + m);
  for (const auto& c : SweepStaleCgroups()) removed.push_back("cgroup " + c);
  // Work folders last: the nodes' bpffs were mounted inside them.
  for (const auto& w : SweepStaleFolders("/tmp", "lab")) removed.push_back("workdir " + w);
  return removed;
}

std::unique_ptr<Lab> Lab::Up() {
  // What a crashed earlier run left: namespaces, bpffs mounts, cgroups, work folders.
  SweepStale();
  std::unique_ptr<Lab> lab(new Lab());
  lab->topo_ = Topology::Up();
  lab->workdir_ = "/tmp/" + UniqueName("lab");
  std::filesystem::create_directories(lab->workdir_);
  // Logs are evidence: under Bazel they go to the test's outputs (secrets never do: they stay in workdir).
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  lab->logdir_ = outputs && *outputs ? std::string(outputs) + "/lab-logs" : lab->workdir_;
  std::filesystem::create_directories(lab->logdir_);
  lab->LoadKmesh();
  return lab;
}

void Lab::LoadKmesh() {
  // Per node, in a Kmesh daemon's order (pkg/bpf/workload/loader.go:126-151): sockops first, pinning every
  // map by name; then the XDP object, which reuses those pins (km_auth_res, km_frontend, ...). The XDP
  // loads verify ~976K instructions each, so the nodes load in parallel.
  std::vector<std::unique_ptr<KmeshNode>> nodes;
  for (const auto& n : topo_->nodes()) {
    NodeBpffs bpffs = NodeBpffs::Mount(workdir_, n->spec.name);
    NodeCgroup cgroup = NodeCgroup::Create(n->spec.name);
    SockopsGlobals globals{*net::IpAddr::Parse(n->spec.underlay_ip), CidrBase(n->spec.pod_cidr)};
    KmeshSockops sockops = KmeshSockops::Load(Runfile(SockopsObject()), bpffs, cgroup, globals);
    nodes.push_back(std::unique_ptr<KmeshNode>(
        new KmeshNode{std::move(bpffs), std::move(cgroup), std::move(sockops), nullptr, nullptr}));
  }
  KmeshAuthzDatapath::Options xdp_options;
  // A source mutant of Kmesh's XDP (e2e/mutation) instead of Kmesh's own object.
  if (const char* object = std::getenv("KMESH_E2E_LAB_XDP_OBJECT"); object && *object) {
    xdp_options.object = object;
  }
  std::vector<std::string> errors(nodes.size());
  std::vector<std::thread> loads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    loads.emplace_back([&, i] {
      try {
        nodes[i]->xdp = KmeshAuthzDatapath::Load(nodes[i]->bpffs, xdp_options);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : loads) t.join();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& name = topo_->nodes()[i]->spec.name;
    if (!errors[i].empty()) throw Error("lab: loading Kmesh's XDP datapath on " + name + ": " + errors[i]);
    // The daemon is started from this (long-lived) thread: it dies with the thread that started it.
    PolicyWriterOptions o;
    o.node_name = name;
    o.pin_dir = nodes[i]->pin_dir();
    o.state_dir = workdir_ + "/kmesh-" + name;
    o.run_authorizer = true;
    nodes[i]->daemon = std::make_unique<KmeshPolicyWriter>(o);
    kmesh_[name] = std::move(nodes[i]);
  }
}

Lab::~Lab() {
  // IPsec agents first: their normal stop flushes xfrm and unpins km_nodeinfo from the node's bpffs.
  for (auto& [node, agent] : agents_) agent->Stop(defaults::Command());
  kmesh_.clear();  // daemons, XDP (detached), sockops, node cgroups (their servers killed), bpffs
  topo_.reset();   // processes, pods, nodes
  std::error_code ec;
  if (!workdir_.empty() && std::getenv("KMESH_E2E_KEEP_LAB") == nullptr) {
    std::filesystem::remove_all(workdir_, ec);
  }
}

KmeshNode& Lab::kmesh(const std::string& node) {
  auto it = kmesh_.find(node);
  if (it == kmesh_.end()) throw Error("lab: node " + node + " runs no Kmesh");
  return *it->second;
}

std::optional<uint32_t> Lab::PolicyId(const std::string& node, const std::string& id_key) {
  return kmesh(node).daemon->IdOf(id_key);
}

nlohmann::json Lab::DatapathIdentity() {
  nlohmann::json nodes = nlohmann::json::object();
  const kmesh::lab::DatapathIdentity* first = nullptr;
  for (const auto& [name, k] : kmesh_) {
    const auto& id = k->xdp->identity();
    if (!first) first = &id;
    nlohmann::json progs = nlohmann::json::array();
    for (const auto& p : id.programs) {
      progs.push_back({{"name", p.name},
                       {"kernel_name", p.kernel_name},
                       {"id", p.id},
                       {"tag", p.tag},
                       {"verified_insns", p.verified_insns}});
    }
    progs.push_back({{"name", "sockops_prog"}, {"id", k->sockops.prog_id()}, {"tag", k->sockops.prog_tag()}});
    nodes[name] = {{"programs", progs}, {"pin_dir", k->pin_dir()}, {"daemon_pid", k->daemon->daemon_pid()}};
  }
  nlohmann::json j{{"datapath", "Kmesh's own BPF (sockops + XDP authz) built from a Kmesh tree"},
                   {"nodes", nodes},
                   {"userspace",
                    "kmesh-lab-daemon per node: Kmesh's C deserializer + a port of "
                    "pkg/auth/rbac.go (the lab's stand-in for Kmesh's Go daemon)"},
                   {"waypoint", "the lab's stand-in (no Envoy here): answers 403 like Envoy's RBAC filter"}};
  if (first) {
    j["kmesh_commit"] = first->kmesh_commit;
    j["pinned_commit"] = first->pinned_commit;
    j["tree"] = first->tree_path;
    j["tree_found_by"] = first->tree_found_by;
    j["tree_digest"] = first->tree_digest + " (" + first->digest_vs_pinned + ")";
    j["object"] = first->object;
    j["object_sha256"] = first->object_sha256;
    j["patches"] = first->patches;
    j["sockops_object"] = SockopsObject();
    j["clang"] = first->clang_version;
    j["describe"] = first->Describe();
  }
  return j;
}

const App& Lab::app(const std::string& name) const {
  for (const auto& a : apps_) {
    if (a->name == name) return *a;
  }
  throw Error("lab: no app named " + name);
}

const App& Lab::Deploy(const e2e::AppSpec& spec) {
  for (const auto& a : apps_) {
    if (a->name == spec.name) throw Error("lab: an app named " + spec.name + " is already deployed");
  }
  const auto& nodes = topo_->nodes();
  if (spec.node < 0 || spec.node >= static_cast<int>(nodes.size())) {
    throw Error("lab: app " + spec.name + " asks for node index " + std::to_string(spec.node) +
                "; the lab has " + std::to_string(nodes.size()) + " nodes");
  }
  const std::string& node = nodes[spec.node]->spec.name;
  auto labels = spec.labels;
  labels.emplace("app", spec.name);
  Pod& pod = topo_->AddPod(node, spec.name, spec.k8s_namespace, labels);
  auto app = std::make_unique<App>(
      App{spec.name, spec.kind, node, spec.k8s_namespace, *net::IpAddr::Parse(pod.ip), 0, 0,
          bpf_probe::WorkloadId(pod.uid), "default",
          pod.ip6.empty() ? std::nullopt : std::make_optional(*net::IpAddr::Parse(pod.ip6))});
  if (spec.kind == AppKind::kServer) {
    app->port = kHttpbinPort;
    app->alt_port = kHttpbinAltPort;
    const std::string log = logdir_ + "/" + spec.name + ".log";
    KmeshNode& k = kmesh(node);
    // In the node's cgroup from its first instruction: Kmesh's sockops sees the sockets it accepts.
    std::vector<std::string> argv = {"gunicorn"};
    for (const std::string& ip : {pod.ip, pod.ip6}) {
      if (ip.empty()) continue;  // both ports on every address of the pod (dual stack: IPv4 and IPv6)
      for (uint16_t port : {kHttpbinPort, kHttpbinAltPort}) {
        argv.push_back("-b");
        argv.push_back(HostPort(ip, port));
      }
    }
    // 64 threads: a connection Kmesh's userspace denies (authz_offload = 1) has every later packet
    // dropped, its FIN too, so its server thread waits on it for good; a suite makes about a dozen such
    // connections per family.
    for (const char* arg : {"-w", "1", "--threads", "64", "--timeout", "30", "httpbin:app"})
      argv.push_back(arg);
    auto& proc = topo_->Spawn(pod.ns.ref(), argv, log, k.cgroup.Join({}));
    WaitAccepts(pod.ns.ref(), "httpbin in pod " + pod.name, pod.ip, kHttpbinPort, proc, log);
    if (!pod.ip6.empty()) {
      WaitAccepts(pod.ns.ref(), "httpbin in pod " + pod.name, pod.ip6, kHttpbinPort, proc, log);
    }
    // Enrolment as kmesh-cni / the manage controller do it: xdp_authz on the pod's interface
    // (pkg/cni/plugin/plugin.go enableXdpAuth) and km_manage through Kmesh's own trigger.
    k.xdp->Attach(pod.ns.ref(), "eth0");
    EnrollPod(k.cgroup, pod.ns.ref());
    if (Active(Fault::kXdpDetached)) k.xdp->Detach(pod.ns.ref(), "eth0");
    if (spec.waypoint) {
      Pod& wp = topo_->AddPod(node, spec.name + "-waypoint", spec.k8s_namespace,
                              {{"gateway.istio.io/managed", "istio.io-mesh-controller"}});
      waypoint_pod_[spec.name] = wp.name;
      const std::string policies = workdir_ + "/" + spec.name + "-waypoint-policies.yaml";
      std::ofstream(policies) << "";
      // One waypoint process per family, both enforcing the same policy file; each forwards to the pod
      // in the family it was reached in.
      for (const auto family : {net::Family::kIPv4, net::Family::kIPv6}) {
        const bool v6 = family == net::Family::kIPv6;
        const std::string& listen_ip = v6 ? wp.ip6 : wp.ip;
        if (listen_ip.empty()) continue;
        const std::string wlog = logdir_ + "/" + spec.name + (v6 ? "-waypoint6.log" : "-waypoint.log");
        auto& wproc = topo_->Spawn(
            wp.ns.ref(),
            {Runfile("e2e/lab/waypoint/waypoint"), "--listen", HostPort(listen_ip, kWaypointPort),
             "--upstream", HostPort(v6 ? pod.ip6 : pod.ip, kHttpbinPort), "--policies", policies, "--log",
             WaypointLog(spec.name, family)},
            wlog);
        WaitAccepts(wp.ns.ref(), "waypoint of " + spec.name, listen_ip, kWaypointPort, wproc, wlog);
      }
    }
  }
  apps_.push_back(std::move(app));
  StoreWorkloads();
  WriteManagedPods();
  return *apps_.back();
}

WorkloadSpec Lab::WorkloadOf(const App& app) const {
  const Pod& pod = topo_->pod(app.name);
  std::vector<policy::AuthorizationPolicy> selector_policies;
  for (const auto& a : applied_) {
    if (a.authorization) selector_policies.push_back(a.policy);
  }
  WorkloadSpec w;
  w.uid = pod.uid;
  w.node = pod.node;
  // Every address of the pod, as istiod lists a dual-stack pod's (status.podIPs, IPv4 first as in a
  // dual-stack kind cluster): Kmesh writes a km_frontend entry for each (workload_processor.go:527-540).
  w.addresses = {pod.ip};
  if (!pod.ip6.empty()) w.addresses.push_back(pod.ip6);
  w.policies = workloadapi::WorkloadPolicyNames(selector_policies, pod.k8s_namespace, pod.labels);
  w.name = pod.name;
  w.ns = pod.k8s_namespace;
  w.service_account = app.service_account;
  w.trust_domain = IstiodTrustDomain("cluster.local");
  return w;
}

void Lab::StoreWorkloads() {
  // Every node's daemon knows every workload (km_frontend, the authorizer's workload cache); km_wlpolicy
  // only for its own (workload_processor.go:567-569).
  for (const auto& app : apps_) {
    const WorkloadSpec w = WorkloadOf(*app);
    for (auto& [node, k] : kmesh_) k->daemon->StoreWorkload(w);
  }
  ApplyDatapathFaults();
}

std::vector<const App*> Lab::Selected(const policy::AuthorizationPolicy& p) const {
  std::vector<const App*> out;
  for (const auto& a : apps_) {
    if (a->kind != AppKind::kServer) continue;
    const Pod& pod = topo_->pod(a->name);
    if (pod.k8s_namespace != p.ns) continue;
    if (!p.target_refs.empty()) {
      for (const auto& ref : p.target_refs) {
        if (ref.kind == "Service" && ref.name == a->name && waypoint_pod_.count(a->name))
          out.push_back(a.get());
      }
      continue;
    }
    if (!p.has_selector || LabelsMatch(p.selector, pod.labels)) out.push_back(a.get());
  }
  return out;
}

// Where a policy is enforced, by what it uses (docs/kmesh-offload-contract.md §1): targetRefs (L7) by the
// waypoint stand-in; namespaces and principals by Kmesh's userspace RBAC (XDP defers); the rest by XDP.
policy::Mechanism Lab::MechanismOf(const policy::AuthorizationPolicy& p) const {
  if (!p.target_refs.empty()) return policy::Mechanism::kWaypoint;
  return UsesIdentity(p) ? policy::Mechanism::kUserspace : policy::Mechanism::kXdp;
}

std::vector<policy::AuthorizationPolicy> Lab::Apply(const policy::Manifest& m) {
  // 1. Parse and translate everything first: an error leaves the lab as it was.
  auto policies = policy::ParseManifests(m.text, m.origin);
  auto docs = Documents(m.text);
  std::vector<Applied> fresh;
  for (const auto& p : policies) {
    for (const auto* set : {&applied_, &fresh}) {
      for (const auto& a : *set) {
        if (a.policy.IdKey() == p.IdKey()) {
          throw Error(p.origin.ToString() + ": policy " + p.IdKey() + " is already applied (from " +
                      a.policy.origin.ToString() + "); remove it first");
        }
      }
    }
    Applied a{p, MechanismOf(p), std::nullopt, ""};
    // What istiod sends the node dataplane; targetRefs policies go to the waypoint only (istio-authz-facts
    // §1). L7 fields in a selector policy are refused by Translate, naming the field.
    if (a.mechanism != policy::Mechanism::kWaypoint) a.authorization = workloadapi::Translate(p);
    for (const auto& [line, text] : docs) {
      if (line <= p.origin.line) a.manifest_text = text;
    }
    fresh.push_back(std::move(a));
  }
  // 2. Write, as istiod's push reaches each node's Kmesh: the Authorization resources, then the
  // workloads with their new policy lists.
  for (auto& a : fresh) {
    applied_.push_back(a);
    if (a.authorization) {
      for (auto& [node, k] : kmesh_) k->daemon->ApplyAuthorization(*a.authorization);
    }
  }
  StoreWorkloads();
  for (const auto& app : apps_) {
    if (waypoint_pod_.count(app->name)) RewriteWaypointPolicies(*app);
  }
  return policies;
}

void Lab::Remove(const std::vector<policy::AuthorizationPolicy>& policies) {
  bool changed = false;
  for (const auto& p : policies) {
    auto it = std::find_if(applied_.begin(), applied_.end(),
                           [&](const Applied& a) { return a.policy.IdKey() == p.IdKey(); });
    if (it == applied_.end()) continue;
    const Applied gone = *it;
    applied_.erase(it);
    changed = true;
    if (gone.authorization) {
      for (auto& [node, k] : kmesh_) k->daemon->RemoveAuthorization(gone.policy.IdKey());
    } else {
      for (const App* app : Selected(gone.policy)) RewriteWaypointPolicies(*app);
    }
  }
  if (changed) StoreWorkloads();
}

void Lab::RewriteWaypointPolicies(const App& server) {
  const std::string path = workdir_ + "/" + server.name + "-waypoint-policies.yaml";
  const std::string tmp = path + ".new";
  {
    std::ofstream f(tmp);
    bool first = true;
    for (const auto& a : applied_) {
      if (a.mechanism != policy::Mechanism::kWaypoint) continue;
      const auto sel = Selected(a.policy);
      if (std::find(sel.begin(), sel.end(), &server) == sel.end()) continue;
      if (!first) f << "---\n";
      f << a.manifest_text;
      first = false;
    }
  }
  std::filesystem::rename(tmp, path);  // atomic: the waypoint never reads half a file
}

net::Endpoint Lab::ServiceAddress(const App& server) const {
  // The family the suite reaches the server in (e2e::OverFamily): its address says which.
  const auto wp = waypoint_pod_.find(server.name);
  if (wp == waypoint_pod_.end() || Active(Fault::kWaypointBypassed)) return {server.ip, server.port};
  const Pod& pod = topo_->pod(wp->second);
  return {*net::IpAddr::Parse(server.ip.is_v4() ? pod.ip : pod.ip6), kWaypointPort};
}

const std::string& Lab::UnderlayIp(const NodeSpec& n, net::Family family) {
  if (family == net::Family::kIPv4) return n.underlay_ip;
  if (n.underlay_ip6.empty()) throw Error("lab: node " + n.name + " has no IPv6 address (IPv4-only node)");
  return n.underlay_ip6;
}

const std::string& Lab::PodCidr(const NodeSpec& n, net::Family family) {
  if (family == net::Family::kIPv4) return n.pod_cidr;
  if (n.pod_cidr6.empty()) throw Error("lab: node " + n.name + " has no IPv6 pod CIDR (IPv4-only node)");
  return n.pod_cidr6;
}

void Lab::SetIpsecFamily(net::Family family) {
  if (!agents_.empty() && family != ipsec_family_) {
    throw Error("lab: the IPsec family is set before the first secret (the agents already run over " +
                std::string(family == net::Family::kIPv6 ? "IPv4" : "IPv6") + ")");
  }
  for (const auto& n : topo_->nodes()) UnderlayIp(n->spec, family);  // every node has an address in it
  ipsec_family_ = family;
}

void Lab::StartAgent(const std::string& node) {
  Node& n = topo_->node(node);
  // The node's KmeshNodeInfo in the IPsec family: its InternalIP and podCIDR of that family.
  agents_[node] =
      &topo_->Spawn(n.ns.ref(),
                    {Runfile("e2e/lab/kmesh-lab-agent"), "--node", node, "--address",
                     UnderlayIp(n.spec, ipsec_family_), "--pod-cidr", PodCidr(n.spec, ipsec_family_),
                     "--boot-id", n.boot_id, "--state", ipsec_dir_, "--pin-dir", kmesh(node).pin_dir()},
                    AgentLog(node));
}

std::string Lab::AgentLog(const std::string& node) const { return logdir_ + "/agent-" + node + ".log"; }

std::string Lab::WaypointLog(const std::string& server, net::Family family) const {
  return logdir_ + "/" + server + (family == net::Family::kIPv6 ? "-waypoint6" : "-waypoint") +
         "-requests.jsonl";
}

void Lab::ApplySecret(const ipsec::IpsecSecret& secret) {
  if (ipsec_dir_.empty()) {
    ipsec_dir_ = workdir_ + "/ipsec";
    std::filesystem::create_directories(ipsec_dir_ + "/kni");
    std::filesystem::create_directories(ipsec_dir_ + "/faults");
    std::filesystem::create_directories(ipsec_dir_ + "/pods");
    WriteAgentFaults();
    WriteManagedPods();
  }
  // Like kubelet updating the Secret volume: a new file, renamed into place.
  const std::string path = ipsec_dir_ + "/secret.json";
  {
    std::ofstream f(path + ".new");
    f << secret.Serialize();
  }
  chmod((path + ".new").c_str(), 0600);
  std::filesystem::rename(path + ".new", path);
  if (agents_.empty()) {
    for (const auto& n : topo_->nodes()) StartAgent(n->spec.name);
  }
}

void Lab::RestartDataplane(const std::string& node) {
  auto it = agents_.find(node);
  if (it == agents_.end()) throw Error("lab: node " + node + " runs no IPsec agent (apply a secret first)");
  // A restart of Kmesh's pod with its DaemonSet in place: the daemon exits with exit type Restart
  // (daemon/manager/manager.go:119), which keeps its BPF pinned; the lab's teardown is a Normal exit.
  std::filesystem::create_directories(ipsec_dir_ + "/exit");
  std::ofstream(ipsec_dir_ + "/exit/" + node) << "restart\n";
  it->second->Stop(defaults::Command());
  StartAgent(node);
}

void Lab::CrashRebootNode(const std::string& node) {
  auto it = agents_.find(node);
  if (it == agents_.end()) throw Error("lab: node " + node + " runs no IPsec agent (apply a secret first)");
  ::kill(it->second->pid(), SIGKILL);  // a crash: no Stop, so its KmeshNodeInfo is not deleted
  it->second->Stop(defaults::Command());
  Node& n = topo_->node(node);
  // What a reboot takes from the node's kernel for IPsec: xfrm, and /sys/fs/bpf (km_nodeinfo's pin).
  IpBatch(n.ns.ref(), {"xfrm policy flush", "xfrm state flush"});
  std::error_code ec;
  std::filesystem::remove(kmesh(node).pin_dir() + "/" KM_MAP_NODEINFO, ec);
  std::string boot_id;
  std::ifstream("/proc/sys/kernel/random/uuid") >> boot_id;
  if (boot_id.size() < 36) throw Error("lab: cannot read a new boot id from /proc/sys/kernel/random/uuid");
  n.boot_id = boot_id;
  StartAgent(node);
}

void Lab::WriteManagedPods() {
  // The lab's stand-in for the pod informer of Kmesh's manage controller: every pod of a node is managed
  // (as in Kmesh's e2e, whose test namespace is labelled istio.io/dataplane-mode=Kmesh); the node's agent
  // attaches tc_mark_encrypt to each one's host-side veth (manage_controller.go:251-266, 516-544).
  if (ipsec_dir_.empty()) return;
  for (const auto& n : topo_->nodes()) {
    std::string text;
    for (const auto& p : topo_->pods()) {
      if (p->node == n->spec.name) text += p->name + " " + p->host_veth + "\n";
    }
    const std::string path = ipsec_dir_ + "/pods/" + n->spec.name;
    std::ofstream(path + ".new") << text;
    std::filesystem::rename(path + ".new", path);
  }
}

void Lab::WriteAgentFaults() {
  if (ipsec_dir_.empty()) return;
  std::map<std::string, std::string> per_node;
  for (Fault f : {Fault::kXfrmStateMissing, Fault::kWrongKey, Fault::kEgressNotMarked,
                  Fault::kRotationNotApplied, Fault::kNodeinfoEntryMissing}) {
    if (Active(f)) per_node[fault_node_[f]] += std::string(FaultName(f)) + "\n";
  }
  for (const auto& n : topo_->nodes()) {
    const std::string path = ipsec_dir_ + "/faults/" + n->spec.name;
    std::ofstream(path + ".new") << per_node[n->spec.name];
    std::filesystem::rename(path + ".new", path);
  }
}

void Lab::Inject(Fault f, const std::string& node) {
  topo_->node(node);  // validates the name
  faults_.insert(f);
  fault_node_[f] = node;
  WriteAgentFaults();
  switch (f) {
    case Fault::kXdpDetached:
      for (const auto& a : apps_) {
        const Pod& pod = topo_->pod(a->name);
        auto& xdp = *kmesh(pod.node).xdp;
        if (a->kind == AppKind::kServer && xdp.Attached(pod.ns.ref(), "eth0"))
          xdp.Detach(pod.ns.ref(), "eth0");
      }
      break;
    default:
      break;  // IPsec faults act through the agents; the waypoint bypass through ServiceAddress
  }
  ApplyDatapathFaults();
}

void Lab::SetAuthzOffload(bool on) {
  for (auto& [node, k] : kmesh_) k->xdp->SetAuthzOffload(on ? 1 : 0);
  ApplyDatapathFaults();
}

void Lab::Clear(Fault f) {
  faults_.erase(f);
  WriteAgentFaults();
  switch (f) {
    case Fault::kTailCallPoliciesCheckEmptied:
    case Fault::kTailCallPolicyCheckEmptied: {
      const uint32_t slot =
          f == Fault::kTailCallPoliciesCheckEmptied ? KM_TAIL_CALL_POLICIES_CHECK : KM_TAIL_CALL_POLICY_CHECK;
      const char* prog = f == Fault::kTailCallPoliciesCheckEmptied ? "policies_check" : "policy_check";
      for (auto& [node, k] : kmesh_) {
        const uint32_t fd = static_cast<uint32_t>(k->xdp->prog_fd(prog));
        k->xdp->OpenMap(KM_MAP_XDP_TAILCALL).Update(Raw(slot), Raw(fd));
      }
      break;
    }
    case Fault::kAuthzOffloadOff:
      for (auto& [node, k] : kmesh_) k->xdp->SetAuthzOffload(1);
      break;
    case Fault::kAuthzPolicyMissing:
    case Fault::kAuthzPolicyActionFlipped:
      // What Kmesh's daemon wrote, written again.
      for (const auto& a : applied_) {
        if (!a.authorization) continue;
        for (auto& [node, k] : kmesh_) k->daemon->ApplyAuthorization(*a.authorization);
      }
      break;
    case Fault::kFrontendMissing:
    case Fault::kFrontendWrong:
    case Fault::kWlPolicyMissing:
    case Fault::kWlPolicyHole:
      StoreWorkloads();
      break;
    case Fault::kManageMissing:
      for (const auto& a : apps_) {
        if (a->kind != AppKind::kServer) continue;
        const Pod& pod = topo_->pod(a->name);
        EnrollPod(kmesh(pod.node).cgroup, pod.ns.ref());
      }
      break;
    case Fault::kXdpDetached:
      for (const auto& a : apps_) {
        const Pod& pod = topo_->pod(a->name);
        auto& xdp = *kmesh(pod.node).xdp;
        if (a->kind == AppKind::kServer && !xdp.Attached(pod.ns.ref(), "eth0"))
          xdp.Attach(pod.ns.ref(), "eth0");
      }
      break;
    default:
      break;
  }
}

void Lab::ApplyDatapathFaults() {
  for (auto& [node, k] : kmesh_) {
    if (Active(Fault::kTailCallPoliciesCheckEmptied)) {
      k->xdp->OpenMap(KM_MAP_XDP_TAILCALL).Delete(Raw(uint32_t{KM_TAIL_CALL_POLICIES_CHECK}));
    }
    if (Active(Fault::kTailCallPolicyCheckEmptied)) {
      k->xdp->OpenMap(KM_MAP_XDP_TAILCALL).Delete(Raw(uint32_t{KM_TAIL_CALL_POLICY_CHECK}));
    }
    if (Active(Fault::kAuthzOffloadOff)) k->xdp->SetAuthzOffload(0);
    if (Active(Fault::kAuthzPolicyMissing) || Active(Fault::kAuthzPolicyActionFlipped)) {
      const bpf_probe::AuthzPolicyMap view(k->xdp->OpenMap(KM_MAP_AUTHZ_POLICY));
      const bpf_probe::Map& policies = view.map();
      for (uint32_t id : view.PolicyIds()) {
        if (Active(Fault::kAuthzPolicyMissing)) {
          policies.Delete(Raw(id));
          continue;
        }
        auto value = policies.Lookup(Raw(id));
        if (!value || value->size() != sizeof(km_authz_policy_value)) continue;
        km_authz_policy_value v;
        std::memcpy(&v, value->data(), sizeof v);
        v.action = v.action == KM_ACTION_DENY ? KM_ACTION_ALLOW : KM_ACTION_DENY;
        policies.Update(Raw(id), Raw(v));
      }
    }
    for (const auto& a : apps_) {
      if (a->kind != AppKind::kServer) continue;
      for (const auto& address : {std::optional<net::IpAddr>(a->ip), a->ip6}) {
        if (!address) continue;
        const auto frontend_key = bpf_probe::EncodeFrontendKey(*address);
        if (Active(Fault::kFrontendMissing)) k->xdp->OpenMap(KM_MAP_FRONTEND).Delete(Raw(frontend_key));
        if (Active(Fault::kFrontendWrong)) {
          // Another workload's id: a stale entry left by the pod that had this address before.
          for (const auto& other : apps_) {
            if (other.get() == a.get()) continue;
            k->xdp->OpenMap(KM_MAP_FRONTEND).Update(Raw(frontend_key), Raw(other->workload_id));
            break;
          }
        }
      }
      const bpf_probe::Map wl = k->xdp->OpenMap(KM_MAP_WLPOLICY);
      if (Active(Fault::kWlPolicyMissing)) wl.Delete(Raw(a->workload_id));
      if (Active(Fault::kWlPolicyHole)) {
        if (auto value = wl.Lookup(Raw(a->workload_id)); value && value->size() == sizeof(km_wl_policies)) {
          km_wl_policies p;
          std::memcpy(&p, value->data(), sizeof p);
          if (p.policy_ids[0] != 0) {
            // {a, b, c, d} -> {0, a, b, c}: XDP stops at the empty slot (authz.h:572-586).
            std::memmove(&p.policy_ids[1], &p.policy_ids[0], 3 * sizeof p.policy_ids[0]);
            p.policy_ids[0] = 0;
            wl.Update(Raw(a->workload_id), Raw(p));
          }
        }
      }
      if (Active(Fault::kManageMissing)) {
        k->sockops.map("km_manage").Delete(ManagerKey(a->ip));
      }
    }
  }
}

}  // namespace kmesh::lab
