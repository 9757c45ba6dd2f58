#include "e2e/kube/node_access.h"

#include <cstdlib>
#include <filesystem>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/kmesh_abi.h"
#include "e2e/kube/cluster.h"
#include "e2e/kube/kube_env_text.h"
#include "netns/route.h"
#include "node/local_node.h"
#include "node/node_local.h"

namespace kmesh::kube {
namespace {

const char* DirectionName(capture::CaptureSpec::Direction d) {
  return d == capture::CaptureSpec::Direction::kOut  ? "out"
         : d == capture::CaptureSpec::Direction::kIn ? "in"
                                                     : "both";
}

// A dry run's capture: nothing is captured; Finish() says where it would have been.
class PlaceholderRun : public node::CaptureRun {
 public:
  explicit PlaceholderRun(capture::CaptureSummary s) : s_(std::move(s)) {}
  capture::CaptureSummary Finish() override { return s_; }

 private:
  capture::CaptureSummary s_;
};

std::unique_ptr<node::CaptureRun> DryRunCapture(const capture::CaptureSpec& spec) {
  capture::CaptureSummary s;
  s.netns = "dry run";
  s.interface = spec.interface;
  s.filter = spec.filter;
  return std::make_unique<PlaceholderRun>(std::move(s));
}

// kmesh-probe capture running in the Kmesh pod: Finish() waits for its --seconds, parses its summary and
// fetches the .pcap (`after`).
class RemoteRun : public node::CaptureRun {
 public:
  RemoteRun(netns::Process p, std::chrono::milliseconds bound, std::string where,
            std::function<void(capture::CaptureSummary&)> after)
      : p_(std::move(p)), bound_(bound), where_(std::move(where)), after_(std::move(after)) {}
  capture::CaptureSummary Finish() override {
    const auto r = p_.Wait(bound_);
    if (!r.ok() && r.out.find("\"probe\"") == std::string::npos)
      throw Error(where_ + ": " + DescribeResult(r));
    const auto j = node::ParseReport(r.out, "capture", where_);
    capture::CaptureSummary s = node::CaptureSummaryFromJson(j.at("summary"), where_);
    if (after_) after_(s);
    return s;
  }

 private:
  netns::Process p_;
  std::chrono::milliseconds bound_;
  std::string where_;
  std::function<void(capture::CaptureSummary&)> after_;
};

// ---- kind: the node container's namespaces, from the host ----

// Each read runs in this process (the node's kernel is this machine's; node/local_node.h) and is logged,
// with its duration, as the kmesh-probe command that reads the same from the host (Kubectl::InProcess), so
// the command log (and a dry run) lists every node read of a run whatever the transport. In a dry run
// nothing is read: `docker inspect` gets the dry run's placeholder pid, and every read answers "nothing
// there".
class KindAccess : public node::LocalNode {
 public:
  KindAccess(Kubectl& k, std::string node, NodeAccessOptions o)
      : k_(k), node_(std::move(node)), o_(std::move(o)) {}

  std::string Describe() const override {
    return "kind node container " + node_ + (pid_ ? " (pid " + std::to_string(pid_) + ")" : "");
  }

