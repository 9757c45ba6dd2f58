#include "e2e/kube/kube_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "e2e/framework/case_output.h"
#include "e2e/policy/support.h"

namespace kmesh::kube {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string Ms(milliseconds m) { return std::to_string(m.count()) + " ms"; }

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Live envs, so that an env the suite never destroys (a static left at exit, an exception in a fixture)
// still removes what it created when the process exits.
std::mutex g_live_mu;
std::set<KubeEnv*>& Live() {
  static auto* s = new std::set<KubeEnv*>();
  return *s;
}

void CleanupLiveAtExit() {
  std::vector<KubeEnv*> envs;
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    envs.assign(Live().begin(), Live().end());
  }
  for (KubeEnv* e : envs) {
    for (const auto& line : e->CleanupNow()) std::cerr << "kube cleanup at exit: " << line << "\n";
  }
}

std::string Seconds(milliseconds m) { return std::to_string((m.count() + 999) / 1000) + "s"; }

}  // namespace

// ---- preflight ----

ClusterFacts Preflight(Kubectl& k, const std::string& kmesh_ns) {
  const KubectlConfig& c = k.config();
  if (!k.dry_run()) {
    if (c.Files().empty()) {
      throw Error(
          "kube env: no kubeconfig: KUBECONFIG is not set and neither is HOME, so kubectl would look for "
          "no cluster. Set KUBECONFIG (bazel: --config=kind passes KUBECONFIG and HOME through), or for "
          "Kmesh's "
          "kind cluster `kind get kubeconfig --name kmesh-testing > /tmp/kmesh-testing.kubeconfig`. Without "
          "a "
          "cluster, run the lab env (KMESH_E2E_ENV=lab) or a dry run (KMESH_E2E_KUBE_DRY_RUN=1).");
    }
    std::stringstream paths(c.Files());
    for (std::string p; std::getline(paths, p, ':');) {
      if (!p.empty() && access(p.c_str(), R_OK) != 0) {
        const bool exists = std::filesystem::exists(p);
        throw Error(
            "kube env: " + c.Describe() + " names " + p + ", which is " +
            (exists ? "not readable" : "missing") +
            (c.kubeconfig.empty()
                 ? " (kind writes it when it creates a cluster; else set KUBECONFIG, e.g. after `kind get "
                   "kubeconfig --name kmesh-testing > /tmp/kmesh-testing.kubeconfig`; KMESH_E2E_ENV=lab or "
                   "KMESH_E2E_KUBE_DRY_RUN=1 need no cluster)"
                 : " (inside `bazel test`, --config=kind passes KUBECONFIG through; use an absolute path)"));
      }
    }
    if (FindExecutable(c.binary).empty()) {
      throw Error("kube env: kubectl not found (looked for \"" + c.binary + "\"" +
                  (c.binary.find('/') == std::string::npos ? " on PATH=" + Env("PATH", "") : "") +
                  "). Install kubectl or set KMESH_E2E_KUBECTL=/path/to/kubectl (bazel: --test_env=PATH or "
                  "--test_env=KMESH_E2E_KUBECTL).");
    }
  }
  ClusterFacts f;
  const milliseconds reach = defaults::KubeReachable();
  const auto v =
      k.Try({"version", "-o", "json", "--request-timeout=" + Seconds(reach)}, reach + defaults::Kubectl());
  auto vj = nlohmann::json::parse(v.out, nullptr, false);
  if (!v.ok() || vj.is_discarded() || !vj.contains("serverVersion")) {
    std::string why = v.err.empty() ? v.out : v.err;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Error("kube env: the cluster is unreachable: `" + ShellJoin(v.argv) + "` " +
                (v.timed_out ? "timed out" : "exited " + std::to_string(v.exit_code)) +
                (why.empty() ? "" : ": " + why) + " (" + c.Describe() +
                (c.context.empty() ? "" : ", context " + c.context) +
                "; `kubectl cluster-info` tells more; for kind, `kind get clusters` lists what runs)");
  }
  f.server_version = ParseServerVersion(vj, "kubectl version");

  f.kmesh_pods =
      ParsePodList(k.GetJson({"get", "pods", "-n", kmesh_ns, "-l", "app=kmesh"}, "look for Kmesh's pods"),
                   "Kmesh pods (" + kmesh_ns + ", -l app=kmesh)");
  if (f.kmesh_pods.empty()) {
    throw Error("kube env: Kmesh is not installed: no pods with label app=kmesh in namespace " + kmesh_ns +
                " (Kmesh's CI installs it with `helm install kmesh deploy/charts/kmesh-helm -n kmesh-system "
                "--create-namespace`; kmesh-facts.md §5)");
  }
  for (const auto& p : f.kmesh_pods) {
    if (const std::string problem = PodProblem(p); !problem.empty()) {
      throw Error("kube env: Kmesh pod " + p.Describe() + " is broken: " + problem);
    }
    if (p.phase != "Running" || !p.ready) {
      throw Error("kube env: Kmesh pod " + p.Describe() + " is not running and ready (`kubectl -n " +
                  kmesh_ns + " describe pod " + p.name + "`)");
    }
  }
  f.nodes = ParseNodeList(k.GetJson({"get", "nodes"}, "list the nodes"), "kubectl get nodes");
  if (f.nodes.size() < 2) {
    throw Error(
        "kube env: the suites need two nodes (server and client on different nodes, IPsec between them); the "
        "cluster has " +
        std::to_string(f.nodes.size()));
  }
  for (const auto& n : f.nodes) {
    bool has = false;
    for (const auto& p : f.kmesh_pods) has |= p.node == n.name;
    if (!has)
      throw Error("kube env: node " + n.name +
                  " has no Kmesh pod (the daemonset does not cover it: taints?)");
  }
  f.kmesh_flags = ParseKmeshDaemonFlags(f.kmesh_pods.front());
  for (const auto& p : f.kmesh_pods) {
    const auto flags = ParseKmeshDaemonFlags(p);
    if (flags.mode != "dual-engine") {
      throw Error("kube env: Kmesh pod " + p.name + " runs `" + flags.command_line + "`: mode " +
                  (flags.mode.empty() ? "not given" : flags.mode) +
                  "; XDP authorization runs only with --mode=dual-engine (kmesh-facts.md §1.2)");
    }
  }
  return f;
}

