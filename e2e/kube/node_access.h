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

#include <memory>
#include <string>

#include "bpf_probe/kmesh_abi.h"
#include "net/tuple.h"
#include "e2e/kube/cleanup.h"
#include "e2e/kube/kubectl.h"
#include "node/node_evidence.h"

namespace kmesh::kube {

struct NodeAccessOptions {
  std::string pin_dir = KM_PIN_DIR;                               // KMESH_E2E_KUBE_PIN_DIR
  net::PortOrder port_order = net::PortOrder::kHost;  // KMESH_E2E_KUBE_PORT_ORDER
  std::string host_proc = "/host/proc";  // inside the Kmesh pod (KMESH_E2E_KUBE_HOST_PROC)
  std::string kmesh_namespace = "kmesh-system";
  std::string kmesh_selector = "app=kmesh";
  std::string run_id;               // names the probe's copy: /tmp/kmesh-probe-<run id>
  std::string local_probe;          // the kmesh-probe binary to copy
  std::string local_probe_problem;  // why there is none (said when a copy is needed)
  static NodeAccessOptions FromEnvironment();
};

std::unique_ptr<node::NodeEvidence> MakeKindAccess(Kubectl& k, const std::string& node,
                                                   const NodeAccessOptions& o);
std::unique_ptr<node::NodeEvidence> MakeProbeAccess(Kubectl& k, CleanupStack& cleanup,
                                                    const std::string& node, const NodeAccessOptions& o);

// KMESH_E2E_KUBE_NODE_ACCESS: "kind", "probe" or "auto" (default; kind when `docker inspect` finds the
// node container). A dry run takes probe for "auto" (it consults no docker) and kind when named: its
// node reads are then logged as the kmesh-probe commands that read the same from the host.
std::unique_ptr<node::NodeEvidence> MakeNodeAccess(Kubectl& k, CleanupStack& cleanup, const std::string& node,
                                                   const NodeAccessOptions& o);

}  // namespace kmesh::kube