  xfrm::XfrmSnapshot Xfrm() override {
    xfrm::XfrmSnapshot snap;
    snap.netns = "dry run";
    k_.InProcess({"kmesh-probe", "xfrm", "--netns", NodeNsPath()}, [&] { snap = LocalNode::Xfrm(); });
    return snap;
  }
  void DeleteXfrmState(const xfrm::XfrmState& s) override {
    std::vector<std::string> eq = {"kmesh-probe", "xfrm-delete-state", "--src", s.src, "--dst", s.dst,
                                   "--spi",       s.spi.ToString()};
    if (s.mark.mask != 0) eq.insert(eq.end(), {"--mark", s.mark.ToString()});
    eq.insert(eq.end(), {"--netns", NodeNsPath()});
    k_.InProcess(eq, [&] { LocalNode::DeleteXfrmState(s); });
  }
  node::MapsReport Maps(const std::string& workload_ip) override {
    node::MapsReport r;
    r.source = "dry run";
    r.workload_ip = workload_ip;
    std::vector<std::string> eq = {"kmesh-probe", "--maps", "pin:" + PinDir(), "maps"};
    if (!workload_ip.empty()) eq.insert(eq.end(), {"--workload-ip", workload_ip});
    k_.InProcess(eq, [&] { r = LocalNode::Maps(workload_ip); });
    return r;
  }
  node::AuthReport Auth(const net::Tuple& t) override {
    node::AuthReport r;
    r.map = "dry run";
    r.tuple = t;
    r.port_order = o_.port_order;
    std::vector<std::string> eq = {"kmesh-probe", "--maps", "pin:" + PinDir()};
    if (o_.port_order != net::PortOrder::kHost)
      eq.insert(eq.end(), {"--port-order", net::ToString(o_.port_order)});
    eq.insert(eq.end(), {"auth", "--tuple", t.ToString()});
    k_.InProcess(eq, [&] { r = LocalNode::Auth(t); });
    return r;
  }
  bpf_probe::XdpAttachment XdpOfPod(const std::string& pod_ip) override {
    bpf_probe::XdpAttachment a;
    a.netns = "dry run";
    a.ifname = "eth0";
    k_.InProcess({"kmesh-probe", "--proc", NodeProc(), "xdp", "--pod-ip", pod_ip},
                 [&] { a = LocalNode::XdpOfPod(pod_ip); });
    return a;
  }
  std::unique_ptr<node::CaptureRun> StartCapture(const std::string& peer,
                                                 capture::CaptureSpec spec) override {
    std::unique_ptr<node::CaptureRun> run = DryRunCapture(spec);
    k_.InProcess(CaptureEquivalent({"--netns", NodeNsPath()}, peer, spec),
                 [&] { run = LocalNode::StartCapture(peer, spec); });
    return run;
  }
  std::unique_ptr<node::CaptureRun> StartPodCapture(const std::string& pod_ip,
                                                    capture::CaptureSpec spec) override {
    std::unique_ptr<node::CaptureRun> run = DryRunCapture(spec);
    k_.InProcess(CaptureEquivalent({"--proc", NodeProc(), "--pod-ip", pod_ip}, "", spec),
                 [&] { run = LocalNode::StartPodCapture(pod_ip, spec); });
    return run;
  }
  void Invalidate() override { pid_ = 0; }

 protected:
  netns::NetnsRef NodeNs() override { return netns::NetnsRef::OfPid(Pid()); }
  // The node mounts its own bpffs (kind node containers do); its pins are seen through its root.
  std::string PinDir() override { return NodeRoot() + o_.pin_dir; }
  // A pod is looked up by address among the node container's own processes, not among every namespace
  // of the machine, which may run another kind cluster with the same pod CIDRs (or a lab).
  node::PodNetns PodOf(const std::string& pod_ip) override {
    const node::NetnsOwner o = node::RequireNetnsOwning(NodeProc(), pod_ip, "");
    return {netns::NetnsRef::Resolve(o.netns), o.ifname};
  }
  net::PortOrder port_order() const override { return o_.port_order; }

 private:
  int Pid() {
    if (pid_ != 0 && (k_.dry_run() || std::filesystem::exists("/proc/" + std::to_string(pid_) + "/ns/net")))
      return pid_;
    const auto r = k_.RunOther({"docker", "inspect", "-f", "{{.State.Pid}}", node_});
    if (!r.ok()) {
      throw Error(
          "kind node " + node_ + ": " + DescribeResult(r) +
          " (the kind transport needs the node's container on this machine; KMESH_E2E_KUBE_NODE_ACCESS=probe "
          "reads nodes through kmesh-probe instead)");
    }
    const int pid = std::atoi(r.out.c_str());
    if (pid <= 0)
      throw Error("kind node " + node_ + ": `docker inspect` gave pid \"" + r.out +
                  "\" (is the container running?)");
    pid_ = pid;
    return pid_;
  }
  std::string NodeRoot() { return "/proc/" + std::to_string(Pid()) + "/root"; }
  std::string NodeNsPath() { return "/proc/" + std::to_string(Pid()) + "/ns/net"; }
  // The node container's own /proc: the node's processes and its pods' only.
  std::string NodeProc() { return NodeRoot() + "/proc"; }

