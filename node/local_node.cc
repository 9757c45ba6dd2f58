#include "node/local_node.h"

#include <utility>

#include "bpf_probe/maps.h"
#include "netns/route.h"
#include "node/node_local.h"

namespace kmesh::node {
namespace {

class LocalRun : public CaptureRun {
 public:
  explicit LocalRun(capture::Capture c) : c_(std::move(c)) {}
  capture::CaptureSummary Finish() override { return c_.Finish(); }

 private:
  capture::Capture c_;
};

}  // namespace

std::unique_ptr<CaptureRun> LocalCaptureRun(capture::Capture c) {
  return std::make_unique<LocalRun>(std::move(c));
}

MapsReport LocalNode::Maps(const std::string& workload_ip) {
  return SummarizeMaps(bpf_probe::MapCatalog::FromPinDir(PinDir()), workload_ip);
}

AuthReport LocalNode::Auth(const net::Tuple& t) {
  return LookupAuth(bpf_probe::MapCatalog::FromPinDir(PinDir()), t, port_order());
}

bpf_probe::XdpAttachment LocalNode::XdpOfPod(const std::string& pod_ip) {
  const PodNetns pod = PodOf(pod_ip);
  return bpf_probe::QueryXdp(pod.ns, pod.ifname);
}

xfrm::XfrmSnapshot LocalNode::Xfrm() { return xfrm::Snapshot(NodeNs()); }

void LocalNode::DeleteXfrmState(const xfrm::XfrmState& s) { node::DeleteXfrmState(NodeNs(), s); }

std::unique_ptr<CaptureRun> LocalNode::StartCapture(const std::string& peer, capture::CaptureSpec spec) {
  const netns::NetnsRef ns = NodeNs();
  if (spec.interface.empty()) spec.interface = netns::RouteTo(ns, peer).interface;
  return LocalCaptureRun(capture::Capture::Start(ns, spec));
}

std::unique_ptr<CaptureRun> LocalNode::StartPodCapture(const std::string& pod_ip, capture::CaptureSpec spec) {
  const PodNetns pod = PodOf(pod_ip);
  if (spec.interface.empty()) spec.interface = pod.ifname;
  return LocalCaptureRun(capture::Capture::Start(pod.ns, spec));
}

}  // namespace kmesh::node
