// What a node's kernel holds, read the same way wherever the node is: a lab node (a namespace on this
// machine), a kind node (a container on this machine) or any cluster node (kmesh-probe in its Kmesh pod).
// The Env hands one of these per node; the framework asks it for km_auth_res, XDP of a pod, Kmesh's maps,
// xfrm, and captures, so no environment writes that logic twice.
//
//   LocalNode (local_node.h): the node's kernel is this machine's; the collectors run here.
//   e2e/kube's probe access (node_access.h): kmesh-probe over kubectl exec; its JSON is probe_json.h.
#pragma once

#include <memory>
#include <string>

#include "net/tuple.h"
#include "bpf_probe/xdp.h"
#include "capture/capture.h"
#include "xfrm/xfrm.h"
#include "node/probe_json.h"

namespace kmesh::node {

// A capture started on a node or in a pod, owned by the caller: Finish() stops it (or waits for its
// bound, when it runs remotely) and returns the same summary wherever it ran. Destroying an unfinished run
// stops it.
class CaptureRun {
 public:
  virtual ~CaptureRun() = default;
  virtual capture::CaptureSummary Finish() = 0;
};

// A capture running in this process (capture::Capture).
std::unique_ptr<CaptureRun> LocalCaptureRun(capture::Capture c);

class NodeEvidence {
 public:
  virtual ~NodeEvidence() = default;
  // "lab node kme2e-12-node1-0", "kind node container kmesh-testing-worker (pid 4242)", "kmesh-probe in ..."
  virtual std::string Describe() const = 0;

  // Kmesh's maps in the node's pin folder: km_authz_policy ids, entry counts, and km_frontend/km_wlpolicy
  // of the pod at `workload_ip` ("" = none).
  virtual MapsReport Maps(const std::string& workload_ip) = 0;
  // km_auth_res[t] in the node's pin folder.
  virtual AuthReport Auth(const net::Tuple& t) = 0;
  // The XDP program attached to the pod that holds `pod_ip` (its interface holding the address).
  virtual bpf_probe::XdpAttachment XdpOfPod(const std::string& pod_ip) = 0;
  // xfrm of the node's own namespace, keys included (they stay in memory; evidence shows fingerprints).
  virtual xfrm::XfrmSnapshot Xfrm() = 0;
  // Deletes one xfrm state of the node by hand (fault recovery).
  virtual void DeleteXfrmState(const xfrm::XfrmState& s) = 0;
  // On the node's interface toward `peer` (spec.interface when set); or on the pod's own interface.
  virtual std::unique_ptr<CaptureRun> StartCapture(const std::string& peer, capture::CaptureSpec spec) = 0;
  virtual std::unique_ptr<CaptureRun> StartPodCapture(const std::string& pod_ip,
                                                      capture::CaptureSpec spec) = 0;
  // The node's Kmesh was restarted (a new daemon, maybe a new pod): forget what was cached about it.
  virtual void Invalidate() {}
};

}  // namespace kmesh::node