void RequireIpsec(const ClusterFacts& facts) {
  for (const auto& p : facts.kmesh_pods) {
    const auto flags = ParseKmeshDaemonFlags(p);
    if (!flags.ipsec) {
      throw Error(
          "kube env: IPsec is not enabled: Kmesh pod " + p.name + " on " + p.node + " runs `" +
          flags.command_line +
          "`, which lacks --enable-ipsec=true (Kmesh's e2e passes it in the helm values' kmeshDaemonArgs)");
    }
  }
}

std::string PodWorkloadUid(const std::string& cluster_id, const std::string& ns, const std::string& pod) {
  return cluster_id + "//Pod/" + ns + "/" + pod;
}

// ---- options ----

KubeOptions KubeOptions::FromEnvironment() {
  KubeOptions o;
  o.run_id = "r" + std::to_string(getpid()) + "-" + std::to_string(std::time(nullptr));
  o.cluster_id = Env("KMESH_E2E_KUBE_CLUSTER_ID", "Kubernetes");
  o.images = Images::FromEnvironment();
  o.node_access = NodeAccessOptions::FromEnvironment();
  o.node_access.run_id = o.run_id;
  // Needed only by the probe transport; a missing binary is reported when a copy is needed, after the
  // cluster checks (which say more about a misconfigured run).
  try {
    o.node_access.local_probe = Runfile("tools/probe/kmesh-probe");
  } catch (const Error& e) {
    o.node_access.local_probe_problem = e.what();
  }
  return o;
}

// ---- FortioRun ----

FortioRun::FortioRun(netns::Process p, milliseconds bound, std::string where, double rps)
    : p_(std::move(p)), bound_(bound), where_(std::move(where)), rps_(rps) {}

e2e::LoadReport FortioRun::Wait() {
  const auto r = p_.Wait(bound_);
  if (r.timed_out) throw Error(where_ + ": " + DescribeResult(r));
  result_ = ParseFortioJson(r.out, where_ + " (" + DescribeResult(r) + ")");
  return ToLoadReport(result_, rps_);
}

// ---- KubeEnv ----

KubeEnv::KubeEnv(std::unique_ptr<Kubectl> kubectl, KubeOptions options)
    : k_(std::move(kubectl)), opts_(std::move(options)) {
  if (opts_.run_id.empty())
    opts_.run_id = "r" + std::to_string(getpid()) + "-" + std::to_string(std::time(nullptr));
  if (opts_.node_access.run_id.empty()) opts_.node_access.run_id = opts_.run_id;
  opts_.node_access.kmesh_namespace = opts_.kmesh_namespace;
  facts_ = Preflight(*k_, opts_.kmesh_namespace);
  if (opts_.workdir.empty()) opts_.workdir = "/tmp/kmesh-e2e-kube-" + opts_.run_id;
  std::error_code ec;
  std::filesystem::create_directories(opts_.workdir, ec);
  if (ec) throw Error("kube env: cannot create " + opts_.workdir + ": " + ec.message());
  chmod(opts_.workdir.c_str(), 0700);
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    Live().insert(this);
  }
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(CleanupLiveAtExit); });
  next_port_ = static_cast<uint32_t>(getpid() % 1000) * 20;
}

std::unique_ptr<KubeEnv> KubeEnv::FromEnvironment() {
  return std::make_unique<KubeEnv>(Kubectl::FromEnvironment(), KubeOptions::FromEnvironment());
}

KubeEnv::~KubeEnv() {
  for (const auto& line : CleanupNow()) std::cerr << "kube cleanup: " << line << "\n";
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    Live().erase(this);
  }
  std::error_code ec;
  std::filesystem::remove_all(opts_.workdir, ec);
  // The command log is evidence of what the run did to the cluster.
  try {
    std::ofstream log(e2e::RunOutputDir() + "/kube-commands.log", std::ios::app);
    for (const auto& e : k_->Log()) {
      log << e.command << "    # exit " << e.exit_code << (e.timed_out ? " (timed out)" : "") << ", "
          << e.elapsed.count() << " ms\n";
    }
  } catch (const std::exception&) {
  }
  if (k_->dry_run()) {
    std::cerr << "kube env: DRY RUN: " << k_->Log().size()
              << " commands printed, none run; nothing was verified and no probe of this run can pass\n";
  }
}

std::vector<std::string> KubeEnv::CleanupNow() { return cleanup_.RunAll(); }

NodeAccess& KubeEnv::node(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(name);
  if (it != nodes_.end()) return *it->second;
  std::string known;
  bool found = false;
  for (const auto& n : facts_.nodes) {
    found |= n.name == name;
    known += (known.empty() ? "" : ", ") + n.name;
  }
  if (!found) throw Error("kube env: no node named \"" + name + "\" (the cluster has " + known + ")");
  return *(nodes_[name] = MakeNodeAccess(*k_, cleanup_, name, opts_.node_access));
}

std::vector<e2e::Node> KubeEnv::Nodes() {
  std::vector<e2e::Node> out;
  for (const auto& n : facts_.nodes) out.push_back({n.name, n.internal_ip, n.pod_cidrs});
  return out;
}

