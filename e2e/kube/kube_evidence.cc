// What runs on the cluster: Kmesh's pods and the images every pod runs. (What a node's kernel holds is
// read through the node's evidence, node_access.h, by the framework: env.cc.)
#include "e2e/kube/kube_env.h"

namespace kmesh::kube {

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

}  // namespace kmesh::kube
