// The kube implementation of e2e::Env: the suites on a real cluster with Kmesh (dual-engine, IPsec) and
// Istio, given KUBECONFIG. Apps come from testdata/apps (namespaces labelled istio.io/dataplane-mode=
// Kmesh, server and client pinned to different nodes), probes run as `kubectl exec <sleep> -- curl`, and
// the kernel evidence comes from the node (node_access.h). Everything the run creates in the cluster is
// undone when the env ends, pass or fail, and at process exit if the env is never destroyed.
//
// Before anything is created, Preflight() checks, in order, and stops at the first failure with a message
// that says what is wrong and what to do: a kubeconfig (KUBECONFIG, else ~/.kube/config, as kubectl)
// readable; kubectl found; the API server answers; Kmesh installed (pods -l app=kmesh in kmesh-system, all
// running); Kmesh in dual-engine mode. IPsec (--enable-ipsec=true) is checked before the first IPsec call.
// Image pull failures stop Deploy at once (not at the readiness timeout). Deploy returns an app only once
// Kmesh has attached XDP (xdp_authz) to its pod, bounded like Kmesh's own e2e (5 s, XdpAttached()).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "e2e/framework/env.h"
#include "e2e/kube/apps.h"
#include "e2e/kube/cleanup.h"
#include "e2e/kube/cluster.h"
#include "e2e/kube/fortio.h"
#include "e2e/kube/kubectl.h"
#include "e2e/kube/node_access.h"

namespace kmesh::kube {

struct KubeOptions {
  std::string run_id;   // labels everything created ("kmesh-e2e.io/run"); default "r<pid>-<unix time>"
  std::string workdir;  // rendered manifests (private, removed at the end); default under /tmp
  std::string cluster_id = "Kubernetes";  // Istio's cluster id in workload UIDs (KMESH_E2E_KUBE_CLUSTER_ID)
  std::string kmesh_namespace = "kmesh-system";
  Images images;
  NodeAccessOptions node_access;
  static KubeOptions FromEnvironment();
};

// What Preflight() learned.
struct ClusterFacts {
  std::string server_version;
  std::vector<PodInfo> kmesh_pods;
  KmeshDaemonFlags kmesh_flags;
  std::vector<NodeFacts> nodes;
};

// The checks, in order; throws kmesh::Error at the first failure. Exposed for tests (recorded outputs).
ClusterFacts Preflight(Kubectl& k, const std::string& kmesh_namespace = "kmesh-system");
// Throws unless every Kmesh pod runs with --enable-ipsec=true.
void RequireIpsec(const ClusterFacts& facts);

// Istio's workload UID of a pod as Kmesh hashes it: "<cluster>//Pod/<namespace>/<name>" (inference from
// istiod's naming; WaitRealized cross-checks it against km_frontend[pod IP], which is Kmesh's own word).
std::string PodWorkloadUid(const std::string& cluster_id, const std::string& ns, const std::string& pod);

// A fortio run in the background (StartFortioLoad); Wait() maps fortio's JSON to a LoadReport.
class FortioRun {
 public:
  FortioRun(netns::Process p, std::chrono::milliseconds bound, std::string where, double rps);
  FortioRun(FortioRun&&) noexcept = default;
  e2e::LoadReport Wait();
  const FortioResult& result() const { return result_; }

 private:
  netns::Process p_;
  std::chrono::milliseconds bound_;
  std::string where_;
  double rps_;
  FortioResult result_;
};

class KubeEnv : public e2e::Env {
 public:
  // Runs Preflight() (nothing is created before it passes).
  KubeEnv(std::unique_ptr<Kubectl> kubectl, KubeOptions options);
  static std::unique_ptr<KubeEnv> FromEnvironment();
  ~KubeEnv() override;  // undoes everything it created

  std::string name() const override { return "kube"; }
  Kubectl& kubectl() { return *k_; }
  const ClusterFacts& facts() const { return facts_; }
  const KubeOptions& options() const { return opts_; }
  CleanupStack& cleanup() { return cleanup_; }

  std::vector<e2e::Node> Nodes() override;
  e2e::App Deploy(const e2e::AppSpec& spec) override;
  std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m) override;
  void Remove(const std::vector<policy::AuthorizationPolicy>& policies) override;
  e2e::Mechanism MechanismOf(const policy::AuthorizationPolicy& p) const override;
  net::Endpoint ServiceAddress(const e2e::App& server) override;
  // The node's evidence through its transport (node_access.h): kind (local) or kmesh-probe.
  node::NodeEvidence& Evidence(const std::string& node) override { return this->node(node); }
  nlohmann::json UserspaceDecisions(const e2e::App&, const net::Tuple&) override { return nullptr; }
  nlohmann::json DatapathIdentity() override;
  // Written as `kmeshctl secret create` writes it (ctl/secret/secret.go:154-198): created when there is
  // none, else the whole object replaced (an Update); never `kubectl apply`, which would keep the key in
  // the last-applied-configuration annotation. The key is only in a 0600 file removed right after.
  void ApplySecret(const ipsec::IpsecSecret& secret) override;
  // Above every SPI the cluster may hold: the secret's and every KmeshNodeInfo's, + 1 (Kmesh keeps an xfrm
  // state that exists, so a reused SPI would keep the old key; Kmesh's own IPsec e2e leaves SPI 2).
  // Computed once per env.
  uint32_t FirstSpi() override;
  std::vector<ipsec::NodeInfo> IpsecNodes() override;
  void RestartDataplane(const std::string& node) override;

