// What a cluster node's kernel holds, read through the node's access (node_access.h): km_auth_res, XDP of
// a pod, Kmesh's maps, xfrm, captures.
#include "e2e/kube/kube_env.h"

namespace kmesh::kube {

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

xfrm::XfrmSnapshot KubeEnv::Xfrm(const std::string& n) { return node(n).Xfrm(); }

void KubeEnv::DeleteXfrmState(const std::string& n, const xfrm::XfrmState& s) { node(n).DeleteXfrmState(s); }

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
