// kmesh-mapdump's `policies` in full and `explain`: pure functions of decoded data (golden-file tested).
#include <algorithm>
#include <map>
#include <set>

#include "bpf_probe/fnv.h"
#include "bpf_probe/json_writer.h"
#include "tools/mapdump/format.h"

namespace kmesh::mapdump {
namespace {

using bpf_probe::DecodedPolicy;
using bpf_probe::JsonWriter;
using bpf_probe::PolicyAddress;
using bpf_probe::PolicyMatch;
using bpf_probe::PolicyString;

template <typename T, typename F>
std::string List(const std::vector<T>& v, F text) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + text(x);
  return "[" + s + "]";
}

std::string AddressText(const PolicyAddress& a) { return a.ToString(); }
std::string StringText(const PolicyString& s) { return s.ToString(); }
std::string PortText(uint32_t p) { return std::to_string(p); }

// The fields of a match that are set, one "name: [values]" each, in the proto's field order.
std::vector<std::string> MatchLines(const PolicyMatch& m) {
  std::vector<std::string> out;
  auto strings = [&](const char* name, const std::vector<PolicyString>& v) {
    if (!v.empty()) out.push_back(std::string(name) + ": " + List(v, StringText));
  };
  auto addrs = [&](const char* name, const std::vector<PolicyAddress>& v) {
    if (!v.empty()) out.push_back(std::string(name) + ": " + List(v, AddressText));
  };
  auto ports = [&](const char* name, const std::vector<uint32_t>& v) {
    if (!v.empty()) out.push_back(std::string(name) + ": " + List(v, PortText));
  };
  strings("namespaces", m.namespaces);
  strings("not_namespaces", m.not_namespaces);
  strings("principals", m.principals);
  strings("not_principals", m.not_principals);
  addrs("source_ips", m.source_ips);
  addrs("not_source_ips", m.not_source_ips);
  addrs("destination_ips", m.destination_ips);
  addrs("not_destination_ips", m.not_destination_ips);
  ports("destination_ports", m.destination_ports);
  ports("not_destination_ports", m.not_destination_ports);
  return out;
}

// What the key says about the name: Kmesh's id, a cut-down id (D8), or a collision.
std::string KeyNote(const DecodedPolicy& p) {
  if (!p.name_read || !p.ns_read) return "";
  const uint32_t id = p.IdOfName();
  const std::string fnv = "FNV-32a of \"" + p.ns + "/" + p.name + "\"";
  if (id == p.key) return " (" + fnv + ")";
  if (bpf_probe::StrncpyKey(id) == p.key) {
    return " (" + fnv + " is " + std::to_string(id) +
           ", which has a zero byte: strncpy cut the key, and XDP looks the policy up under " +
           std::to_string(id) + " and never finds it [D8])";
  }
  return " (" + fnv + " is " + std::to_string(id) +
         ": another id, e.g. after a collision (hash_name.go probes))";
}

std::string BlobSummary(const DecodedPolicy& p) {
  std::string s;
  for (bpf_probe::InnerMap m : bpf_probe::kInnerMaps) {
    const auto n = std::count_if(p.blobs.begin(), p.blobs.end(),
                                 [&](const bpf_probe::BlobRef& b) { return b.map == m; });
    if (n) s += (s.empty() ? "" : ", ") + std::string(bpf_probe::ToString(m)) + " " + std::to_string(n);
  }
  return std::to_string(p.blobs.size()) + (s.empty() ? "" : " (" + s + ")");
}

void WriteStrings(JsonWriter& w, const char* name, const std::vector<PolicyString>& v) {
  if (v.empty()) return;
  w.Key(name).BeginArray();
  for (const auto& s : v) {
    w.BeginObject();
    if (!s.broken.empty()) {
      w.Key("broken").String(s.broken);
    } else {
      const char* kind = s.kind == PolicyString::Kind::kExact    ? "exact"
                         : s.kind == PolicyString::Kind::kPrefix ? "prefix"
                         : s.kind == PolicyString::Kind::kSuffix ? "suffix"
                         : s.kind == PolicyString::Kind::kUnset  ? "unset"
                                                                 : "unknown";
      w.Key(kind);
      if (s.kind == PolicyString::Kind::kUnset)
        w.Bool(true);
      else if (s.kind == PolicyString::Kind::kUnknown)
        w.Uint(s.match_type_case);
      else
        w.String(s.value);
    }
    w.EndObject();
  }
  w.EndArray();
}

void WriteAddresses(JsonWriter& w, const char* name, const std::vector<PolicyAddress>& v) {
  if (v.empty()) return;
  w.Key(name).BeginArray();
  for (const auto& a : v) {
    if (a.broken.empty()) {
      w.String(a.ToString());
    } else {
      w.BeginObject().Key("broken").String(a.broken).EndObject();
    }
  }
  w.EndArray();
}

void WritePorts(JsonWriter& w, const char* name, const std::vector<uint32_t>& v) {
  if (v.empty()) return;
  w.Key(name).BeginArray();
  for (uint32_t p : v) w.Uint(p);
  w.EndArray();
}

}  // namespace

