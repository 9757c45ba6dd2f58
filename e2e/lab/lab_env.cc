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
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "netns/process.h"
#include "netns/route.h"

namespace kmesh::lab {
namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

LabEnv::LabEnv() : LabEnv(Lab::Up()) {}

LabEnv::LabEnv(std::unique_ptr<Lab> lab) : lab_(std::move(lab)) {
  // KMESH_E2E_LAB_FAULTS="xdp-detached,wrong-key@node1": faults active from the start (sensitivity runs).
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
  // Source ports 42000..61999, starting at a per-process offset so concurrent runs differ too.
  next_port_ = static_cast<uint32_t>(getpid() % 1000) * 20;
}

uint16_t LabEnv::NextSourcePort() { return static_cast<uint16_t>(42000 + (next_port_++ % 20000)); }

std::vector<e2e::Node> LabEnv::Nodes() {
  std::vector<e2e::Node> out;
  for (const auto& n : lab_->topology().nodes()) out.push_back({n->spec.name, n->spec.underlay_ip, {n->spec.pod_cidr}});
  return out;
}

e2e::App LabEnv::Deploy(const e2e::AppSpec& spec) {
  const auto& nodes = lab_->topology().nodes();
  if (spec.node < 0 || spec.node >= static_cast<int>(nodes.size())) {
    throw Error("lab: app " + spec.name + " asks for node index " + std::to_string(spec.node) + "; the lab has " +
                std::to_string(nodes.size()) + " nodes");
  }
  AppSpec ls;
  ls.name = spec.name;
  ls.kind = spec.kind == e2e::AppKind::kServer ? AppKind::kHttpbin : AppKind::kSleep;
  ls.node = nodes[spec.node]->spec.name;
  ls.k8s_namespace = spec.k8s_namespace;
  ls.labels = spec.labels;
  ls.waypoint = spec.waypoint;
  const App& a = lab_->Deploy(ls);
  e2e::App out{a.name, spec.kind, ls.node, spec.k8s_namespace, a.ip, a.port, 0, a.workload_id};
  if (a.kind == AppKind::kHttpbin) out.alt_port = Lab::kHttpbinAltPort;
  return out;
}

std::vector<policy::AuthorizationPolicy> LabEnv::Apply(const policy::Manifest& m) { return lab_->Apply(m); }

void LabEnv::Remove(const std::vector<policy::AuthorizationPolicy>& policies) { lab_->Remove(policies); }

e2e::Mechanism LabEnv::MechanismOf(const policy::AuthorizationPolicy& p) const {
  return lab_->EnforcerOf(p) == Enforcer::kWaypoint ? e2e::Mechanism::kWaypoint : e2e::Mechanism::kXdp;
}

e2e::Realized LabEnv::WaitRealized(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto start = Clock::now();
  const auto deadline = start + defaults::PolicyRealized();
  e2e::Realized r;
  r.policy_id = bpf_probe::PolicyId(p.ns, p.name);
  r.mechanism = MechanismOf(p);
  const App& app = lab_->app(server.name);
  std::string seen;
  while (true) {
    if (r.mechanism == e2e::Mechanism::kXdp) {
      auto& dp = lab_->datapath(server.node);
      auto policies = bpf_probe::AuthzPolicyMap(bpf_probe::Map::OpenById(dp.map_id(KM_MAP_AUTHZ_POLICY)));
      auto wl = bpf_probe::WorkloadPolicyMap(bpf_probe::Map::OpenById(dp.map_id(KM_MAP_WLPOLICY)));
      const bool in_policies = policies.PolicyIds().count(r.policy_id) != 0;
      auto entry = wl.Lookup(server.workload_id);
      bool listed = false;
      std::string ids;
      if (entry) {
        for (uint32_t id : entry->policy_ids) {
          listed |= id == r.policy_id;
          ids += (ids.empty() ? "" : ", ") + Hex(id);
        }
      }
      seen = "km_authz_policy (map " + std::to_string(dp.map_id(KM_MAP_AUTHZ_POLICY)) + ") " +
             (in_policies ? "holds " : "lacks ") + Hex(r.policy_id) + " (" + p.IdKey() + "); km_wlpolicy[" +
             Hex(server.workload_id) + "] = " + (entry ? "{" + ids + "}" : "absent");
      if (in_policies && listed) break;
    } else {
      // The waypoint logs the policy ids it enforces at start and on every reload.
      std::ifstream log(lab_->WaypointLog(app.name));
      std::vector<std::string> last;
      for (std::string line; std::getline(log, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("policies")) continue;
        last = j["policies"].get<std::vector<std::string>>();
      }
      const bool loaded = std::find(last.begin(), last.end(), p.IdKey()) != last.end();
      std::string list;
      for (const auto& s : last) list += (list.empty() ? "" : ", ") + s;
      seen = "waypoint of " + app.name + " enforces {" + list + "}";
      if (loaded) break;
    }
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized for " + server.name + " within " +
                  std::to_string(defaults::PolicyRealized().count()) + " ms (KMESH_E2E_POLICY_REALIZED_MS): " + seen);
    }
    std::this_thread::sleep_for(defaults::PollInterval());
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return r;
}

