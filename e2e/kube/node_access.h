// How the kube env reads a node's kernel (xfrm, Kmesh's maps, XDP attachments, captures). Two transports:
//   kind:  the harness runs on the machine hosting the kind node containers. `docker inspect` gives the
//          node container's pid; /proc/PID/ns/net is the node's namespace, /proc/PID/root/sys/fs/bpf its
//          bpffs (kind nodes mount their own), and pods are found by their address among the node's own
//          processes (/proc/PID/root/proc, the container's /proc).
//          The framework's collectors run directly (same kernel).
//   probe: any cluster. The static kmesh-probe is copied into the node's Kmesh daemon pod (kubectl cp)
//          and run there (kubectl exec) with the host's /proc (/host/proc in Kmesh's daemonset) and the
//          node's /sys/fs/bpf; it prints JSON (probe_json.h).
// KMESH_E2E_KUBE_NODE_ACCESS=kind|probe|auto picks one (auto: kind when `docker inspect <node>` works).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/tuple.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/capture.h"
#include "e2e/framework/xfrm.h"
#include "e2e/kube/cleanup.h"
#include "e2e/kube/kubectl.h"
#include "e2e/kube/probe_json.h"
#include "netns/process.h"

namespace kmesh::kube {

// A capture on a node or in a pod, local (kind) or remote (kmesh-probe capture in the Kmesh pod, its
// .pcap copied back with kubectl cp). Finish() returns the same summary either way.
class NodeCapture {
 public:
  static NodeCapture Local(capture::Capture c);
  // `remote_pcap` ("" = not saved) is fetched into `local_pcap` by `fetch` after the run.
  static NodeCapture Remote(netns::Process p, std::chrono::milliseconds bound, std::string where,
                            std::function<void(capture::CaptureSummary&)> after);
  // A dry run's: Finish() returns `s` (nothing was captured).
  static NodeCapture Placeholder(capture::CaptureSummary s);
  NodeCapture(NodeCapture&&) noexcept;
  NodeCapture& operator=(NodeCapture&&) noexcept;
  ~NodeCapture();
  // Local: stops now (after the settle time). Remote: waits for kmesh-probe's --seconds to end.
  capture::CaptureSummary Finish();

 private:
  NodeCapture() = default;
  std::optional<capture::Capture> local_;
  std::optional<netns::Process> remote_;
  std::optional<capture::CaptureSummary> placeholder_;
  std::chrono::milliseconds bound_{0};
  std::string where_;
  std::function<void(capture::CaptureSummary&)> after_;
};

class NodeAccess {
 public:
  virtual ~NodeAccess() = default;
  virtual std::string Describe() const = 0;  // "kind node container kmesh-testing-worker (pid 4242)"
  virtual bool local() const = 0;            // the framework's collectors run here (kind)

  // xfrm of the node's own namespace, keys included (they stay in memory; evidence shows fingerprints).
  virtual xfrm::XfrmSnapshot Xfrm() = 0;
  virtual void DeleteXfrmState(const xfrm::XfrmState& s) = 0;
  // km_authz_policy ids, and km_frontend/km_wlpolicy of the pod at `workload_ip` ("" = none).
  virtual MapsReport Maps(const std::string& workload_ip) = 0;
  virtual AuthReport Auth(const bpf_probe::Tuple& t) = 0;
  virtual bpf_probe::XdpAttachment XdpOfPod(const std::string& pod_ip) = 0;
  // On the node's interface toward `peer` (spec.interface when set); or on the pod's own interface.
  virtual NodeCapture StartCapture(const std::string& peer, capture::CaptureSpec spec) = 0;
  virtual NodeCapture StartPodCapture(const std::string& pod_ip, capture::CaptureSpec spec) = 0;
  // The framework's capture::Capture (Env::StartCapture's type): only where local() holds.
  virtual capture::Capture StartLocalCapture(const std::string& peer, capture::CaptureSpec spec);
  virtual capture::Capture StartLocalPodCapture(const std::string& pod_ip, capture::CaptureSpec spec);
  // The node's Kmesh pod was replaced (RestartDataplane): forget what was cached about it.
  virtual void Invalidate() {}
};

struct NodeAccessOptions {
  std::string pin_dir = KM_PIN_DIR;                               // KMESH_E2E_KUBE_PIN_DIR
  bpf_probe::PortOrder port_order = bpf_probe::PortOrder::kHost;  // KMESH_E2E_KUBE_PORT_ORDER
  std::string host_proc = "/host/proc";  // inside the Kmesh pod (KMESH_E2E_KUBE_HOST_PROC)
  std::string kmesh_namespace = "kmesh-system";
  std::string kmesh_selector = "app=kmesh";
  std::string run_id;               // names the probe's copy: /tmp/kmesh-probe-<run id>
  std::string local_probe;          // the kmesh-probe binary to copy
  std::string local_probe_problem;  // why there is none (said when a copy is needed)
  static NodeAccessOptions FromEnvironment();
};

std::unique_ptr<NodeAccess> MakeKindAccess(Kubectl& k, const std::string& node, const NodeAccessOptions& o);
std::unique_ptr<NodeAccess> MakeProbeAccess(Kubectl& k, CleanupStack& cleanup, const std::string& node,
                                            const NodeAccessOptions& o);

// KMESH_E2E_KUBE_NODE_ACCESS: "kind", "probe" or "auto" (default; kind when `docker inspect` finds the
// node container). A dry run takes probe for "auto" (it consults no docker) and kind when named: its
// node reads are then logged as the kmesh-probe commands that read the same from the host.
std::unique_ptr<NodeAccess> MakeNodeAccess(Kubectl& k, CleanupStack& cleanup, const std::string& node,
                                           const NodeAccessOptions& o);

}  // namespace kmesh::kube
