// The lab implementation of e2e::Env: the suites' default environment. It owns a Lab (lab.h) and answers
// evidence questions from the lab's own kernel objects: km_auth_res of the server's node, the XDP
// attachment of the server pod's eth0, xfrm of a node namespace, captures on a node's underlay.
#pragma once

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
  ~LabEnv() override;
  std::string name() const override { return "lab"; }
  Lab& lab() { return *lab_; }

  std::vector<e2e::Node> Nodes() override;
  e2e::App Deploy(const e2e::AppSpec& spec) override;
  std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m) override;
  void Remove(const std::vector<policy::AuthorizationPolicy>& policies) override;
  e2e::Mechanism MechanismOf(const policy::AuthorizationPolicy& p) const override;
  net::Endpoint ServiceAddress(const e2e::App& server) override;
  // A lab node: its namespace, its pin folder, its pods (node/local_node.h).
  node::NodeEvidence& Evidence(const std::string& node) override;
  nlohmann::json UserspaceDecisions(const e2e::App& server, const net::Tuple& t) override;
  nlohmann::json DatapathIdentity() override;
  void ApplySecret(const ipsec::IpsecSecret& secret) override;
  void UseIpsecFamily(net::Family family) override;
  std::vector<ipsec::NodeInfo> IpsecNodes() override;
  void RestartDataplane(const std::string& node) override;
  void CrashRebootNode(const std::string& node) override { lab_->CrashRebootNode(node); }
  // The server pod's veth: its node end (lxcN in the node's namespace) and eth0, where xdp_authz runs.
  std::optional<e2e::PodLink> PodLinkOf(const e2e::App& server) override;
  std::optional<ipsec::NodeMarking> IpsecMarking(const std::string& node) override;
  bool SetAuthzOffload(bool on) override;

 protected:
  e2e::ProbeOutcome ProbeFrom(const e2e::App& client, const e2e::ProbeSpec& spec) override;
  std::unique_ptr<e2e::LoadRun> LoadFrom(const e2e::App& client, const e2e::App& server,
                                         const e2e::LoadSpec& spec) override;
  // Kmesh's id for the policy on the server's node (hash_name.go), and the key Kmesh's deserializer really
  // stores it under at the pinned commit (kmesh_daemon_protocol.h DeserializerStoredKey: differs for ids
  // with a zero byte, which XDP then never finds; the suite's D8 row shows that). Either key realizes the
  // policy, so the day Kmesh stores the id whole the D8 row passes (and turns red) instead of failing here.
  std::vector<uint32_t> PolicyKeys(const policy::AuthorizationPolicy& p, const e2e::App& server) override;
  // Kmesh's maps are written synchronously in the lab (the node daemons answered before Apply returned),
  // so what is not in them now never will be: no waiting.
  RealizeTiming MapsTiming() const override;
  // The waypoint logs the policy ids it enforces at start and on every reload (asynchronously: waited for,
  // bounded by POLICY_REALIZED).
  e2e::Realized WaitInWaypoint(const policy::AuthorizationPolicy& p, const e2e::App& server) override;

 private:
  std::unique_ptr<Lab> lab_;
  std::map<std::string, std::unique_ptr<node::NodeEvidence>> evidence_;  // per node
  std::map<std::string, std::vector<nlohmann::json>> decisions_;         // per node, read from its daemon
};

}  // namespace kmesh::lab