std::string KubeEnv::WriteManifest(const policy::Manifest& m, const std::string& file, bool secret) {
  int seq;
  {
    std::lock_guard<std::mutex> l(mu_);
    seq = ++manifest_seq_;
  }
  std::string base = file;
  for (char& c : base) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  }
  const std::string path = opts_.workdir + "/" + (seq < 10 ? "0" : "") + std::to_string(seq) + "-" + base;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) ThrowErrno("write manifest " + path);
  size_t off = 0;
  while (off < m.text.size()) {
    const ssize_t n = write(fd, m.text.data() + off, m.text.size() - off);
    if (n <= 0) {
      close(fd);
      ThrowErrno("write manifest " + path);
    }
    off += static_cast<size_t>(n);
  }
  close(fd);
  return path;
}

void KubeEnv::DeleteNamespace(const std::string& ns) {
  k_->Run({"delete", "namespace", ns, "--ignore-not-found", "--wait=false"}, "delete namespace " + ns);
  const auto deadline = Clock::now() + defaults::NamespaceDeleted();
  while (true) {
    const auto j = k_->GetJsonIfExists({"get", "namespace", ns}, "wait for namespace " + ns + " to go");
    if (!j) return;
    if (Clock::now() >= deadline) {
      throw Error("namespace " + ns + " still exists " + Ms(defaults::NamespaceDeleted()) +
                  " after its deletion (KMESH_E2E_NAMESPACE_DELETED_MS; phase " +
                  j->value("/status/phase"_json_pointer, std::string("?")) + "; `kubectl get all -n " + ns +
                  "` shows what holds it)");
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
}

void KubeEnv::EnsureNamespace(const std::string& ns) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (std::find(created_namespaces_.begin(), created_namespaces_.end(), ns) != created_namespaces_.end())
      return;
  }
  const auto m = RenderNamespace(ns, opts_.run_id);  // checks the name first
  if (const auto existing = k_->GetJsonIfExists({"get", "namespace", ns}, "check namespace " + ns)) {
    std::string owner = existing->value("/metadata/labels/kmesh-e2e.io~1run"_json_pointer, std::string());
    throw Error("kube env: namespace " + ns + " already exists and this run did not create it" +
                (owner.empty() ? ""
                               : " (run " + owner +
                                     " did: a crashed run leaves its namespaces; `kubectl delete ns -l "
                                     "kmesh-e2e.io/run` removes them all)") +
                ". The cleanup deletes only what a run created, so the suites need their namespaces absent: "
                "`kubectl delete namespace " +
                ns + "`.");
  }
  const std::string path = WriteManifest(m, "namespace-" + ns + ".yaml");
  // Registered before the apply: a half-applied namespace is removed too.
  cleanup_.Push("namespace/" + ns, "delete namespace " + ns, [this, ns] { DeleteNamespace(ns); });
  {
    std::lock_guard<std::mutex> l(mu_);
    created_namespaces_.push_back(ns);
  }
  k_->Run({"apply", "-f", path}, "create namespace " + ns);
}