  static std::vector<std::string> CaptureEquivalent(std::vector<std::string> where, const std::string& peer,
                                                    const capture::CaptureSpec& spec) {
    std::vector<std::string> eq = {"kmesh-probe", "capture"};
    eq.insert(eq.end(), where.begin(), where.end());
    if (!spec.interface.empty()) {
      eq.insert(eq.end(), {"--iface", spec.interface});
    } else if (!peer.empty()) {
      eq.insert(eq.end(), {"--peer", peer});
    }
    if (!spec.filter.empty()) eq.insert(eq.end(), {"--filter", spec.filter});
    eq.insert(eq.end(), {"--direction", DirectionName(spec.direction)});
    return eq;
  }

  Kubectl& k_;
  std::string node_;
  NodeAccessOptions o_;
  int pid_ = 0;
};

// ---- probe: kmesh-probe inside the node's Kmesh daemon pod ----

class ProbeAccess : public node::NodeEvidence {
 public:
  ProbeAccess(Kubectl& k, CleanupStack& cleanup, std::string node, NodeAccessOptions o)
      : k_(k),
        cleanup_(cleanup),
        node_(std::move(node)),
        o_(std::move(o)),
        remote_path_("/tmp/kmesh-probe-" + o_.run_id) {}

  std::string Describe() const override {
    return "kmesh-probe in " + o_.kmesh_namespace + "/" +
           (pod_.empty() ? "<kmesh pod of " + node_ + ">" : pod_);
  }
  xfrm::XfrmSnapshot Xfrm() override {
    // Raw keys cross the kubectl exec pipe into this process only (the layout check compares keys);
    // the output is marked sensitive so no message or log ever shows it.
    const auto j = Exec("xfrm", {"--include-raw-keys"}, true);
    return node::XfrmSnapshotFromJson(j.at("snapshot"), Where("xfrm"));
  }
  void DeleteXfrmState(const xfrm::XfrmState& s) override {
    std::vector<std::string> args = {"--src", s.src, "--dst", s.dst, "--spi", s.spi.ToString()};
    if (s.mark.mask != 0) args.insert(args.end(), {"--mark", s.mark.ToString()});
    Exec("xfrm-delete-state", args);
  }
  node::MapsReport Maps(const std::string& workload_ip) override {
    std::vector<std::string> args;
    if (!workload_ip.empty()) args = {"--workload-ip", workload_ip};
    return node::MapsReportFromJson(Exec("maps", args), Where("maps"));
  }
  node::AuthReport Auth(const net::Tuple& t) override {
    return node::AuthReportFromJson(Exec("auth", {"--tuple", t.ToString()}), Where("auth"));
  }
  bpf_probe::XdpAttachment XdpOfPod(const std::string& pod_ip) override {
    return node::XdpAttachmentFromJson(Exec("xdp", {"--pod-ip", pod_ip}), Where("xdp"));
  }
  std::unique_ptr<node::CaptureRun> StartCapture(const std::string& peer,
                                                 capture::CaptureSpec spec) override {
    std::vector<std::string> where = {};
    if (spec.interface.empty()) {
      where = {"--peer", peer};
    } else {
      where = {"--iface", spec.interface};
    }
    return Capture(where, std::move(spec));
  }
  std::unique_ptr<node::CaptureRun> StartPodCapture(const std::string& pod_ip,
                                                    capture::CaptureSpec spec) override {
    std::vector<std::string> where = {"--pod-ip", pod_ip};
    if (!spec.interface.empty()) where.insert(where.end(), {"--iface", spec.interface});
    return Capture(where, std::move(spec));
  }
  void Invalidate() override {
    pod_.clear();
    pod_uid_.clear();
  }

 private:
  std::string Where(const std::string& cmd) const {
    return "kmesh-probe " + cmd + " on node " + node_ + " (" + Describe() + ")";
  }

