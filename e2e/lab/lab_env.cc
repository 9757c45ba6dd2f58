#include "e2e/lab/lab_env.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/tc.h"
#include "e2e/lab/ipsec_agent.h"
#include "e2e/lab/kmesh_daemon_protocol.h"
#include "e2e/lab/kmesh_ipsec_tc.h"
#include "netns/process.h"
#include "netns/route.h"
#include "node/local_node.h"

namespace kmesh::lab {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

LabEnv::LabEnv() : LabEnv(Lab::Up()) {}

LabEnv::LabEnv(std::unique_ptr<Lab> lab) : lab_(std::move(lab)) {
  // KMESH_E2E_LAB_FAULTS="xdp-detached,wrong-key@node1": faults active from the start (e2e/mutation runs).
  if (const char* faults = std::getenv("KMESH_E2E_LAB_FAULTS"); faults && *faults) {
    std::stringstream list(faults);
    for (std::string item; std::getline(list, item, ',');) {
      if (item.empty()) continue;
      const auto at = item.find('@');
      const Fault f = ParseFault(item.substr(0, at));
      if (at == std::string::npos) {
        lab_->Inject(f);
      } else {
        lab_->Inject(f, item.substr(at + 1));
      }
    }
  }
}

LabEnv::~LabEnv() = default;

std::vector<e2e::Node> LabEnv::Nodes() {
  std::vector<e2e::Node> out;
  for (const auto& n : lab_->topology().nodes())
    out.push_back({n->spec.name, *net::IpAddr::Parse(Lab::UnderlayIp(n->spec, lab_->ipsec_family()))});
  return out;
}

void LabEnv::UseIpsecFamily(net::Family family) { lab_->SetIpsecFamily(family); }

e2e::App LabEnv::Deploy(const e2e::AppSpec& spec) { return lab_->Deploy(spec); }

std::vector<policy::AuthorizationPolicy> LabEnv::Apply(const policy::Manifest& m) { return lab_->Apply(m); }

void LabEnv::Remove(const std::vector<policy::AuthorizationPolicy>& policies) { lab_->Remove(policies); }

e2e::Mechanism LabEnv::MechanismOf(const policy::AuthorizationPolicy& p) const {
  return lab_->MechanismOf(p);
}

namespace {

// A lab node's kernel is this machine's: its namespace, the pin folder its Kmesh datapath pinned maps in,
// and its pods found by address among the lab's own (never among the machine's namespaces).
class LabNode : public node::LocalNode {
 public:
  LabNode(Lab& lab, std::string node) : lab_(lab), node_(std::move(node)) {}
  std::string Describe() const override { return "lab node " + node_; }

 protected:
  netns::NetnsRef NodeNs() override { return lab_.topology().node(node_).ns.ref(); }
  std::string PinDir() override { return lab_.kmesh(node_).pin_dir(); }
  node::PodNetns PodOf(const std::string& pod_ip) override {
    for (const auto& p : lab_.topology().pods()) {
      if (p->node == node_ && (p->ip == pod_ip || (!p->ip6.empty() && p->ip6 == pod_ip)))
        return {p->ns.ref(), "eth0"};
    }
    throw Error("lab node " + node_ + " has no pod with address " + pod_ip);
  }

 private:
  Lab& lab_;
  std::string node_;
};

}  // namespace

node::NodeEvidence& LabEnv::Evidence(const std::string& node) {
  lab_->topology().node(node);  // throws naming the lab's nodes when there is no such node
  auto& e = evidence_[node];
  if (!e) e = std::make_unique<LabNode>(*lab_, node);
  return *e;
}

std::vector<uint32_t> LabEnv::PolicyKeys(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto id = lab_->PolicyId(server.node, p.IdKey());
  if (!id) throw Error("lab: policy " + p.IdKey() + " was never applied on " + server.node);
  return {*id, daemon_protocol::DeserializerStoredKey(*id)};
}

e2e::Env::RealizeTiming LabEnv::MapsTiming() const {
  return {std::chrono::milliseconds(0), defaults::PollInterval(),
          "Kmesh's daemon has written what it writes"};
}

e2e::Realized LabEnv::WaitInWaypoint(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto start = Clock::now();
  const auto deadline = start + defaults::PolicyRealized();
  e2e::Realized r;
  r.mechanism = e2e::Mechanism::kWaypoint;
  const e2e::App& app = lab_->app(server.name);
  std::string seen;
  while (true) {
    // The waypoint logs the policy ids it enforces at start and on every reload; a dual-stack server has
    // one waypoint per family, and each must have loaded the policy.
    bool loaded = true;
    seen.clear();
    for (const auto family : {net::Family::kIPv4, net::Family::kIPv6}) {
      if (family == net::Family::kIPv6 && !app.ip6) continue;
      std::ifstream log(lab_->WaypointLog(app.name, family));
      std::vector<std::string> last;
      for (std::string line; std::getline(log, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("policies")) continue;
        last = j["policies"].get<std::vector<std::string>>();
      }
      loaded &= std::find(last.begin(), last.end(), p.IdKey()) != last.end();
      std::string list;
      for (const auto& s : last) list += (list.empty() ? "" : ", ") + s;
      seen += std::string(seen.empty() ? "" : "; ") + "waypoint of " + app.name + " (" +
              e2e::FamilyName(family) + ") enforces {" + list + "}";
    }
    if (loaded) break;
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized for " + server.name + " within " +
                  std::to_string(defaults::PolicyRealized().count()) +
                  " ms (KMESH_E2E_POLICY_REALIZED_MS): " + seen);
    }
    std::this_thread::sleep_for(defaults::PollInterval());
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return r;
}