  // ---- beyond Env ----
  // Continuity load from a fortio pod next to `client` (deployed on first use).
  FortioRun StartFortioLoad(const e2e::App& client, const e2e::App& server, e2e::LoadSpec spec);
  // `kmeshctl secret create [--key]`: the next secret (SPI + 1) applied; returns it.
  ipsec::IpsecSecret RotateSecret(const std::optional<ipsec::KeyMaterial>& key = std::nullopt);
  // The secret now in the cluster (nullopt when none).
  std::optional<ipsec::IpsecSecret> CurrentSecret();
  // The image digests each deployed pod runs, and Kmesh's: [{pod, node, container, image, image_id}].
  nlohmann::json Images() const;
  // Every secret this run applied (the layout checker's history).
  const ipsec::SecretHistory& secrets() const { return history_; }
  node::NodeEvidence& node(const std::string& name);
  // The last `lines` lines of a log, for the evidence of a failed case: the Kmesh daemon of a node, or an
  // app's pod (its probe container for clients).
  std::string KmeshLogs(const std::string& node, int lines = 200);
  std::string AppLogs(const e2e::App& app, int lines = 200);
  // Runs the cleanup now (the destructor does it too). Returns failures, one line each.
  std::vector<std::string> CleanupNow();

 protected:
  // A probe is `kubectl exec <sleep> -- curl`; curl bounds itself.
  e2e::ProbeOutcome ProbeFrom(const e2e::App& client, const e2e::ProbeSpec& spec) override;
  // The load runs in a fortio pod next to the client (StartFortioLoad; same LoadSpec, same LoadReport).
  std::unique_ptr<e2e::LoadRun> LoadFrom(const e2e::App& client, const e2e::App& server,
                                         const e2e::LoadSpec& spec) override;
  // Kmesh's id for a policy: FNV-32a of "<ns>/<name>" (bpf_probe::PolicyId).
  std::vector<uint32_t> PolicyKeys(const policy::AuthorizationPolicy& p, const e2e::App& server) override;
  RealizeTiming MapsTiming() const override;
  std::string WorkloadIdSource(const e2e::App& server) override;
  bool DryRun() const override { return k_->dry_run(); }
  // Envoy's config_dump of the service's waypoint names the policy's RBAC rules.
  e2e::Realized WaitInWaypoint(const policy::AuthorizationPolicy& p, const e2e::App& server) override;

 private:
  struct AppRecord {
    e2e::App app;
    std::string pod;
    std::string container;   // where probes run (sleep) or "" for servers
    net::IpAddr cluster_ip;  // servers
    std::string waypoint;    // the waypoint Gateway's name, when the service has one
  };

  std::string WriteManifest(const policy::Manifest& m, const std::string& file, bool secret = false);
  void EnsureNamespace(const std::string& ns);
  PodInfo WaitPodReady(const std::string& ns, const std::string& selector, const std::string& what,
                       std::chrono::milliseconds bound);
  void WaitGatewayProgrammed(const std::string& ns, const std::string& name);
  void DeleteNamespace(const std::string& ns);
  const AppRecord& Record(const e2e::App& app) const;
  // The app running in `pod` (its addresses parsed from the pod's status).
  e2e::App AppOf(const std::string& name, e2e::AppKind kind, const std::string& ns, const PodInfo& pod) const;
  void RequireIpsecOnce();
  void WaitXdpAttached(const std::string& what, const PodInfo& pod);
  void RecordImages(const PodInfo& pod);
  void RememberOriginalSecret();
  void WriteSecret(const ipsec::IpsecSecret& secret, const std::string& what);

  std::unique_ptr<Kubectl> k_;
  KubeOptions opts_;
  ClusterFacts facts_;
  CleanupStack cleanup_;
  mutable std::mutex mu_;
  std::map<std::string, AppRecord> apps_;  // "ns/name"
  std::map<std::string, std::unique_ptr<node::NodeEvidence>> nodes_;
  std::map<std::string, e2e::App> fortio_;  // client "ns/name" -> its fortio app
  std::vector<std::string> created_namespaces_;
  bool ipsec_checked_ = false;
  bool original_secret_known_ = false;
  std::optional<ipsec::IpsecSecret> original_secret_;
  std::optional<ipsec::IpsecSecret> last_secret_;
  bool secret_exists_ = false;  // known once RememberOriginalSecret ran
  std::optional<uint32_t> first_spi_;
  nlohmann::json images_ = nlohmann::json::array();
  ipsec::SecretHistory history_;
  int manifest_seq_ = 0;
};

}  // namespace kmesh::kube
