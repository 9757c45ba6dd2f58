// The kube env's apps: manifests written privately, namespaces created and deleted, pods waited for until
// ready and until Kmesh attached xdp_authz, the images they run, their logs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kube_env_text.h"

namespace kmesh::kube {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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
  rec.app = AppOf(spec.name, spec.kind, spec.k8s_namespace, pod);
  if (server) {
    rec.app.port = kServerPort;
    rec.app.alt_port = kServerAltPort;
    rec.cluster_ip = *net::IpAddr::Parse(ServiceClusterIp(
        k_->GetJson({"get", "service", spec.name, "-n", spec.k8s_namespace}, "read service " + key),
        "service " + key));
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
  node::NodeEvidence& n = node(pod.node);
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

e2e::App KubeEnv::AppOf(const std::string& name, e2e::AppKind kind, const std::string& ns,
                        const PodInfo& pod) const {
  // testdata/apps creates no service account: the pods run as their namespace's "default".
  return {name,
          kind,
          pod.node,
          ns,
          *net::IpAddr::Parse(pod.ip),
          0,
          0,
          bpf_probe::WorkloadId(PodWorkloadUid(opts_.cluster_id, ns, pod.name)),
          "default",
          pod.ip6.empty() ? std::nullopt : std::make_optional(*net::IpAddr::Parse(pod.ip6))};
}

const KubeEnv::AppRecord& KubeEnv::Record(const e2e::App& app) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = apps_.find(app.k8s_namespace + "/" + app.name);
  if (it == apps_.end())
    throw Error("kube env: app " + app.k8s_namespace + "/" + app.name + " was not deployed by this env");
  return it->second;
}

std::string KubeEnv::AppLogs(const e2e::App& app, int lines) {
  const AppRecord& rec = Record(app);
  std::vector<std::string> args = {"logs", "-n", app.k8s_namespace, rec.pod,
                                   "--tail=" + std::to_string(lines)};
  args.insert(args.end(), rec.container.empty() ? std::initializer_list<std::string>{"--all-containers"}
                                                : std::initializer_list<std::string>{"-c", rec.container});
  return k_->Run(args, "read the log of " + app.k8s_namespace + "/" + app.name).out;
}
}  // namespace kmesh::kube