PodInfo KubeEnv::WaitPodReady(const std::string& ns, const std::string& selector, const std::string& what,
                              milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  std::string last = "no pod yet";
  while (true) {
    const auto pods = ParsePodList(k_->GetJson({"get", "pods", "-n", ns, "-l", selector}, what),
                                   "pods " + ns + " -l " + selector);
    std::string seen;
    for (const auto& p : pods) {
      if (p.deleting) continue;
      if (const std::string problem = PodProblem(p); !problem.empty()) {
        throw Error(what + ": pod " + p.Describe() + ": " + problem);
      }
      if (p.phase == "Running" && p.ready && !p.ip.empty()) return p;
      seen += (seen.empty() ? "" : "; ") + p.Describe();
    }
    if (!seen.empty()) last = seen;
    if (Clock::now() >= deadline) {
      throw Error(what + ": not ready within " + Ms(bound) + " (" + last + "); `kubectl describe pod -n " +
                  ns + " -l " + selector + "` says why");
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
}

void KubeEnv::WaitGatewayProgrammed(const std::string& ns, const std::string& name) {
  const auto deadline = Clock::now() + defaults::WaypointReady();
  std::string why = "not found";
  while (true) {
    const auto gw = k_->GetJsonIfExists({"get", "gateways.gateway.networking.k8s.io", name, "-n", ns},
                                        "wait for waypoint " + ns + "/" + name);
    if (gw && GatewayReady(*gw, &why)) return;
    if (Clock::now() >= deadline) {
      throw Error("waypoint " + ns + "/" + name + " is not programmed within " +
                  Ms(defaults::WaypointReady()) + " (KMESH_E2E_WAYPOINT_READY_MS): " + why +
                  " (istiod with PILOT_ENABLE_AMBIENT and the Gateway API CRDs "
                  "are needed; `kubectl -n " +
                  ns + " describe gateway " + name + "`)");
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
}

e2e::App KubeEnv::Deploy(const e2e::AppSpec& spec) {
  if (spec.node < 0 || spec.node >= static_cast<int>(facts_.nodes.size())) {
    throw Error("kube env: app " + spec.name + " asks for node index " + std::to_string(spec.node) +
                "; the cluster has " + std::to_string(facts_.nodes.size()) + " nodes");
  }
  CheckDnsLabel(spec.name, "app name");
  CheckDnsLabel(spec.k8s_namespace, "namespace");
  const std::string key = spec.k8s_namespace + "/" + spec.name;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = apps_.find(key); it != apps_.end()) return it->second.app;
  }
  const std::string node = facts_.nodes[spec.node].name;
  const bool server = spec.kind == e2e::AppKind::kServer;
  if (spec.waypoint && !server) throw Error("kube env: app " + key + ": only a server can have a waypoint");
  EnsureNamespace(spec.k8s_namespace);
  const auto m = server ? RenderServer(spec.name, spec.k8s_namespace, node, opts_.images.server, opts_.run_id)
                        : RenderSleep(spec.name, spec.k8s_namespace, node, opts_.images.sleep, opts_.run_id);
  k_->Run({"apply", "-f", WriteManifest(m, spec.name + ".yaml")}, "deploy " + key);
  nlohmann::json extra = nlohmann::json::object();
  for (const auto& [k, v] : spec.labels) {
    if (k != "app") extra[k] = v;
  }
  if (!extra.empty()) {
    const nlohmann::json patch = {{"spec", {{"template", {{"metadata", {{"labels", extra}}}}}}}};
    k_->Run({"patch", "deployment", spec.name, "-n", spec.k8s_namespace, "--type=merge", "-p", patch.dump()},
            "label the pods of " + key);
  }
  AppRecord rec;
  if (spec.waypoint) {
    rec.waypoint = spec.name + "-waypoint";
    k_->Run(
        {"apply", "-f",
         WriteManifest(RenderWaypoint(rec.waypoint, spec.k8s_namespace, opts_.images.waypoint, opts_.run_id),
                       rec.waypoint + ".yaml")},
        "create waypoint " + rec.waypoint + " for " + key);
    k_->Run({"label", "service", spec.name, "-n", spec.k8s_namespace, "istio.io/use-waypoint=" + rec.waypoint,
             "--overwrite"},
            "route service " + key + " through its waypoint");
  }
  const PodInfo pod =
      WaitPodReady(spec.k8s_namespace, "app=" + spec.name, "deploy " + key, defaults::PodReady());
  if (pod.node != node) {
    throw Error("kube env: " + key + " runs on " + pod.node + ", but its manifest pins it to " + node);
  }
  RecordImages(pod);
  WaitXdpAttached("deploy " + key, pod);
  rec.pod = pod.name;
  rec.container = server ? "" : "sleep";
  rec.app = e2e::App{spec.name, spec.kind, pod.node, spec.k8s_namespace, pod.ip, 0, 0,
                     bpf_probe::WorkloadId(PodWorkloadUid(opts_.cluster_id, spec.k8s_namespace, pod.name)),
                     // testdata/apps creates no service account: the pods run as their namespace's "default".
                     "default"};
  if (server) {
    rec.app.port = kServerPort;
    rec.app.alt_port = kServerAltPort;
    rec.cluster_ip = ServiceClusterIp(
        k_->GetJson({"get", "service", spec.name, "-n", spec.k8s_namespace}, "read service " + key),
        "service " + key);
  }
  if (spec.waypoint) {
    WaitGatewayProgrammed(spec.k8s_namespace, rec.waypoint);
    WaitPodReady(spec.k8s_namespace, "gateway.networking.k8s.io/gateway-name=" + rec.waypoint,
                 "waypoint of " + key, defaults::WaypointReady());
  }
  std::lock_guard<std::mutex> l(mu_);
  apps_[key] = rec;
  return rec.app;
}

// Kmesh's e2e waits up to 5 s, polling every 500 ms, for `ip a | grep xdp` in each destination pod
// (test/e2e/authorization_test.go:39-68). Every pod a run deploys is enrolled (its namespace carries
// istio.io/dataplane-mode=Kmesh), clients too: their side of each connection crosses their own xdp_authz,
// so a probe that starts before it is attached would test a half-managed path. The wait also names the
// program, not just "some XDP": Kmesh's is xdp_authz (kmesh-facts.md §1.2).
void KubeEnv::WaitXdpAttached(const std::string& what, const PodInfo& pod) {
  const auto start = Clock::now();
  const auto deadline = start + defaults::XdpAttached();
  NodeAccess& n = node(pod.node);
  std::string seen;
  while (true) {
    try {
      const bpf_probe::XdpAttachment a = n.XdpOfPod(pod.ip);
      const bpf_probe::ProgramInfo* prog = a.program();
      if (prog != nullptr && prog->name == "xdp_authz") return;
      seen = prog == nullptr
                 ? "no XDP program on " + (a.ifname.empty() ? std::string("its interface") : a.ifname)
                 : "XDP program " + prog->name + " (id " + std::to_string(prog->id) + ") on " + a.ifname +
                       ", not Kmesh's xdp_authz";
    } catch (const Error& e) {
      seen = e.what();
    }
    if (k_->dry_run()) return;  // the placeholder answers "none": nothing to wait for
    if (Clock::now() >= deadline) {
      throw Error(what + ": Kmesh did not attach xdp_authz to pod " + pod.ns + "/" + pod.name + " (" +
                  pod.ip + ") on " + pod.node + " within " + Ms(defaults::XdpAttached()) +
                  " of it being ready (KMESH_E2E_XDP_ATTACHED_MS; Kmesh's own e2e waits 5 s): " + seen +
                  ", read through " + n.Describe() +
                  ". Kmesh manages pods of namespaces labelled istio.io/dataplane-mode=Kmesh in "
                  "--mode=dual-engine and annotates them kmesh.net/redirection=enabled; `kubectl -n " +
                  pod.ns + " get pod " + pod.name + " -o yaml` and Kmesh's log on the node say more");
    }
    std::this_thread::sleep_for(std::min<milliseconds>(defaults::KubePoll(), milliseconds(500)));
  }
}

void KubeEnv::RecordImages(const PodInfo& pod) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& c : pod.containers) {
    images_.push_back({{"pod", pod.ns + "/" + pod.name},
                       {"node", pod.node},
                       {"container", c.name},
                       {"image", c.image},
                       {"image_id", c.image_id}});
  }
}

nlohmann::json KubeEnv::Images() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : facts_.kmesh_pods) {
    for (const auto& c : p.containers) {
      out.push_back({{"pod", p.ns + "/" + p.name},
                     {"node", p.node},
                     {"container", c.name},
                     {"image", c.image},
                     {"image_id", c.image_id}});
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& i : images_) out.push_back(i);
  return out;
}

const KubeEnv::AppRecord& KubeEnv::Record(const e2e::App& app) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = apps_.find(app.k8s_namespace + "/" + app.name);
  if (it == apps_.end())
    throw Error("kube env: app " + app.k8s_namespace + "/" + app.name + " was not deployed by this env");
  return it->second;
}

