#include "e2e/framework/env.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "base/hex.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

uint16_t Env::NextSourcePort() { return static_cast<uint16_t>(42000 + (next_port_++ % 20000)); }

ProbeOutcome Env::Probe(const App& client, const App& server, ProbeSpec spec) {
  if (spec.dst.ip.unspecified()) spec.dst = ServiceAddress(server);
  if (spec.src_port == 0) spec.src_port = NextSourcePort();
  ProbeOutcome out = ProbeFrom(client, spec);
  // Where the client could not say (curl gives no tuple when it never connected), the tuple is the one
  // asked for.
  if (out.tuple.src.ip.unspecified()) out.tuple.src.ip = client.ip;
  if (out.tuple.src.port == 0) out.tuple.src.port = spec.src_port;
  if (out.tuple.dst.ip.unspecified()) out.tuple.dst.ip = spec.dst.ip;
  if (out.tuple.dst.port == 0) out.tuple.dst.port = spec.dst.port;
  return out;
}

std::unique_ptr<LoadRun> Env::StartLoad(const App& client, const App& server, LoadSpec spec) {
  if (spec.probe.dst.ip.unspecified()) spec.probe.dst = ServiceAddress(server);
  return LoadFrom(client, server, spec);
}

std::optional<bpf_probe::Verdict> Env::AuthVerdict(const App& server, const net::Tuple& t) {
  return Evidence(server.node).Auth(t).verdict;
}

bpf_probe::XdpAttachment Env::XdpOf(const App& server) {
  return Evidence(server.node).XdpOfPod(server.ip.ToString());
}

std::map<std::string, uint64_t> Env::DatapathMapCounts(const App& server) {
  std::map<std::string, uint64_t> out;
  for (const auto& m : Evidence(server.node).Maps("").maps) out[m.name] = m.entries;
  return out;
}

std::optional<std::vector<uint32_t>> Env::WorkloadPolicies(const App& server) {
  return Evidence(server.node).Maps(server.ip.ToString()).workload_policy_ids;
}

xfrm::XfrmSnapshot Env::Xfrm(const std::string& node) { return Evidence(node).Xfrm(); }

void Env::DeleteXfrmState(const std::string& node, const xfrm::XfrmState& s) {
  Evidence(node).DeleteXfrmState(s);
}

std::unique_ptr<node::CaptureRun> Env::StartCapture(const std::string& node, const net::IpAddr& peer,
                                                    capture::CaptureSpec spec) {
  return Evidence(node).StartCapture(peer.ToString(), std::move(spec));
}

std::unique_ptr<node::CaptureRun> Env::StartPodCapture(const App& app, capture::CaptureSpec spec) {
  return Evidence(app.node).StartPodCapture(app.ip.ToString(), std::move(spec));
}

Realized Env::WaitRealized(const policy::AuthorizationPolicy& p, const App& server) {
  return MechanismOf(p) == Mechanism::kWaypoint ? WaitInWaypoint(p, server) : WaitInMaps(p, server);
}

Realized Env::WaitInMaps(const policy::AuthorizationPolicy& p, const App& server) {
  const auto start = Clock::now();
  const RealizeTiming timing = MapsTiming();
  const auto deadline = start + timing.bound;
  Realized r;
  r.mechanism = MechanismOf(p);
  const std::vector<uint32_t> keys = PolicyKeys(p, server);
  r.policy_id = keys.at(0);
  node::NodeEvidence& n = Evidence(server.node);
  std::string seen;
  while (true) {
    const node::MapsReport m = n.Maps(server.ip.ToString());
    // The key km_authz_policy holds the policy under (Kmesh's id, else one it may store instead).
    uint32_t stored = keys.back();
    for (uint32_t k : keys) {
      if (m.HasPolicy(k)) {
        stored = k;
        break;
      }
    }
    const bool in_policies = m.HasPolicy(stored);
    const bool listed = m.WorkloadLists(r.policy_id);
    seen = "km_authz_policy (" + m.source + ") " + (in_policies ? "holds " : "lacks ") + Hex32(stored) +
           " (" + p.IdKey() +
           (stored != r.policy_id ? ", id " + Hex32(r.policy_id) + " cut at a zero byte" : "") +
           "); km_frontend[" + server.ip.ToString() +
           "] = " + (m.workload_id ? Hex32(*m.workload_id) : std::string("absent"));
    if (m.workload_id && *m.workload_id != server.workload_id) {
      seen +=
          " (not " + WorkloadIdSource(server) + " = " + Hex32(server.workload_id) + ": the map's id is used)";
    }
    if (m.workload_id) {
      std::string ids;
      if (m.workload_policy_ids) {
        for (uint32_t id : *m.workload_policy_ids) ids += (ids.empty() ? "" : ", ") + Hex32(id);
      }
      seen += "; km_wlpolicy[" + Hex32(*m.workload_id) +
              "] = " + (m.workload_policy_ids ? "{" + ids + "}" : "absent");
    }
    if (in_policies && listed) break;
    if (DryRun()) {
      seen = "dry run, not checked: " + seen;
      break;
    }
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized for " + server.name +
                  (timing.bound.count() > 0
                       ? " within " + std::to_string(timing.bound.count()) + " ms (" + timing.bound_name + ")"
                       : " (" + timing.bound_name + ")") +
                  ", read through " + n.Describe() + ": " + seen);
    }
    std::this_thread::sleep_for(timing.poll);
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return r;
}

void Env::UseIpsecFamily(net::Family family) {
  for (const auto& n : Nodes()) {
    if (n.address.family() != family) {
      throw Error(name() + ": node " + n.name + "'s address " + n.address.ToString() + " is not " +
                  FamilyName(family) + ": IPsec over " + FamilyName(family) +
                  " needs a cluster whose nodes are");
    }
  }
}

std::vector<net::Family> ParseFamilies(const std::string& text) {
  std::vector<net::Family> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    net::Family f;
    if (item == "ipv4") {
      f = net::Family::kIPv4;
    } else if (item == "ipv6") {
      f = net::Family::kIPv6;
    } else {
      throw Error("address families \"" + text + "\": \"" + item + "\" is not ipv4 or ipv6");
    }
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
    start = comma + 1;
  }
  return out;
}

}  // namespace kmesh::e2e