  // The node's Kmesh pod, with kmesh-probe copied in once per pod (a replaced pod gets a new copy). Looked
  // up once; an exec that finds the pod gone looks again (Exec).
  void EnsurePod() {
    if (!pod_uid_.empty()) return;
    const auto pods =
        ParsePodList(k_.GetJson({"get", "pods", "-n", o_.kmesh_namespace, "-l", o_.kmesh_selector,
                                 "--field-selector", "spec.nodeName=" + node_},
                                "find the Kmesh pod of node " + node_),
                     "Kmesh pods of node " + node_);
    const PodInfo* pod = nullptr;
    for (const auto& p : pods) {
      if (p.phase == "Running" && !p.deleting) pod = &p;
    }
    if (pod == nullptr) {
      std::string seen;
      for (const auto& p : pods) seen += "\n  " + p.Describe();
      throw Error("node " + node_ + " has no running Kmesh pod (" + o_.kmesh_namespace + ", -l " +
                  o_.kmesh_selector + ")" + (seen.empty() ? "" : "; found:" + seen));
    }
    if (pod->uid == pod_uid_) return;
    pod_ = pod->name;
    pod_uid_ = pod->uid;
    container_ = pod->container_names.empty() ? "" : pod->container_names[0];
    for (const auto& c : pod->container_names) {
      if (c == "kmesh") container_ = c;
    }
    if (o_.local_probe.empty()) {
      throw Error("kmesh-probe: no binary to copy into " + pod_ + ": " +
                  (o_.local_probe_problem.empty() ? "NodeAccessOptions.local_probe is empty"
                                                  : o_.local_probe_problem));
    }
    k_.Run({"cp", o_.local_probe, o_.kmesh_namespace + "/" + pod_ + ":" + remote_path_, "-c", container_},
           "copy kmesh-probe into " + o_.kmesh_namespace + "/" + pod_ +
               " (kubectl cp needs tar in the container)",
           defaults::KubeCopy());
    k_.Run({"exec", "-n", o_.kmesh_namespace, pod_, "-c", container_, "--", "chmod", "0755", remote_path_},
           "make kmesh-probe executable in " + pod_);
    const std::string ns = o_.kmesh_namespace, pod_name = pod_, container = container_, path = remote_path_;
    Kubectl* k = &k_;
    cleanup_.Push("kmesh-probe/" + pod_uid_, "remove kmesh-probe from " + ns + "/" + pod_name, [=] {
      const auto r = k->Try({"exec", "-n", ns, pod_name, "-c", container, "--", "rm", "-f", path});
      // A pod that is gone took the copy with it.
      if (!r.ok() && r.err.find("NotFound") == std::string::npos &&
          r.err.find("not found") == std::string::npos) {
        throw Error(DescribeResult(r));
      }
    });
  }

  std::vector<std::string> ProbeArgv(const std::string& cmd, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"exec",     "-n", o_.kmesh_namespace, pod_,     "-c",
                                     container_, "--", remote_path_,       "--proc", o_.host_proc};
    if (o_.pin_dir != KM_PIN_DIR) argv.insert(argv.end(), {"--maps", "pin:" + o_.pin_dir});
    if (o_.port_order != net::PortOrder::kHost)
      argv.insert(argv.end(), {"--port-order", net::ToString(o_.port_order)});
    argv.push_back(cmd);
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  nlohmann::json Exec(const std::string& cmd, const std::vector<std::string>& args, bool sensitive = false) {
    EnsurePod();
    auto r = k_.Try(ProbeArgv(cmd, args), defaults::Kubectl(), sensitive);
    if (!r.ok() && r.err.find("(NotFound)") != std::string::npos) {
      // The Kmesh pod was replaced behind our back (a restart, an eviction): find the new one and copy again.
      Invalidate();
      EnsurePod();
      r = k_.Try(ProbeArgv(cmd, args), defaults::Kubectl(), sensitive);
    }
    // kmesh-probe prints a JSON error report with exit 1; anything else is kubectl's own failure.
    if (!r.ok() && r.out.find("\"probe\"") == std::string::npos) {
      throw KubectlError(Where(cmd) + ": " + DescribeResult(r, sensitive), r);
    }
    return node::ParseReport(r.out, cmd, Where(cmd));
  }