std::vector<policy::AuthorizationPolicy> KubeEnv::Apply(const policy::Manifest& m) {
  // Parsed (and so checked) before anything reaches the cluster: all policies or none.
  auto policies = policy::ParseManifests(m.text, m.origin);
  if (policies.empty()) throw Error("kube env: " + m.origin + " holds no AuthorizationPolicy");
  const std::string path = WriteManifest(m, "policy-" + m.origin);
  for (const auto& p : policies) {
    cleanup_.Push("authorizationpolicy/" + p.IdKey(), "delete AuthorizationPolicy " + p.IdKey(), [this, p] {
      k_->Run({"delete", "authorizationpolicies.security.istio.io", p.name, "-n", p.ns, "--ignore-not-found"},
              "delete AuthorizationPolicy " + p.IdKey());
    });
  }
  k_->Run({"apply", "-f", path}, "apply " + m.origin);
  return policies;
}

void KubeEnv::Remove(const std::vector<policy::AuthorizationPolicy>& policies) {
  for (const auto& p : policies) {
    k_->Run({"delete", "authorizationpolicies.security.istio.io", p.name, "-n", p.ns, "--ignore-not-found"},
            "remove AuthorizationPolicy " + p.IdKey());
    cleanup_.Cancel("authorizationpolicy/" + p.IdKey());
  }
}

e2e::Mechanism KubeEnv::MechanismOf(const policy::AuthorizationPolicy& p) const {
  const policy::Support s = policy::SupportedBy(p);
  // istiod sends targetRefs policies only to the waypoint; L7 fields are the waypoint's (kmesh-facts.md
  // §1.6).
  if (!p.target_refs.empty() || s.Needs(policy::Enforcer::kWaypoint)) return e2e::Mechanism::kWaypoint;
  bool userspace = s.Needs(policy::Enforcer::kNamespaceToIps);
  for (const auto& f : s.Of(policy::Enforcer::kUnsupported)) {
    // The lab cannot do principals; Kmesh's userspace can (source IP -> workload identity).
    if (f.path.find("rincipal") != std::string::npos) {
      userspace = true;
    } else {
      throw Error(p.origin.ToString() + ": policy " + p.IdKey() + ": " + f.path +
                  " is enforced by no part of Kmesh (" + f.note + ")");
    }
  }
  return userspace ? e2e::Mechanism::kUserspace : e2e::Mechanism::kXdp;
}

e2e::Realized KubeEnv::WaitRealized(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  return MechanismOf(p) == e2e::Mechanism::kWaypoint ? WaitInWaypoint(p, server) : WaitInMaps(p, server);
}

e2e::Realized KubeEnv::WaitInMaps(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto start = Clock::now();
  const auto deadline = start + defaults::PolicyRealized();
  e2e::Realized r;
  r.policy_id = bpf_probe::PolicyId(p.ns, p.name);
  r.mechanism = MechanismOf(p);
  NodeAccess& n = node(server.node);
  std::string seen;
  while (true) {
    const MapsReport m = n.Maps(server.ip);
    const bool in_policies = m.HasPolicy(r.policy_id);
    const bool listed = m.WorkloadLists(r.policy_id);
    std::string ids;
    if (m.workload_policy_ids) {
      for (uint32_t id : *m.workload_policy_ids) ids += (ids.empty() ? "" : ", ") + Hex(id);
    }
    seen = "km_authz_policy (" + m.source + ") " + (in_policies ? "holds " : "lacks ") + Hex(r.policy_id) +
           " (" + p.IdKey() + "); km_frontend[" + server.ip +
           "] = " + (m.workload_id ? Hex(*m.workload_id) : std::string("absent"));
    if (m.workload_id && *m.workload_id != server.workload_id) {
      seen += " (not FNV-32a of the inferred UID " +
              PodWorkloadUid(opts_.cluster_id, server.k8s_namespace, Record(server).pod) + " = " +
              Hex(server.workload_id) + ": the map's id is used)";
    }
    if (m.workload_id)
      seen += "; km_wlpolicy[" + Hex(*m.workload_id) +
              "] = " + (m.workload_policy_ids ? "{" + ids + "}" : "absent");
    if (in_policies && listed) break;
    if (k_->dry_run()) {
      seen = "dry run, not checked: " + seen;
      break;
    }
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized for " + server.name + " within " +
                  Ms(defaults::PolicyRealized()) + " (KMESH_E2E_POLICY_REALIZED_MS), read through " +
                  n.Describe() + ": " + seen);
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return r;
}

e2e::Realized KubeEnv::WaitInWaypoint(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto start = Clock::now();
  e2e::Realized r;
  r.policy_id = bpf_probe::PolicyId(p.ns, p.name);
  r.mechanism = e2e::Mechanism::kWaypoint;
  const AppRecord rec = Record(server);
  if (rec.waypoint.empty()) {
    throw Error("policy " + p.IdKey() + " is enforced by a waypoint, but " + server.k8s_namespace + "/" +
                server.name + " was deployed without one (AppSpec.waypoint)");
  }
  const PodInfo wp =
      WaitPodReady(server.k8s_namespace, "gateway.networking.k8s.io/gateway-name=" + rec.waypoint,
                   "waypoint of " + server.name, defaults::WaypointReady());
  // Envoy names its RBAC rules "ns[<ns>]-policy[<name>]-rule[<i>]" (Istio's naming; inference for Kmesh's
  // waypoint, which is built on Istio's proxy).
  const std::string needle = "ns[" + p.ns + "]-policy[" + p.name + "]";
  const auto deadline = start + defaults::PolicyRealized();
  std::string seen;
  while (true) {
    const auto out = k_->Try(
        {"exec", "-n", server.k8s_namespace, wp.name, "--", "pilot-agent", "request", "GET", "config_dump"});
    if (!out.ok()) throw Error("read the config of waypoint " + wp.name + ": " + DescribeResult(out));
    const bool found = out.out.find(needle) != std::string::npos;
    seen = "waypoint " + rec.waypoint + " (pod " + wp.name + ") config_dump " + (found ? "holds" : "lacks") +
           " RBAC policy " + needle;
    if (found) break;
    if (k_->dry_run()) {
      seen = "dry run, not checked: " + seen;
      break;
    }
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized in the waypoint within " +
                  Ms(defaults::PolicyRealized()) + " (KMESH_E2E_POLICY_REALIZED_MS): " + seen);
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return r;
}

