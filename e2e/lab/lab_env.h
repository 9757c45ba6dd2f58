// The lab implementation of e2e::Env: the suites' default environment. It owns a Lab (lab.h) and answers
// evidence questions from the lab's own kernel objects: km_auth_res of the server's node, the XDP
// attachment of the server pod's eth0, xfrm of a node namespace, captures on a node's underlay.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <vector>

#include "e2e/framework/env.h"
#include "e2e/lab/lab.h"

namespace kmesh::lab {

class LabEnv : public e2e::Env {
 public:
  LabEnv();
  explicit LabEnv(std::unique_ptr<Lab> lab);
  std::string name() const override { return "lab"; }
  Lab& lab() { return *lab_; }

  std::vector<e2e::Node> Nodes() override;
  e2e::App Deploy(const e2e::AppSpec& spec) override;
  std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m) override;
  void Remove(const std::vector<policy::AuthorizationPolicy>& policies) override;
  e2e::Mechanism MechanismOf(const policy::AuthorizationPolicy& p) const override;
  e2e::Realized WaitRealized(const policy::AuthorizationPolicy& p, const e2e::App& server) override;
  std::pair<std::string, uint16_t> ServiceAddress(const e2e::App& server) override;
  e2e::ProbeOutcome Probe(const e2e::App& client, const e2e::App& server, e2e::ProbeSpec spec) override;
  std::unique_ptr<e2e::LoadRun> StartLoad(const e2e::App& client, const e2e::App& server,
                                          e2e::LoadSpec spec) override;
  std::optional<bpf_probe::Verdict> AuthVerdict(const e2e::App& server, const bpf_probe::Tuple& t) override;
  bpf_probe::XdpAttachment XdpOf(const e2e::App& server) override;
  std::map<std::string, uint64_t> DatapathMapCounts(const e2e::App& server) override;
  nlohmann::json UserspaceDecisions(const e2e::App& server, const bpf_probe::Tuple& t) override;
  std::optional<std::vector<uint32_t>> WorkloadPolicies(const e2e::App& server) override;
  nlohmann::json DatapathIdentity() override;
  void ApplySecret(const ipsec::IpsecSecret& secret) override;
  std::vector<ipsec::NodeInfo> IpsecNodes() override;
  xfrm::XfrmSnapshot Xfrm(const std::string& node) override;
  void DeleteXfrmState(const std::string& node, const xfrm::XfrmState& s) override;
  void RestartDataplane(const std::string& node) override;
  void CrashRebootNode(const std::string& node) override { lab_->CrashRebootNode(node); }
  capture::Capture StartCapture(const std::string& node, const std::string& peer_address,
                                capture::CaptureSpec spec) override;

  // The next source port for a probe: never reused within a run, so no cached verdict of an earlier
  // probe can decide a later one (km_auth_res entries of dropped SYNs are never deleted).
  uint16_t NextSourcePort() override;
  capture::Capture StartPodCapture(const e2e::App& app, capture::CaptureSpec spec) override;
  // The server pod's veth: its node end (lxcN in the node's namespace) and eth0, where xdp_authz runs.
  std::optional<e2e::PodLink> PodLinkOf(const e2e::App& server) override;
  std::optional<ipsec::NodeMarking> IpsecMarking(const std::string& node) override;

 private:
  std::unique_ptr<Lab> lab_;
  std::atomic<uint32_t> next_port_{0};
  std::map<std::string, std::vector<nlohmann::json>> decisions_;  // per node, read from its daemon
};

}  // namespace kmesh::lab
