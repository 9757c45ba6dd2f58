// Traffic on a cluster: probes as `kubectl exec <sleep> -- curl`, continuous load from a fortio pod next to
// the client.
#include <chrono>
#include <mutex>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "e2e/kube/kube_env.h"

namespace kmesh::kube {

using std::chrono::milliseconds;

// ---- FortioRun ----

FortioRun::FortioRun(netns::Process p, milliseconds bound, std::string where, double rps)
    : p_(std::move(p)), bound_(bound), where_(std::move(where)), rps_(rps) {}

e2e::LoadReport FortioRun::Wait() {
  const auto r = p_.Wait(bound_);
  if (r.timed_out) throw Error(where_ + ": " + DescribeResult(r));
  result_ = ParseFortioJson(r.out, where_ + " (" + DescribeResult(r) + ")");
  return ToLoadReport(result_, rps_);
}

net::Endpoint KubeEnv::ServiceAddress(const e2e::App& server) {
  const AppRecord& rec = Record(server);
  // With a waypoint, clients go to the service (istio.io/use-waypoint sends it through the waypoint);
  // otherwise to the pod, so the tuple XDP keys on is exactly the one the probe used.
  if (!rec.waypoint.empty()) return {rec.cluster_ip, server.port};
  return {server.ip, server.port};
}

e2e::ProbeOutcome KubeEnv::ProbeFrom(const e2e::App& client, const e2e::ProbeSpec& spec) {
  const AppRecord& rec = Record(client);
  if (rec.container.empty())
    throw Error("kube env: probes run from a client (sleep) app; " + client.name + " is a server");
  std::vector<std::string> args = {"exec", "-n", client.k8s_namespace, rec.pod, "-c", rec.container, "--"};
  for (auto& a : e2e::CurlArgv(spec)) args.push_back(a);
  // curl bounds itself (--max-time); the kubectl bound only catches a kubectl that hangs anyway.
  const auto r = k_->Try(args, spec.connect_timeout + spec.response_timeout + defaults::Kubectl());
  const std::string where =
      "probe " + client.k8s_namespace + "/" + client.name + " -> " + spec.dst.ToString();
  if (r.timed_out)
    throw KubectlError(where + ": kubectl exec outlived curl's own --max-time: " + DescribeResult(r), r);
  e2e::ProbeOutcome out;
  try {
    out = e2e::ParseCurlResult(r.exit_code, r.out, r.err);
  } catch (const Error& e) {
    // Not curl's JSON: kubectl itself failed (pod gone, exec refused), so nothing was probed.
    throw KubectlError(where + ": no curl result came back: " + DescribeResult(r), r);
  }
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

std::unique_ptr<e2e::LoadRun> KubeEnv::LoadFrom(const e2e::App& client, const e2e::App& server,
                                                const e2e::LoadSpec& spec) {
  return std::make_unique<FortioLoadRun>(StartFortioLoad(client, server, spec));
}

FortioRun KubeEnv::StartFortioLoad(const e2e::App& client, const e2e::App& server, e2e::LoadSpec spec) {
  if (spec.probe.dst.ip.unspecified()) spec.probe.dst = ServiceAddress(server);
  const std::string url = "http://" + spec.probe.dst.ToString() + spec.probe.path;
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
    rec.app = AppOf(name, e2e::AppKind::kClient, client.k8s_namespace, pod);
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
}  // namespace kmesh::kube
