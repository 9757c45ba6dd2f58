#include "e2e/lab/lab.h"

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/stat.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::lab {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::pair<Fault, const char*>>& FaultNames() {
  static const std::vector<std::pair<Fault, const char*>> names = {
      {Fault::kXdpDetached, "xdp-detached"},
      {Fault::kPolicyIgnored, "policy-ignored"},
      {Fault::kDenyNotCached, "deny-not-cached"},
      {Fault::kXfrmStateMissing, "xfrm-state-missing"},
      {Fault::kWrongKey, "wrong-key"},
      {Fault::kEgressNotMarked, "egress-not-marked"},
      {Fault::kRotationNotApplied, "rotation-not-applied"},
      {Fault::kWaypointBypassed, "waypoint-bypassed"},
  };
  return names;
}

// True once something accepts TCP connections on ip:port, tried from inside `ns`.
bool Accepts(const netns::NetnsRef& ns, const std::string& ip, uint16_t port) {
  return netns::RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  });
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

std::unique_ptr<Lab> Lab::Up() {
  std::unique_ptr<Lab> lab(new Lab());
  lab->topo_ = Topology::Up();
  lab->workdir_ = "/tmp/" + UniqueName("lab");
  std::filesystem::create_directories(lab->workdir_);
  // Logs are evidence: under Bazel they go to the test's outputs (secrets never do: they stay in workdir).
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  lab->logdir_ = outputs && *outputs ? std::string(outputs) + "/lab-logs" : lab->workdir_;
  std::filesystem::create_directories(lab->logdir_);
  return lab;
}

Lab::~Lab() {
  datapaths_.clear();  // detach XDP, close maps (before the pods go)
  topo_.reset();       // processes, pods, nodes
  std::error_code ec;
  if (!workdir_.empty() && std::getenv("KMESH_E2E_KEEP_LAB") == nullptr) {
    std::filesystem::remove_all(workdir_, ec);
  }
}

AuthzDatapath& Lab::datapath(const std::string& node) {
  auto& dp = datapaths_[node];
  if (!dp) {
    dp = std::make_unique<AuthzDatapath>();
    SyncXdpFaults();
  }
  return *dp;
}

const App& Lab::app(const std::string& name) const {
  for (const auto& a : apps_) {
    if (a->name == name) return *a;
  }
  throw Error("lab: no app named " + name);
}

const App& Lab::Deploy(const AppSpec& spec) {
  for (const auto& a : apps_) {
    if (a->name == spec.name) throw Error("lab: an app named " + spec.name + " is already deployed");
  }
  auto labels = spec.labels;
  labels.emplace("app", spec.name);
  Pod& pod = topo_->AddPod(spec.node, spec.name, spec.k8s_namespace, labels);
  auto app = std::make_unique<App>();
  app->name = spec.name;
  app->kind = spec.kind;
  app->pod = pod.name;
  app->ip = pod.ip;
  app->workload_id = bpf_probe::WorkloadId(pod.uid);
  if (spec.kind == AppKind::kHttpbin) {
    app->port = kHttpbinPort;
    const std::string log = logdir_ + "/" + spec.name + ".log";
    auto& proc = topo_->Spawn(pod.ns.ref(),
                              {"gunicorn", "-b", pod.ip + ":" + std::to_string(kHttpbinPort), "-b",
                               pod.ip + ":" + std::to_string(kHttpbinAltPort), "-w", "1",
                               "--threads", "8", "--timeout", "30", "httpbin:app"},
                              log);
    WaitAccepts(pod.ns.ref(), "httpbin in pod " + pod.name, pod.ip, kHttpbinPort, proc, log);
    datapath(spec.node).Enroll(pod, app->workload_id);
    if (Active(Fault::kXdpDetached)) datapath(spec.node).DetachXdp(pod);
    if (spec.waypoint) {
      Pod& wp = topo_->AddPod(spec.node, spec.name + "-waypoint", spec.k8s_namespace,
                              {{"gateway.istio.io/managed", "istio.io-mesh-controller"}});
      app->waypoint_pod = wp.name;
      app->waypoint_ip = wp.ip;
      app->waypoint_port = kWaypointPort;
      const std::string policies = workdir_ + "/" + spec.name + "-waypoint-policies.yaml";
      std::ofstream(policies) << "";
      const std::string wlog = logdir_ + "/" + spec.name + "-waypoint.log";
      auto& wproc = topo_->Spawn(
          wp.ns.ref(),
          {Runfile("e2e/lab/waypoint/waypoint"), "--listen", wp.ip + ":" + std::to_string(kWaypointPort),
           "--upstream", pod.ip + ":" + std::to_string(kHttpbinPort), "--policies", policies, "--log",
           WaypointLog(spec.name)},
          wlog);
      WaitAccepts(wp.ns.ref(), "waypoint of " + spec.name, wp.ip, kWaypointPort, wproc, wlog);
    }
  }
  apps_.push_back(std::move(app));
  return *apps_.back();
}