std::pair<std::string, uint16_t> KubeEnv::ServiceAddress(const e2e::App& server) {
  const AppRecord& rec = Record(server);
  // With a waypoint, clients go to the service (istio.io/use-waypoint sends it through the waypoint);
  // otherwise to the pod, so the tuple XDP keys on is exactly the one the probe used.
  if (!rec.waypoint.empty()) return {rec.cluster_ip, server.port};
  return {server.ip, server.port};
}

uint16_t KubeEnv::NextSourcePort() { return static_cast<uint16_t>(42000 + (next_port_++ % 20000)); }

e2e::ProbeOutcome KubeEnv::Probe(const e2e::App& client, const e2e::App& server, e2e::ProbeSpec spec) {
  if (spec.dst_ip.empty()) std::tie(spec.dst_ip, spec.dst_port) = ServiceAddress(server);
  if (spec.src_port == 0) spec.src_port = NextSourcePort();
  const AppRecord& rec = Record(client);
  if (rec.container.empty())
    throw Error("kube env: probes run from a client (sleep) app; " + client.name + " is a server");
  std::vector<std::string> args = {"exec", "-n", client.k8s_namespace, rec.pod, "-c", rec.container, "--"};
  for (auto& a : e2e::CurlArgv(spec)) args.push_back(a);
  // curl bounds itself (--max-time); the kubectl bound only catches a kubectl that hangs anyway.
  const auto r = k_->Try(args, spec.connect_timeout + spec.response_timeout + defaults::Kubectl());
  const std::string where = "probe " + client.k8s_namespace + "/" + client.name + " -> " + spec.dst_ip + ":" +
                            std::to_string(spec.dst_port);
  if (r.timed_out)
    throw KubectlError(where + ": kubectl exec outlived curl's own --max-time: " + DescribeResult(r), r);
  e2e::ProbeOutcome out;
  try {
    out = e2e::ParseCurlResult(r.exit_code, r.out, r.err);
  } catch (const Error& e) {
    // Not curl's JSON: kubectl itself failed (pod gone, exec refused), so nothing was probed.
    throw KubectlError(where + ": no curl result came back: " + DescribeResult(r), r);
  }
  if (out.tuple.src_ip.empty()) out.tuple.src_ip = client.ip;
  if (out.tuple.src_port == 0) out.tuple.src_port = spec.src_port;
  if (out.tuple.dst_ip.empty()) out.tuple.dst_ip = spec.dst_ip;
  if (out.tuple.dst_port == 0) out.tuple.dst_port = spec.dst_port;
  out.via = "kubectl exec curl";
  return out;
}

namespace {

class FortioLoadRun : public e2e::LoadRun {
 public:
  explicit FortioLoadRun(FortioRun r) : r_(std::move(r)) {}
  e2e::LoadReport Wait() override { return r_.Wait(); }

 private:
  FortioRun r_;
};

}  // namespace

std::unique_ptr<e2e::LoadRun> KubeEnv::StartLoad(const e2e::App& client, const e2e::App& server,
                                                 e2e::LoadSpec spec) {
  return std::make_unique<FortioLoadRun>(StartFortioLoad(client, server, spec));
}

FortioRun KubeEnv::StartFortioLoad(const e2e::App& client, const e2e::App& server, e2e::LoadSpec spec) {
  if (spec.probe.dst_ip.empty()) std::tie(spec.probe.dst_ip, spec.probe.dst_port) = ServiceAddress(server);
  const bool v6 = spec.probe.dst_ip.find(':') != std::string::npos;
  const std::string url = "http://" + (v6 ? "[" + spec.probe.dst_ip + "]" : spec.probe.dst_ip) + ":" +
                          std::to_string(spec.probe.dst_port) + spec.probe.path;
  const auto argv = FortioArgv(spec, url);  // bad input fails before anything is deployed
  const std::string key = client.k8s_namespace + "/" + client.name;
  e2e::App fortio;
  bool have = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = fortio_.find(key); it != fortio_.end()) {
      fortio = it->second;
      have = true;
    }
  }
  if (!have) {
    const std::string name = client.name + "-fortio";
    k_->Run({"apply", "-f",
             WriteManifest(
                 RenderFortio(name, client.k8s_namespace, client.node, opts_.images.fortio, opts_.run_id),
                 name + ".yaml")},
            "deploy fortio next to " + key);
    const PodInfo pod =
        WaitPodReady(client.k8s_namespace, "app=" + name, "deploy fortio for " + key, defaults::PodReady());
    RecordImages(pod);
    WaitXdpAttached("deploy fortio for " + key, pod);
    AppRecord rec;
    rec.pod = pod.name;
    rec.container = "fortio";
    rec.app = e2e::App{
        name,     e2e::AppKind::kClient,
        pod.node, client.k8s_namespace,
        pod.ip,   0,
        0,        bpf_probe::WorkloadId(PodWorkloadUid(opts_.cluster_id, client.k8s_namespace, pod.name))};
    std::lock_guard<std::mutex> l(mu_);
    apps_[client.k8s_namespace + "/" + name] = rec;
    fortio_[key] = rec.app;
    fortio = rec.app;
  }
  const AppRecord& rec = Record(fortio);
  std::vector<std::string> args = {"exec", "-n", fortio.k8s_namespace, rec.pod, "-c", "fortio", "--"};
  args.insert(args.end(), argv.begin(), argv.end());
  const milliseconds bound =
      spec.duration + spec.probe.connect_timeout + spec.probe.response_timeout + defaults::Kubectl();
  return FortioRun(k_->Start(args, bound), bound,
                   "fortio load from " + fortio.k8s_namespace + "/" + rec.pod + " to " + url,
                   spec.requests_per_second);
}