std::pair<std::string, uint16_t> LabEnv::ServiceAddress(const e2e::App& server) {
  return lab_->ServiceAddress(lab_->app(server.name));
}

e2e::ProbeOutcome LabEnv::Probe(const e2e::App& client, const e2e::App& server, e2e::ProbeSpec spec) {
  if (spec.dst_ip.empty()) std::tie(spec.dst_ip, spec.dst_port) = ServiceAddress(server);
  if (spec.src_port == 0) spec.src_port = NextSourcePort();
  return e2e::Probe(lab_->pod_of(lab_->app(client.name)).ns.ref(), spec);
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

std::unique_ptr<e2e::LoadRun> LabEnv::StartLoad(const e2e::App& client, const e2e::App& server, e2e::LoadSpec spec) {
  if (spec.probe.dst_ip.empty()) std::tie(spec.probe.dst_ip, spec.probe.dst_port) = ServiceAddress(server);
  return std::make_unique<GeneratorRun>(
      e2e::LoadGenerator::Start(lab_->pod_of(lab_->app(client.name)).ns.ref(), spec));
}

std::optional<bpf_probe::Verdict> LabEnv::AuthVerdict(const e2e::App& server, const bpf_probe::Tuple& t) {
  auto& dp = lab_->datapath(server.node);
  return bpf_probe::LookupVerdict(dp.map_fd(KM_MAP_AUTH_RES), t);
}

bpf_probe::XdpAttachment LabEnv::XdpOf(const e2e::App& server) {
  return bpf_probe::QueryXdp(lab_->pod_of(lab_->app(server.name)).ns.ref(), "eth0");
}

void LabEnv::ApplySecret(const ipsec::IpsecSecret& secret) { lab_->ApplySecret(secret); }

std::vector<ipsec::NodeInfo> LabEnv::IpsecNodes() {
  std::vector<ipsec::NodeInfo> out;
  for (const auto& n : lab_->topology().nodes()) {
    ipsec::NodeInfo info{n->spec.name, n->spec.underlay_ip, {n->spec.pod_cidr}, 0, n->boot_id};
    std::ifstream f(lab_->ipsec_state_dir() + "/kni/" + n->spec.name + ".json");
    if (f) {
      auto j = nlohmann::json::parse(f, nullptr, false);
      if (!j.is_discarded()) info.spi = j.value("spi", 0u);
    }
    out.push_back(info);
  }
  return out;
}

xfrm::XfrmSnapshot LabEnv::Xfrm(const std::string& node) { return xfrm::Snapshot(lab_->topology().node(node).ns.ref()); }

void LabEnv::DeleteXfrmState(const std::string& node, const xfrm::XfrmState& s) {
  netns::RunIn(lab_->topology().node(node).ns.ref(),
               {"ip", "xfrm", "state", "delete", "src", s.src, "dst", s.dst, "proto", "esp", "spi", Hex(s.spi.value)});
}

void LabEnv::RestartDataplane(const std::string& node) { lab_->RestartDataplane(node); }

capture::Capture LabEnv::StartCapture(const std::string& node, const std::string& peer, capture::CaptureSpec spec) {
  const auto ns = lab_->topology().node(node).ns.ref();
  if (spec.interface.empty()) spec.interface = netns::RouteTo(ns, peer).interface;
  return capture::Capture::Start(ns, spec);
}

}  // namespace kmesh::lab

namespace kmesh::lab {

capture::Capture LabEnv::StartPodCapture(const e2e::App& app, capture::CaptureSpec spec) {
  if (spec.interface.empty()) spec.interface = "eth0";
  return capture::Capture::Start(lab_->pod_of(lab_->app(app.name)).ns.ref(), spec);
}

}  // namespace kmesh::lab