std::vector<PolicyWorkloadRef> WorkloadsListing(const std::vector<bpf_probe::WorkloadPolicies>& workloads,
                                                uint32_t key) {
  std::vector<PolicyWorkloadRef> out;
  for (const auto& wp : workloads) {
    for (size_t i = 0; i < wp.policy_ids.size(); ++i) {
      if (wp.policy_ids[i] == key) out.push_back({wp.workload_id, i});
    }
  }
  return out;
}

std::string FormatPolicyDetails(const std::vector<DecodedPolicy>& decoded,
                                const std::vector<bpf_probe::WorkloadPolicies>& workloads) {
  std::string out;
  for (const auto& p : decoded) {
    out += "\n" + p.Resource() + ":\n";
    out += "  key: " + std::to_string(p.key) + KeyNote(p) + "\n";
    out += "  scope: " + bpf_probe::ToString(p.scope()) + "\n";
    out += "  action: " + bpf_probe::ToString(p.action()) + "\n";
    const auto refs = WorkloadsListing(workloads, p.key);
    std::string wl;
    for (const auto& r : refs) {
      wl +=
          (wl.empty() ? "" : ", ") + std::to_string(r.workload_id) + " (slot " + std::to_string(r.slot) + ")";
    }
    out += "  listed in km_wlpolicy: " + (wl.empty() ? std::string("no workload") : wl) + "\n";
    out += "  blobs: " + BlobSummary(p) + "\n";
    if (p.rules.empty() && p.n_rules == 0) {
      out += "  rules: []    # no rule: XDP passes everything here and reads no later policy [D31]\n";
    } else {
      out += "  rules:    # " + std::to_string(p.n_rules) + "; the policy matches when any rule does\n";
    }
    for (const auto& r : p.rules) {
      if (!r.broken.empty()) {
        out += "  - <broken>\n";
        continue;
      }
      if (r.clauses.empty()) {
        out += "  - clauses: []    # matches every connection\n";
        continue;
      }
      out += "  - clauses:    # all must match\n";
      for (const auto& c : r.clauses) {
        if (!c.broken.empty()) {
          out += "    - <broken>\n";
          continue;
        }
        out += "    - matches:" + std::string(c.matches.empty() ? " []    # matches nothing" : "") + "\n";
        for (const auto& m : c.matches) {
          if (!m.broken.empty()) {
            out += "      - <broken>\n";
            continue;
          }
          const auto lines = MatchLines(m);
          if (lines.empty()) {
            out += "      - {}\n";
            continue;
          }
          for (size_t i = 0; i < lines.size(); ++i)
            out += (i == 0 ? "      - " : "        ") + lines[i] + "\n";
        }
      }
    }
    if (!p.problems.empty()) {
      out += "  broken:    # what could not be read, not guessed\n";
      for (const auto& pr : p.problems) out += "  - " + pr + "\n";
    }
  }
  return out;
}