std::optional<bpf_probe::Verdict> KubeEnv::AuthVerdict(const e2e::App& server, const bpf_probe::Tuple& t) {
  return node(server.node).Auth(t).verdict;
}

bpf_probe::XdpAttachment KubeEnv::XdpOf(const e2e::App& server) {
  return node(server.node).XdpOfPod(server.ip);
}

std::map<std::string, uint64_t> KubeEnv::DatapathMapCounts(const e2e::App& server) {
  std::map<std::string, uint64_t> out;
  for (const auto& m : node(server.node).Maps("").maps) out[m.name] = m.entries;
  return out;
}

std::optional<std::vector<uint32_t>> KubeEnv::WorkloadPolicies(const e2e::App& server) {
  return node(server.node).Maps(server.ip).workload_policy_ids;
}

nlohmann::json KubeEnv::DatapathIdentity() {
  // The cluster's Kmesh is whatever its daemonset runs; each probe's evidence names the xdp_authz program
  // (id, tag) it found on the server pod.
  nlohmann::json pods = nlohmann::json::array();
  for (const auto& p : facts_.kmesh_pods) pods.push_back(p.name + " on " + p.node);
  // The digest every pod runs (Kmesh's and the apps'): what pins a run whose images are named by tag.
  return {{"datapath", "Kmesh as deployed on the cluster"},
          {"kubernetes", facts_.server_version},
          {"kmesh_pods", pods},
          {"images", Images()}};
}

void KubeEnv::RequireIpsecOnce() {
  if (ipsec_checked_) return;
  RequireIpsec(facts_);
  ipsec_checked_ = true;
}

std::optional<ipsec::IpsecSecret> KubeEnv::CurrentSecret() {
  const auto j = k_->GetJsonIfExists({"get", "secret", "kmesh-ipsec", "-n", opts_.kmesh_namespace},
                                     "read the IPsec secret");
  if (!j) return std::nullopt;
  return ParseIpsecSecret(*j, "secret " + opts_.kmesh_namespace + "/kmesh-ipsec");
}

void KubeEnv::WriteSecret(const ipsec::IpsecSecret& secret, const std::string& what) {
  const std::string path = WriteManifest(RenderIpsecSecret(secret), "ipsec-secret.yaml", true);
  struct Unlink {
    std::string p;
    ~Unlink() { unlink(p.c_str()); }
  } guard{path};  // the file holds the key
  // kmeshctl creates the secret when there is none and updates (replaces) it otherwise
  // (ctl/secret/secret.go:154-198); so do these. A secret created or deleted behind the run's back is
  // met by the other verb. Neither writes the last-applied-configuration annotation `kubectl apply` would
  // (with the key in it), and neither prints the key.
  const std::string first = secret_exists_ ? "replace" : "create";
  auto r = k_->Try({first, "-f", path});
  const bool gone = r.err.find("(NotFound)") != std::string::npos;
  const bool there = r.err.find("(AlreadyExists)") != std::string::npos;
  if (!r.ok() && (first == "replace" ? gone : there)) {
    r = k_->Try({first == "replace" ? "create" : "replace", "-f", path});
  }
  if (!r.ok()) throw KubectlError(what + ": " + DescribeResult(r), r);
  secret_exists_ = true;
}

void KubeEnv::RememberOriginalSecret() {
  if (original_secret_known_) return;
  original_secret_ = CurrentSecret();
  original_secret_known_ = true;
  secret_exists_ = original_secret_.has_value();
  if (original_secret_) history_.Add(*original_secret_);  // the daemons know it (they keep old keys)
  // Kmesh accepts only rising SPIs (kmeshctl always writes SPI + 1), so "restoring" the original means
  // re-applying its key with the next SPI; a secret that did not exist is deleted (kmeshctl secret delete).
  cleanup_.Push("secret/kmesh-ipsec", "restore the IPsec secret", [this] {
    if (!original_secret_) {
      k_->Run({"delete", "secret", "kmesh-ipsec", "-n", opts_.kmesh_namespace, "--ignore-not-found"},
              "delete the IPsec secret");
      return;
    }
    ipsec::IpsecSecret restore = *original_secret_;
    restore.spi = (last_secret_ ? last_secret_->spi : original_secret_->spi) + 1;
    WriteSecret(restore, "restore the original IPsec key (as SPI " + std::to_string(restore.spi) + ")");
  });
}

uint32_t KubeEnv::FirstSpi() {
  if (first_spi_) return *first_spi_;
  RequireIpsecOnce();
  uint32_t highest = 0;
  std::string why = "no secret and no KmeshNodeInfo";
  if (const auto current = CurrentSecret()) {
    highest = current->spi;
    why = "secret " + opts_.kmesh_namespace + "/kmesh-ipsec has SPI " + std::to_string(current->spi);
  }
  const auto infos = ParseKmeshNodeInfos(
      k_->GetJson({"get", "kmeshnodeinfos.kmesh.net", "-n", opts_.kmesh_namespace}, "read KmeshNodeInfo"),
      "KmeshNodeInfo (" + opts_.kmesh_namespace + ")");
  for (const auto& n : infos) {
    if (n.spi > highest) {
      highest = n.spi;
      why = "KmeshNodeInfo " + n.name + " has SPI " + std::to_string(n.spi);
    }
  }
  first_spi_ = highest + 1;
  std::cerr << "kube env: the run's first IPsec secret gets SPI " << *first_spi_ << " (" << why << ")\n";
  return *first_spi_;
}

