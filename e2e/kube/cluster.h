// What kubectl's JSON says about the cluster, as typed records: pods (readiness and why not), nodes,
// KmeshNodeInfo, the IPsec secret, the server version, Kmesh's daemon flags, a Gateway's status. Pure
// functions of `kubectl ... -o json` output, unit-tested against recorded outputs (testdata/kubectl/).
// Every parse error names the source (the command) and the field.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipsec/ipsec_layout.h"
#include "ipsec/ipsec_secret.h"
#include "net/ip.h"

namespace kmesh::kube {

struct ContainerStatus {
  std::string name;
  std::string image;
  std::string image_id;  // the digest the node resolved ("gcr.io/istio-testing/app@sha256:..."), "" before
  bool ready = false;
  int restarts = 0;
  std::string
      waiting_reason;  // "ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "ContainerCreating", ...
  std::string waiting_message;
  std::string terminated_reason;
  int terminated_exit_code = 0;
};

struct PodInfo {
  std::string name;
  std::string ns;
  std::string uid;
  std::string node;   // spec.nodeName ("" while unscheduled)
  std::string phase;  // Pending, Running, Succeeded, Failed, Unknown
  std::string ip;     // status.podIP
  std::string ip6;    // the IPv6 entry of status.podIPs beside an IPv4 podIP (dual stack), else ""
  std::map<std::string, std::string> labels;
  bool ready = false;                             // condition Ready=True
  bool deleting = false;                          // metadata.deletionTimestamp set
  std::vector<std::string> container_names;       // spec.containers[].name, in order
  std::vector<std::string> container_images;      // spec.containers[].image, in order
  std::vector<std::string> first_container_args;  // spec.containers[0] command + args
  std::vector<ContainerStatus> containers;        // status.containerStatuses
  std::string scheduling_message;                 // condition PodScheduled=False message

  // "test-ns1/httpbin-5d9c (node kmesh-testing-worker): Running, not ready; httpbin waiting
  // ContainerCreating"
  std::string Describe() const;
};

std::vector<PodInfo> ParsePodList(const nlohmann::json& j, const std::string& source);
PodInfo ParsePod(const nlohmann::json& j, const std::string& source);

// Why the pod will not become Ready without someone's help, or "" while waiting still makes sense:
// image pull failures (ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull), config errors
// (CreateContainerConfigError, CreateContainerError), a crash loop, Failed/Succeeded, or unschedulable.
std::string PodProblem(const PodInfo& p);

struct NodeFacts {
  std::string name;
  std::string internal_ip;
  std::vector<std::string> pod_cidrs;  // spec.podCIDRs (or [spec.podCIDR])
  std::string boot_id;                 // status.nodeInfo.bootID
  bool ready = false;
};
// Sorted by name (kind: control-plane before worker).
std::vector<NodeFacts> ParseNodeList(const nlohmann::json& j, const std::string& source);
// The address families of the nodes' podCIDRs (IPv4 first), the families the cluster's pods have: a
// dual-stack kind cluster has both, an IPv6 one (Kmesh's e2e-ipv6 CI) IPv6 only. Throws when no node has a
// pod CIDR.
std::vector<net::Family> PodFamilies(const std::vector<NodeFacts>& nodes);

// kmesh.net/v1alpha1 KmeshNodeInfo list (kubectl -n kmesh-system get kmeshnodeinfos -o json): spec.spi,
// spec.addresses, spec.bootID, spec.podCIDRS (capital S). Sorted by name. An object with several
// addresses contributes the first one (Kmesh derives keys per address; the layout checker takes one).
std::vector<ipsec::NodeInfo> ParseKmeshNodeInfos(const nlohmann::json& j, const std::string& source);

// Secret kmesh-system/kmesh-ipsec: data.ipSec (base64 of kmeshctl's JSON) parsed with IpsecSecret::Parse.
ipsec::IpsecSecret ParseIpsecSecret(const nlohmann::json& j, const std::string& source);

// `kubectl version -o json`: the server's gitVersion. Throws when serverVersion is absent.
std::string ParseServerVersion(const nlohmann::json& j, const std::string& source);

// Kmesh's daemon flags, from its container's command and args ("./start_kmesh.sh --mode=dual-engine
// --enable-bypass=false --enable-ipsec=true" is one shell string in the chart).
struct KmeshDaemonFlags {
  std::string mode;          // "dual-engine", "kernel-native", "" when not given
  bool ipsec = false;        // --enable-ipsec=true (or a bare --enable-ipsec)
  std::string command_line;  // the text the flags were read from
};
KmeshDaemonFlags ParseKmeshDaemonFlags(const PodInfo& kmesh_pod);

// A Gateway (gateway.networking.k8s.io) is programmed: condition Programmed=True (or Accepted=True when the
// controller reports no Programmed condition). `why` gets the conditions seen.
bool GatewayReady(const nlohmann::json& gateway, std::string* why);

// A Service's spec.clusterIP ("" for a headless one).
std::string ServiceClusterIp(const nlohmann::json& service, const std::string& source);

}  // namespace kmesh::kube