std::vector<const App*> Lab::Selected(const policy::AuthorizationPolicy& p) const {
  std::vector<const App*> out;
  for (const auto& a : apps_) {
    if (a->kind != AppKind::kHttpbin) continue;
    const Pod& pod = topo_->pod(a->pod);
    if (pod.k8s_namespace != p.ns) continue;
    if (!p.target_refs.empty()) {
      for (const auto& ref : p.target_refs) {
        if (ref.kind == "Service" && ref.name == a->name && !a->waypoint_pod.empty()) out.push_back(a.get());
      }
      continue;
    }
    if (!p.has_selector || LabelsMatch(p.selector, pod.labels)) out.push_back(a.get());
  }
  return out;
}

Enforcer Lab::EnforcerOf(const policy::AuthorizationPolicy& p) const {
  return p.target_refs.empty() ? Enforcer::kXdp : Enforcer::kWaypoint;
}

std::vector<policy::AuthorizationPolicy> Lab::Apply(const policy::Manifest& m) {
  // 1. Parse and compile everything first: an error leaves the lab as it was.
  auto policies = policy::ParseManifests(m.text, m.origin);
  NamespaceIps ns_ips;
  for (const auto& p : topo_->pods()) ns_ips[p->k8s_namespace].push_back(p->ip);
  auto docs = Documents(m.text);
  std::vector<Applied> fresh;
  for (const auto& p : policies) {
    for (const auto& a : applied_) {
      if (a.policy.IdKey() == p.IdKey()) {
        throw Error(p.origin.ToString() + ": policy " + p.IdKey() + " is already applied (from " +
                    a.policy.origin.ToString() + "); remove it first");
      }
    }
    Applied a{p, Compile(p, ns_ips), ""};
    for (const auto& [line, text] : docs) {
      if (line <= p.origin.line) a.manifest_text = text;
    }
    for (const App* app : Selected(p)) {
      size_t n = 1;
      for (const auto* set : {&applied_, &fresh}) {
        for (const auto& other : *set) {
          for (const App* s : Selected(other.policy)) n += s == app && other.compiled.enforcer == Enforcer::kXdp;
        }
      }
      if (a.compiled.enforcer == Enforcer::kXdp && n > KM_MAX_MEMBER_NUM_PER_POLICY) {
        throw Error(p.origin.ToString() + ": policy " + p.IdKey() + " would be the 5th policy of workload " +
                    app->name + "; Kmesh keeps at most 4 per workload (km_wlpolicy)");
      }
    }
    fresh.push_back(std::move(a));
  }
  // 2. Write.
  for (auto& a : fresh) {
    applied_.push_back(a);
    if (a.compiled.enforcer == Enforcer::kXdp) {
      for (const App* app : Selected(a.policy)) datapath(topo_->pod(app->pod).node).PutPolicy(a.compiled.id, a.compiled.xdp);
    }
  }
  for (const auto& app : apps_) {
    if (app->kind != AppKind::kHttpbin) continue;
    std::vector<uint32_t> ids;
    for (const auto& a : applied_) {
      if (a.compiled.enforcer != Enforcer::kXdp) continue;
      for (const App* s : Selected(a.policy)) {
        if (s == app.get()) ids.push_back(a.compiled.id);
      }
    }
    datapath(topo_->pod(app->pod).node).SetWorkloadPolicies(app->workload_id, ids);
    if (!app->waypoint_pod.empty()) RewriteWaypointPolicies(*app);
  }
  return policies;
}