void KubeEnv::ApplySecret(const ipsec::IpsecSecret& secret) {
  RequireIpsecOnce();
  RememberOriginalSecret();
  if (const uint32_t first = FirstSpi(); secret.spi < first) {
    // Allowed (a case may show the consequence), but said: the nodes keep their states for this SPI.
    std::cerr << "kube env: SPI " << secret.spi << " is below the run's first SPI " << first
              << ": Kmesh keeps the xfrm states it already holds for it (EEXIST ignored, "
                 "pkg/controller/encryption/ipsec/ipsec_handler.go:286-287), with their old key\n";
  }
  WriteSecret(secret, "apply the IPsec secret (SPI " + std::to_string(secret.spi) + ", key " +
                          secret.aead_key.ForDisplay() + ")");
  history_.Add(secret);
  last_secret_ = secret;
}

ipsec::IpsecSecret KubeEnv::RotateSecret(const std::optional<ipsec::KeyMaterial>& key) {
  const auto next = NextSecret(CurrentSecret(), key);
  ApplySecret(next);
  return next;
}

std::vector<ipsec::NodeInfo> KubeEnv::IpsecNodes() {
  RequireIpsecOnce();
  auto nodes = ParseKmeshNodeInfos(
      k_->GetJson({"get", "kmeshnodeinfos.kmesh.net", "-n", opts_.kmesh_namespace}, "read KmeshNodeInfo"),
      "KmeshNodeInfo (" + opts_.kmesh_namespace + ")");
  if (nodes.empty()) {
    throw Error("kube env: no KmeshNodeInfo in " + opts_.kmesh_namespace +
                ": each Kmesh daemon publishes one once IPsec runs and the secret exists (ApplySecret / "
                "kmeshctl secret create)");
  }
  return nodes;
}

xfrm::XfrmSnapshot KubeEnv::Xfrm(const std::string& n) { return node(n).Xfrm(); }

void KubeEnv::DeleteXfrmState(const std::string& n, const xfrm::XfrmState& s) { node(n).DeleteXfrmState(s); }

void KubeEnv::RestartDataplane(const std::string& n) {
  const std::string selector = "app=kmesh";
  auto kmesh_pods = [&] {
    return ParsePodList(k_->GetJson({"get", "pods", "-n", opts_.kmesh_namespace, "-l", selector,
                                     "--field-selector", "spec.nodeName=" + n},
                                    "find the Kmesh pod of " + n),
                        "Kmesh pods of " + n);
  };
  std::string old_name, old_uid;
  for (const auto& p : kmesh_pods()) {
    if (!p.deleting) {
      old_name = p.name;
      old_uid = p.uid;
    }
  }
  if (old_name.empty()) throw Error("kube env: node " + n + " has no Kmesh pod to restart");
  k_->Run({"delete", "pod", old_name, "-n", opts_.kmesh_namespace, "--wait=false"},
          "restart Kmesh on " + n + " (delete its pod)");
  const auto deadline = Clock::now() + defaults::DataplaneRestart();
  std::string last;
  while (true) {
    bool replaced = false;
    last.clear();
    for (const auto& p : kmesh_pods()) {
      if (p.uid == old_uid || p.deleting) continue;
      if (const std::string problem = PodProblem(p); !problem.empty()) {
        throw Error("kube env: the replacement Kmesh pod on " + n + " is broken: " + p.Describe() + ": " +
                    problem);
      }
      last = p.Describe();
      replaced |= p.phase == "Running" && p.ready;
    }
    if (replaced || k_->dry_run()) break;
    if (Clock::now() >= deadline) {
      throw Error("kube env: Kmesh pod " + old_name + " on " + n +
                  " was deleted, and no replacement was ready within " + Ms(defaults::DataplaneRestart()) +
                  " (KMESH_E2E_DATAPLANE_RESTART_MS): " + (last.empty() ? "none yet" : last));
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
  node(n).Invalidate();
}

std::string KubeEnv::KmeshLogs(const std::string& n, int lines) {
  const auto pods = ParsePodList(k_->GetJson({"get", "pods", "-n", opts_.kmesh_namespace, "-l", "app=kmesh",
                                              "--field-selector", "spec.nodeName=" + n},
                                             "find the Kmesh pod of " + n),
                                 "Kmesh pods of " + n);
  for (const auto& p : pods) {
    if (p.deleting) continue;
    return k_
        ->Run({"logs", "-n", opts_.kmesh_namespace, p.name, "--tail=" + std::to_string(lines)},
              "read Kmesh's log on " + n)
        .out;
  }
  throw Error("kube env: node " + n + " has no Kmesh pod to read the log of");
}

std::string KubeEnv::AppLogs(const e2e::App& app, int lines) {
  const AppRecord& rec = Record(app);
  std::vector<std::string> args = {"logs", "-n", app.k8s_namespace, rec.pod,
                                   "--tail=" + std::to_string(lines)};
  args.insert(args.end(), rec.container.empty() ? std::initializer_list<std::string>{"--all-containers"}
                                                : std::initializer_list<std::string>{"-c", rec.container});
  return k_->Run(args, "read the log of " + app.k8s_namespace + "/" + app.name).out;
}

capture::Capture KubeEnv::StartCapture(const std::string& n, const std::string& peer,
                                       capture::CaptureSpec spec) {
  return node(n).StartLocalCapture(peer, std::move(spec));
}

capture::Capture KubeEnv::StartPodCapture(const e2e::App& app, capture::CaptureSpec spec) {
  return node(app.node).StartLocalPodCapture(app.ip, std::move(spec));
}

NodeCapture KubeEnv::StartNodeCapture(const std::string& n, const std::string& peer,
                                      capture::CaptureSpec spec) {
  return node(n).StartCapture(peer, std::move(spec));
}

NodeCapture KubeEnv::StartPodNodeCapture(const e2e::App& app, capture::CaptureSpec spec) {
  return node(app.node).StartPodCapture(app.ip, std::move(spec));
}

}  // namespace kmesh::kube