  std::unique_ptr<node::CaptureRun> Capture(std::vector<std::string> where, capture::CaptureSpec spec) {
    EnsurePod();
    const long seconds = std::max<long>(1, static_cast<long>((spec.max_duration.count() + 999) / 1000));
    std::vector<std::string> args = where;
    if (!spec.filter.empty()) args.insert(args.end(), {"--filter", spec.filter});
    args.insert(args.end(),
                {"--seconds", std::to_string(seconds), "--max-packets", std::to_string(spec.max_packets)});
    if (!spec.inner.dst.ip.unspecified()) {
      args.insert(args.end(),
                  {"--inner", spec.inner.ToString()});
    }
    if (!spec.marker.empty()) args.insert(args.end(), {"--marker", spec.marker});
    args.insert(args.end(), {"--direction", DirectionName(spec.direction)});
    const std::string remote_pcap = "/tmp/" + o_.run_id + "-" + spec.label + ".pcap";
    if (!spec.save_dir.empty()) args.insert(args.end(), {"--save", remote_pcap});
    const auto bound = std::chrono::milliseconds(seconds * 1000) + defaults::Kubectl();
    netns::Process p = k_.Start(ProbeArgv("capture", args), bound);
    const std::string ns = o_.kmesh_namespace, pod = pod_, container = container_;
    const std::string local = spec.save_dir.empty() ? "" : spec.save_dir + "/" + spec.label + ".pcap";
    Kubectl* k = &k_;
    auto after = [=](capture::CaptureSummary& s) {
      if (local.empty()) return;
      k->Run({"cp", ns + "/" + pod + ":" + remote_pcap, local, "-c", container},
             "fetch the capture " + remote_pcap, defaults::KubeCopy());
      k->Try({"exec", "-n", ns, pod, "-c", container, "--", "rm", "-f", remote_pcap});
      s.pcap_path = local;
    };
    return std::make_unique<RemoteRun>(std::move(p), bound, Where("capture"), after);
  }

  Kubectl& k_;
  CleanupStack& cleanup_;
  std::string node_;
  NodeAccessOptions o_;
  std::string remote_path_;
  std::string pod_, pod_uid_, container_;
};

}  // namespace

NodeAccessOptions NodeAccessOptions::FromEnvironment() {
  NodeAccessOptions o;
  o.pin_dir = EnvOr("KMESH_E2E_KUBE_PIN_DIR", KM_PIN_DIR);
  o.port_order = *net::ParsePortOrder(EnvOr("KMESH_E2E_KUBE_PORT_ORDER", "host"));
  o.host_proc = EnvOr("KMESH_E2E_KUBE_HOST_PROC", "/host/proc");
  return o;
}

std::unique_ptr<node::NodeEvidence> MakeKindAccess(Kubectl& k, const std::string& node,
                                                   const NodeAccessOptions& o) {
  return std::make_unique<KindAccess>(k, node, o);
}

std::unique_ptr<node::NodeEvidence> MakeProbeAccess(Kubectl& k, CleanupStack& cleanup,
                                                    const std::string& node, const NodeAccessOptions& o) {
  return std::make_unique<ProbeAccess>(k, cleanup, node, o);
}

std::unique_ptr<node::NodeEvidence> MakeNodeAccess(Kubectl& k, CleanupStack& cleanup, const std::string& node,
                                                   const NodeAccessOptions& o) {
  const std::string mode = EnvOr("KMESH_E2E_KUBE_NODE_ACCESS", "auto");
  if (mode != "auto" && mode != "kind" && mode != "probe") {
    throw Error("KMESH_E2E_KUBE_NODE_ACCESS=" + mode + ": expected kind, probe or auto");
  }
  if (mode == "kind") return MakeKindAccess(k, node, o);
  // A dry run consults no docker, so `auto` means probe there; name kind to see its commands.
  if (k.dry_run() || mode == "probe") return MakeProbeAccess(k, cleanup, node, o);
  if (!FindExecutable("docker").empty()) {
    const auto r = k.RunOther({"docker", "inspect", "-f", "{{.State.Pid}}", node});
    if (r.ok() && std::atoi(r.out.c_str()) > 0) return MakeKindAccess(k, node, o);
  }
  return MakeProbeAccess(k, cleanup, node, o);
}

}  // namespace kmesh::kube