void Lab::Remove(const std::vector<policy::AuthorizationPolicy>& policies) {
  for (const auto& p : policies) {
    auto it = std::find_if(applied_.begin(), applied_.end(),
                           [&](const Applied& a) { return a.policy.IdKey() == p.IdKey(); });
    if (it == applied_.end()) continue;
    const Applied gone = *it;
    applied_.erase(it);
    if (gone.compiled.enforcer == Enforcer::kXdp) {
      for (const App* app : Selected(gone.policy)) {
        auto& dp = datapath(topo_->pod(app->pod).node);
        std::vector<uint32_t> ids;
        for (const auto& a : applied_) {
          if (a.compiled.enforcer != Enforcer::kXdp) continue;
          for (const App* s : Selected(a.policy)) {
            if (s == app) ids.push_back(a.compiled.id);
          }
        }
        dp.SetWorkloadPolicies(app->workload_id, ids);
        dp.DeletePolicy(gone.compiled.id);
      }
    } else {
      for (const App* app : Selected(gone.policy)) RewriteWaypointPolicies(*app);
    }
  }
}

void Lab::RewriteWaypointPolicies(const App& server) {
  const std::string path = workdir_ + "/" + server.name + "-waypoint-policies.yaml";
  const std::string tmp = path + ".new";
  {
    std::ofstream f(tmp);
    bool first = true;
    for (const auto& a : applied_) {
      if (a.compiled.enforcer != Enforcer::kWaypoint) continue;
      const auto sel = Selected(a.policy);
      if (std::find(sel.begin(), sel.end(), &server) == sel.end()) continue;
      if (!first) f << "---\n";
      f << a.manifest_text;
      first = false;
    }
  }
  std::filesystem::rename(tmp, path);  // atomic: the waypoint never reads half a file
}

std::pair<std::string, uint16_t> Lab::ServiceAddress(const App& server) const {
  if (!server.waypoint_pod.empty() && !Active(Fault::kWaypointBypassed)) {
    return {server.waypoint_ip, server.waypoint_port};
  }
  return {server.ip, server.port};
}

void Lab::SyncXdpFaults() {
  uint32_t bits = 0;
  if (Active(Fault::kPolicyIgnored)) bits |= LAB_FAULT_POLICY_IGNORED;
  if (Active(Fault::kDenyNotCached)) bits |= LAB_FAULT_DENY_NOT_CACHED;
  for (auto& [node, dp] : datapaths_) {
    if (dp) dp->SetFaults(bits);
  }
}

void Lab::StartAgent(const std::string& node) {
  Node& n = topo_->node(node);
  agents_[node] = &topo_->Spawn(n.ns.ref(),
                                {Runfile("e2e/lab/kmesh-lab-agent"), "--node", node, "--address", n.spec.underlay_ip,
                                 "--pod-cidr", n.spec.pod_cidr, "--boot-id", n.boot_id, "--state", ipsec_dir_},
                                AgentLog(node));
}

std::string Lab::AgentLog(const std::string& node) const { return logdir_ + "/agent-" + node + ".log"; }

std::string Lab::WaypointLog(const std::string& server) const { return logdir_ + "/" + server + "-waypoint-requests.jsonl"; }

void Lab::ApplySecret(const ipsec::IpsecSecret& secret) {
  if (ipsec_dir_.empty()) {
    ipsec_dir_ = workdir_ + "/ipsec";
    std::filesystem::create_directories(ipsec_dir_ + "/kni");
    std::filesystem::create_directories(ipsec_dir_ + "/faults");
    WriteAgentFaults();
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
  it->second->Stop(defaults::Command());
  StartAgent(node);
}

void Lab::WriteAgentFaults() {
  if (ipsec_dir_.empty()) return;
  std::map<std::string, std::string> per_node;
  for (Fault f : {Fault::kXfrmStateMissing, Fault::kWrongKey, Fault::kEgressNotMarked, Fault::kRotationNotApplied}) {
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
        const Pod& pod = topo_->pod(a->pod);
        if (a->kind == AppKind::kHttpbin && datapath(pod.node).Attached(pod)) datapath(pod.node).DetachXdp(pod);
      }
      break;
    case Fault::kPolicyIgnored:
    case Fault::kDenyNotCached:
      SyncXdpFaults();
      break;
    default:
      break;  // IPsec faults act through the agents; the waypoint bypass through ServiceAddress
  }
}

void Lab::Clear(Fault f) {
  faults_.erase(f);
  WriteAgentFaults();
  switch (f) {
    case Fault::kXdpDetached:
      for (const auto& a : apps_) {
        const Pod& pod = topo_->pod(a->pod);
        if (a->kind == AppKind::kHttpbin && !datapath(pod.node).Attached(pod)) datapath(pod.node).AttachXdp(pod);
      }
      break;
    case Fault::kPolicyIgnored:
    case Fault::kDenyNotCached:
      SyncXdpFaults();
      break;
    default:
      break;
  }
}

}  // namespace kmesh::lab
