// NodeEvidence for a node whose kernel is this machine's: a lab node, or a kind node container. The
// collectors run in this process: maps from the node's pin folder, XDP and captures in the pod's namespace,
// xfrm in the node's. A subclass says only where the node is (its namespace, its pin folder, how a pod is
// found by address); everything read is read the same way for both.
#pragma once

#include <memory>
#include <string>

#include "net/tuple.h"
#include "netns/netns.h"
#include "node/node_evidence.h"

namespace kmesh::node {

// Where a pod is: its namespace and the interface holding its address.
struct PodNetns {
  netns::NetnsRef ns;
  std::string ifname;
};

class LocalNode : public NodeEvidence {
 public:
  MapsReport Maps(const std::string& workload_ip) override;
  AuthReport Auth(const net::Tuple& t) override;
  bpf_probe::XdpAttachment XdpOfPod(const std::string& pod_ip) override;
  xfrm::XfrmSnapshot Xfrm() override;
  void DeleteXfrmState(const xfrm::XfrmState& s) override;
  std::unique_ptr<CaptureRun> StartCapture(const std::string& peer, capture::CaptureSpec spec) override;
  std::unique_ptr<CaptureRun> StartPodCapture(const std::string& pod_ip, capture::CaptureSpec spec) override;

 protected:
  // Looked up on every read: a kind node's container may have been restarted in between.
  virtual netns::NetnsRef NodeNs() = 0;
  virtual std::string PinDir() = 0;
  virtual PodNetns PodOf(const std::string& pod_ip) = 0;
  // Kmesh's port byte order in km_auth_res keys (node_local.h LookupAuth).
  virtual net::PortOrder port_order() const { return net::PortOrder::kHost; }
};

}  // namespace kmesh::node