net::Endpoint LabEnv::ServiceAddress(const e2e::App& server) { return lab_->ServiceAddress(server); }

e2e::ProbeOutcome LabEnv::ProbeFrom(const e2e::App& client, const e2e::ProbeSpec& spec) {
  return e2e::Probe(lab_->pod_of(client).ns.ref(), spec);
}

namespace {

class GeneratorRun : public e2e::LoadRun {
 public:
  explicit GeneratorRun(e2e::LoadGenerator g) : g_(std::move(g)) {}
  e2e::LoadReport Wait() override { return g_.Wait(); }

 private:
  e2e::LoadGenerator g_;
};

}  // namespace

std::unique_ptr<e2e::LoadRun> LabEnv::LoadFrom(const e2e::App& client, const e2e::App&,
                                               const e2e::LoadSpec& spec) {
  return std::make_unique<GeneratorRun>(e2e::LoadGenerator::Start(lab_->pod_of(client).ns.ref(), spec));
}

nlohmann::json LabEnv::DatapathIdentity() { return lab_->DatapathIdentity(); }

nlohmann::json LabEnv::UserspaceDecisions(const e2e::App& server, const net::Tuple& t) {
  auto& seen = decisions_[server.node];
  for (auto& d : lab_->kmesh(server.node).daemon->Decisions()) seen.push_back(std::move(d));
  nlohmann::json out = nlohmann::json::array();
  const std::string want = t.ToString();
  for (const auto& d : seen) {
    if (d.value("tuple", nlohmann::json()).is_string() && d["tuple"].get<std::string>() == want)
      out.push_back(d);
  }
  return out;
}

void LabEnv::ApplySecret(const ipsec::IpsecSecret& secret) { lab_->ApplySecret(secret); }

std::vector<ipsec::NodeInfo> LabEnv::IpsecNodes() {
  std::vector<ipsec::NodeInfo> out;
  for (const auto& n : lab_->topology().nodes()) {
    const net::Family family = lab_->ipsec_family();
    ipsec::NodeInfo info{
        n->spec.name, Lab::UnderlayIp(n->spec, family), {Lab::PodCidr(n->spec, family)}, 0, n->boot_id};
    std::ifstream f(lab_->ipsec_state_dir() + "/kni/" + n->spec.name + ".json");
    if (f) {
      auto j = nlohmann::json::parse(f, nullptr, false);
      if (!j.is_discarded()) info.spi = j.value("spi", 0u);
    }
    out.push_back(info);
  }
  return out;
}

void LabEnv::RestartDataplane(const std::string& node) { lab_->RestartDataplane(node); }

bool LabEnv::SetAuthzOffload(bool on) {
  lab_->SetAuthzOffload(on);
  return true;
}

std::optional<ipsec::NodeMarking> LabEnv::IpsecMarking(const std::string& node) {
  Node& n = lab_->topology().node(node);
  ipsec::NodeMarking m;
  m.node = node;
  // What the node's agent says it loaded (its build records), matched below against the kernel's filters.
  if (!lab_->ipsec_state_dir().empty()) {
    std::ifstream f(DatapathRecordPath(lab_->ipsec_state_dir(), node));
    const auto j = f ? nlohmann::json::parse(f, nullptr, false) : nlohmann::json();
    if (j.is_object()) {
      for (const char* name : {"tc_mark_encrypt", "tc_mark_decrypt"}) {
        if (!j.contains(name)) continue;
        const auto& p = j[name];
        m.loaded.push_back({name, p.value("id", 0u), p.value("tag", ""), p.value("kmesh_commit", ""),
                            p.value("pinned_commit", ""), p.value("object_sha256", ""),
                            p.value("clang", "")});
      }
    }
  }
  for (const auto& p : lab_->topology().pods()) {
    if (p->node != node) continue;
    m.attachments.push_back({p->host_veth, "host veth of pod " + p->name, "tc_mark_encrypt",
                             bpf_probe::KmeshTcFilter(n.ns.ref(), p->host_veth)});
  }
  const std::string uplink =
      netns::RouteTo(n.ns.ref(), lab_->topology().nodes().front()->spec.name == node
                                     ? lab_->topology().nodes().back()->spec.underlay_ip
                                     : lab_->topology().nodes().front()->spec.underlay_ip)
          .interface;
  m.attachments.push_back({uplink, "node interface carrying " + n.spec.underlay_ip, "tc_mark_decrypt",
                           bpf_probe::KmeshTcFilter(n.ns.ref(), uplink)});
  m.nodeinfo_pin = lab_->kmesh(node).pin_dir() + "/" KM_MAP_NODEINFO;
  try {
    m.nodeinfo_cidrs = ReadNodeinfoCidrs(m.nodeinfo_pin);
  } catch (const std::exception&) {
    m.nodeinfo_pin += " (not pinned)";
  }
  return m;
}

std::optional<e2e::PodLink> LabEnv::PodLinkOf(const e2e::App& server) {
  const Pod& pod = lab_->pod_of(server);
  return e2e::PodLink{
      lab_->topology().node(pod.node).ns.ref(), pod.host_veth, pod.ns.ref(), "eth0", pod.node, server.name};
}

}  // namespace kmesh::lab