void WritePolicyDetailsJson(JsonWriter& w, const DecodedPolicy& p,
                            const std::vector<bpf_probe::WorkloadPolicies>& workloads) {
  if (p.name_read) w.Key("name").String(p.name);
  if (p.ns_read) w.Key("namespace").String(p.ns);
  if (p.name_read && p.ns_read) w.Key("id_of_name").Uint(p.IdOfName());
  w.Key("scope").String(bpf_probe::ToString(p.scope())).Key("action").String(bpf_probe::ToString(p.action()));
  w.Key("n_rules").Uint(p.n_rules);
  w.Key("rules").BeginArray();
  for (const auto& r : p.rules) {
    w.BeginObject();
    if (!r.broken.empty()) w.Key("broken").String(r.broken);
    w.Key("clauses").BeginArray();
    for (const auto& c : r.clauses) {
      w.BeginObject();
      if (!c.broken.empty()) w.Key("broken").String(c.broken);
      w.Key("matches").BeginArray();
      for (const auto& m : c.matches) {
        w.BeginObject();
        if (!m.broken.empty()) w.Key("broken").String(m.broken);
        WriteStrings(w, "namespaces", m.namespaces);
        WriteStrings(w, "not_namespaces", m.not_namespaces);
        WriteStrings(w, "principals", m.principals);
        WriteStrings(w, "not_principals", m.not_principals);
        WriteAddresses(w, "source_ips", m.source_ips);
        WriteAddresses(w, "not_source_ips", m.not_source_ips);
        WriteAddresses(w, "destination_ips", m.destination_ips);
        WriteAddresses(w, "not_destination_ips", m.not_destination_ips);
        WritePorts(w, "destination_ports", m.destination_ports);
        WritePorts(w, "not_destination_ports", m.not_destination_ports);
        w.EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray();
  w.Key("workloads").BeginArray();
  for (const auto& r : WorkloadsListing(workloads, p.key)) {
    w.BeginObject().Key("workload_id").Uint(r.workload_id).Key("slot").Uint(r.slot).EndObject();
  }
  w.EndArray();
  w.Key("blobs").BeginArray();
  for (const auto& b : p.blobs) w.String(b.ToString());
  w.EndArray();
  w.Key("problems").BeginArray();
  for (const auto& pr : p.problems) w.String(pr);
  w.EndArray();
}

std::string FormatExplainJson(const bpf_probe::XdpExplanation& e, bool sport_known,
                              const std::vector<std::pair<net::Tuple, uint32_t>>& cached_for_any_port) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("tuple").String(e.tuple.ToString()).Key("sport_known").Bool(sport_known);
  w.Key("action").String("XDP_" + bpf_probe::ToString(e.action)).Key("to_userspace").Bool(e.to_userspace);
  w.Key("outcome").String(e.Outcome()).Key("decided_by").String(e.decided_by).Key("why").String(e.why);
  w.Key("cached");
  if (e.cached)
    w.String(bpf_probe::ToString(*e.cached));
  else
    w.Null();
  w.Key("writes_auth_res");
  if (e.writes_auth_res)
    w.String(bpf_probe::ToString(*e.writes_auth_res));
  else
    w.Null();
  w.Key("tcargs");
  if (e.tcargs) {
    w.BeginObject().Key("policy_index").Uint(e.tcargs->policy_index);
    w.Key("need_tailcall_to_userspace").Bool(e.tcargs->need_tailcall_to_userspace);
    w.Key("auth_result")
        .String(e.tcargs->auth_result == 1   ? "XDP_DROP"
                : e.tcargs->auth_result == 2 ? "XDP_PASS"
                                             : "other");
    w.Key("action").String(e.tcargs->action == KM_ACTION_DENY ? "DENY" : "ALLOW");
    w.Key("n_rules").Uint(e.tcargs->n_rules).EndObject();
  } else {
    w.Null();
  }
  if (e.policies_now) w.Key("policies_now").String("XDP_" + bpf_probe::ToString(*e.policies_now));
  w.Key("assumed_past_slots").Bool(e.assumed_past_slots);
  w.Key("authz_offload");
  if (e.authz_offload) w.Uint(*e.authz_offload);
  else w.Null();
  w.Key("steps").BeginArray();
  for (const auto& s : e.steps) {
    w.BeginObject().Key("depth").Int(s.depth).Key("text").String(s.text).Key("source").String(s.source);
    if (!s.defect.empty()) w.Key("defect").String(s.defect);
    w.EndObject();
  }
  w.EndArray();
  w.Key("defects").BeginArray();
  for (const auto& d : e.defects) w.String(d);
  w.EndArray();
  w.Key("notes").BeginArray();
  for (const auto& n : e.notes) w.String(n);
  w.EndArray();
  if (!sport_known) {
    w.Key("cached_for_any_source_port").BeginArray();
    for (const auto& [t, v] : cached_for_any_port) {
      w.BeginObject().Key("tuple").String(t.ToString());
      w.Key("verdict").String(bpf_probe::ToString(static_cast<bpf_probe::Verdict>(v))).EndObject();
    }
    w.EndArray();
  }
  w.EndObject().Newline();
  return out;
}

std::string FormatExplainText(const bpf_probe::XdpExplanation& e, bool sport_known,
                              const std::vector<std::pair<net::Tuple, uint32_t>>& cached_for_any_port) {
  std::string out = bpf_probe::FormatExplanation(e);
  if (!sport_known) {
    if (cached_for_any_port.empty()) {
      out += "km_auth_res holds no verdict for " + e.tuple.src.ip.ToString() + " -> " + e.tuple.dst.ip.ToString() +
             ":" + std::to_string(e.tuple.dst.port) + " from any source port\n";
    } else {
      out += "km_auth_res holds " + std::to_string(cached_for_any_port.size()) +
             " verdict(s) for this client and " +
             "destination, which decide those 4-tuples before any policy (give SRC:PORT to explain one):\n";
      for (const auto& [t, v] : cached_for_any_port) {
        out += "  " + t.ToString() + "  " + bpf_probe::ToString(static_cast<bpf_probe::Verdict>(v)) + "\n";
      }
    }
  }
  return out;
}

}  // namespace kmesh::mapdump
