#include "tools/mapdump/format.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "base/hex.h"
#include "bpf_probe/json_writer.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::mapdump {
namespace {

using bpf_probe::JsonWriter;

// Left-aligned columns, two spaces apart, no trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
      if (width.size() < r.size()) width.resize(r.size(), 0);
      for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    std::string out;
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Join(const std::vector<uint32_t>& v, const char* sep = ",") {
  std::string s;
  for (uint32_t x : v) s += (s.empty() ? "" : sep) + std::to_string(x);
  return s;
}

const char* OrderNote(net::PortOrder order) {
  return order == net::PortOrder::kHost ? "ports read in host order (current Kmesh; --port-order network for "
                                          "Kmesh v1.2.0 and earlier)"
                                        : "ports read in network order (Kmesh v1.2.0 and earlier)";
}

}  // namespace

std::string FormatMaps(const std::string& source, const std::vector<MapRow>& rows,
                       const std::vector<std::string>& missing, bool json) {
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginObject().Key("source").String(source).Key("maps").BeginArray();
    for (const auto& r : rows) {
      const auto& i = r.info;
      w.BeginObject();
      w.Key("name").String(i.name).Key("id").Uint(i.id).Key("type").String(i.TypeName());
      w.Key("key_size").Uint(i.key_size).Key("value_size").Uint(i.value_size);
      w.Key("max_entries").Uint(i.max_entries).Key("flags").Uint(i.flags).Key("btf_id").Uint(i.btf_id);
      w.Key("entries");
      if (r.entries) w.Uint(*r.entries); else w.Null();
      if (!i.pin_path.empty()) w.Key("pin_path").String(i.pin_path);
      w.Key("kmesh_layout").Bool(r.layout_problem.empty());
      if (!r.layout_problem.empty()) w.Key("layout_problem").String(r.layout_problem);
      w.EndObject();
    }
    w.EndArray().Key("missing").BeginArray();
    for (const auto& m : missing) w.String(m);
    w.EndArray().EndObject().Newline();
    return out;
  }
  out += "maps from " + source + "\n";
  Table t({"NAME", "ID", "TYPE", "KEY", "VALUE", "MAX_ENTRIES", "FLAGS", "BTF", "ENTRIES", "LAYOUT"});
  for (const auto& r : rows) {
    const auto& i = r.info;
    t.Add({i.name, std::to_string(i.id), i.TypeName(), std::to_string(i.key_size),
           std::to_string(i.value_size), std::to_string(i.max_entries), Hex32(i.flags, false),
           i.HasBtf() ? std::to_string(i.btf_id) : "-", r.entries ? std::to_string(*r.entries) : "-",
           r.layout_problem.empty() ? "ok" : "MISMATCH"});
  }
  out += t.Render();
  if (rows.empty()) out += "(no maps)\n";
  for (const auto& r : rows) {
    if (!r.layout_problem.empty()) out += "mismatch: " + r.layout_problem + "\n";
  }
  if (!missing.empty()) {
    std::string m;
    for (const auto& n : missing) m += (m.empty() ? "" : ", ") + n;
    out += "not found: " + m + "\n";
  }
  return out;
}

bool AuthFilter::Matches(const bpf_probe::AuthEntry& e) const {
  const auto& t = e.tuple;
  if (ip && t.src.ip != *ip && t.dst.ip != *ip) return false;
  if (src && t.src.ip != *src) return false;
  if (dst && t.dst.ip != *dst) return false;
  if (port && t.src.port != *port && t.dst.port != *port) return false;
  if (dport && t.dst.port != *dport) return false;
  if (verdict && e.verdict != *verdict) return false;
  return true;
}

std::string FormatAuth(const std::vector<bpf_probe::AuthEntry>& entries, const AuthFilter& filter,
                       net::PortOrder order, bool json) {
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginArray();
    for (const auto& e : entries) {
      if (!filter.Matches(e)) continue;
      w.BeginObject();
      w.Key("src").String(e.tuple.src.ip.ToString()).Key("sport").Uint(e.tuple.src.port);
      w.Key("dst").String(e.tuple.dst.ip.ToString()).Key("dport").Uint(e.tuple.dst.port);
      w.Key("verdict").String(bpf_probe::ToString(e.verdict)).Key("value").Uint(static_cast<uint32_t>(e.verdict));
      w.Key("port_order").String(net::ToString(order));
      w.Key("key").HexString(bpf_probe::ByteView(e.key.data(), e.key.size()));
      w.EndObject();
    }
    w.EndArray().Newline();
    return out;
  }
  for (const auto& e : entries) {
    if (filter.Matches(e)) out += e.tuple.ToString() + "  " + bpf_probe::ToString(e.verdict) + "\n";
  }
  return out;
}

std::string AuthSummary(const std::vector<bpf_probe::AuthEntry>& entries, const AuthFilter& filter,
                        net::PortOrder order) {
  size_t shown = 0, deny = 0, allow = 0, other = 0;
  for (const auto& e : entries) {
    if (!filter.Matches(e)) continue;
    ++shown;
    if (e.verdict == bpf_probe::Verdict::kDeny) ++deny;
    else if (e.verdict == bpf_probe::Verdict::kAllow) ++allow;
    else ++other;
  }
  std::string s = std::to_string(shown) + " of " + std::to_string(entries.size()) + " entries shown: " +
                  std::to_string(deny) + " DENY, " + std::to_string(allow) + " ALLOW";
  if (other) s += ", " + std::to_string(other) + " UNKNOWN (XDP drops on any non-zero value)";
  return s + "; " + OrderNote(order);
}

std::string FormatPolicies(const std::vector<bpf_probe::WorkloadPolicies>& workloads,
                           const std::vector<bpf_probe::AuthzPolicy>& policies,
                           const std::map<uint32_t, std::string>& names, bool json,
                           const std::vector<bpf_probe::DecodedPolicy>* details) {
  std::set<uint32_t> present;
  for (const auto& p : policies) present.insert(p.policy_id);
  std::map<uint32_t, const bpf_probe::DecodedPolicy*> decoded;
  if (details) {
    for (const auto& d : *details) decoded[d.key] = &d;
  }
  auto name_of = [&](uint32_t id) -> std::string {
    auto it = names.find(id);
    if (it != names.end()) return it->second;
    auto d = decoded.find(id);
    return d != decoded.end() && d->second->name_read && d->second->ns_read ? d->second->Resource() : "";
  };
  // With --name, the details of the policies named only.
  auto wanted = [&](const bpf_probe::DecodedPolicy& d) {
    if (names.empty() || names.count(d.key)) return true;
    for (const auto& [id, n] : names) {
      if (n == d.Resource()) return true;
    }
    return false;
  };
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginObject().Key("workloads").BeginArray();
    for (const auto& wp : workloads) {
      w.BeginObject().Key("workload_id").Uint(wp.workload_id).Key("policies").BeginArray();
      for (uint32_t id : wp.policy_ids) {
        w.BeginObject().Key("id").Uint(id).Key("in_authz_policy").Bool(present.count(id) > 0);
        if (!name_of(id).empty()) w.Key("name").String(name_of(id));
        w.EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndArray().Key("policies").BeginArray();
    for (const auto& p : policies) {
      w.BeginObject().Key("id").Uint(p.policy_id);
      if (!name_of(p.policy_id).empty()) w.Key("name").String(name_of(p.policy_id));
      auto d = decoded.find(p.policy_id);
      if (d != decoded.end() && wanted(*d->second)) {
        WritePolicyDetailsJson(w, *d->second, workloads);
      } else if (p.decoded) {
        w.Key("action").String(bpf_probe::ToString(p.action)).Key("scope").String(bpf_probe::ToString(p.scope));
        w.Key("n_rules").Uint(p.n_rules);
      }
      w.EndObject();
    }
    w.EndArray().Key("names").BeginArray();
    for (const auto& [id, n] : names) {
      w.BeginObject().Key("name").String(n).Key("id").Uint(id).Key("in_authz_policy").Bool(present.count(id) > 0);
      w.EndObject();
    }
    w.EndArray().EndObject().Newline();
    return out;
  }
  out += std::string(KM_MAP_WLPOLICY) + ": " + std::to_string(workloads.size()) + " workload(s)\n";
  for (const auto& wp : workloads) {
    std::string ids;
    for (uint32_t id : wp.policy_ids) {
      std::string one = std::to_string(id);
      if (!name_of(id).empty()) one += " " + name_of(id);
      if (!present.count(id)) one += " (not in " KM_MAP_AUTHZ_POLICY ")";
      ids += (ids.empty() ? "" : ", ") + one;
    }
    out += "  workload " + std::to_string(wp.workload_id) + ": " + (ids.empty() ? "(no policies)" : ids) + "\n";
  }
  out += std::string(KM_MAP_AUTHZ_POLICY) + ": " + std::to_string(policies.size()) + " policy(ies)\n";
  Table t({"  ID", "NAME", "ACTION", "SCOPE", "RULES"});
  for (const auto& p : policies) {
    const std::string n = name_of(p.policy_id);
    if (p.decoded) {
      t.Add({"  " + std::to_string(p.policy_id), n.empty() ? "-" : n, bpf_probe::ToString(p.action),
             bpf_probe::ToString(p.scope), std::to_string(p.n_rules)});
    } else {
      t.Add({"  " + std::to_string(p.policy_id), n.empty() ? "-" : n, "?", "?", "?"});
    }
  }
  if (!policies.empty()) out += t.Render();
  if (std::any_of(policies.begin(), policies.end(), [](const bpf_probe::AuthzPolicy& p) { return !p.decoded; })) {
    out += "  (? = values are not in Kmesh's 64-byte layout; only the policy ids are read)\n";
  }
  if (!names.empty()) {
    out += "names given (id = FNV-32a of \"namespace/name\"):\n";
    for (const auto& [id, n] : names) {
      out += "  " + n + "  " + std::to_string(id) + "  " +
             (present.count(id) ? "present" : "ABSENT from " KM_MAP_AUTHZ_POLICY) + "\n";
    }
  }
  if (details) {
    std::vector<bpf_probe::DecodedPolicy> shown;
    for (const auto& d : *details) {
      if (wanted(d)) shown.push_back(d);
    }
    out += FormatPolicyDetails(shown, workloads);
  }
  return out;
}

std::string FormatFrontends(const std::vector<bpf_probe::Frontend>& frontends, bool json) {
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginArray();
    for (const auto& f : frontends) {
      w.BeginObject().Key("ip").String(f.ip.ToString()).Key("upstream_id").Uint(f.upstream_id).EndObject();
    }
    w.EndArray().Newline();
    return out;
  }
  for (const auto& f : frontends) out += f.ip.ToString() + "  upstream " + std::to_string(f.upstream_id) + "\n";
  return out;
}

std::string FormatXdp(const std::string& netns, const std::vector<bpf_probe::XdpAttachment>& attachments,
                      bool json) {
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginObject().Key("netns").String(netns).Key("interfaces").BeginArray();
    for (const auto& a : attachments) {
      w.BeginObject().Key("ifname").String(a.ifname).Key("ifindex").Int(a.ifindex);
      w.Key("mode").String(bpf_probe::ToString(a.mode)).Key("programs").BeginArray();
      for (const auto& p : a.programs) {
        w.BeginObject().Key("mode").String(bpf_probe::ToString(p.mode)).Key("id").Uint(p.prog.id);
        w.Key("name").String(p.prog.name).Key("tag").String(p.prog.tag).Key("map_ids").BeginArray();
        for (uint32_t m : p.prog.map_ids) w.Uint(m);
        w.EndArray();
        w.Key("stats").BeginObject().Key("collected").Bool(p.prog.stats.collected);
        w.Key("run_cnt").Uint(p.prog.stats.run_cnt).Key("run_time_ns").Uint(p.prog.stats.run_time_ns);
        w.EndObject().EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndArray().EndObject().Newline();
    return out;
  }
  out += "netns " + netns + "\n";
  Table t({"IFACE", "IFINDEX", "MODE", "PROG_ID", "NAME", "TAG", "MAP_IDS", "RUN_CNT", "RUN_TIME_NS"});
  bool stats_off = false;
  for (const auto& a : attachments) {
    if (a.programs.empty()) {
      t.Add({a.ifname, std::to_string(a.ifindex), "-"});
      continue;
    }
    for (const auto& p : a.programs) {
      const bool have = p.prog.stats.collected || p.prog.stats.run_cnt > 0;
      stats_off = stats_off || !p.prog.stats.collected;
      t.Add({a.ifname, std::to_string(a.ifindex), bpf_probe::ToString(p.mode), std::to_string(p.prog.id), p.prog.name,
             p.prog.tag, Join(p.prog.map_ids), have ? std::to_string(p.prog.stats.run_cnt) : "-",
             have ? std::to_string(p.prog.stats.run_time_ns) : "-"});
    }
  }
  out += t.Render();
  if (stats_off) {
    out += "run statistics: kernel.bpf_stats_enabled is 0, counts are not being collected "
           "(sysctl -w kernel.bpf_stats_enabled=1 to collect)\n";
  }
  return out;
}

std::string Usage() {
  return R"(kmesh-mapdump: Kmesh's XDP authorization state, read from the kernel.

usage: kmesh-mapdump COMMAND [options]

commands:
  maps                       Kmesh's maps (km_*, kmesh_map*): ids, types, sizes, flags, BTF, entry
                             counts, layout check
  auth                       km_auth_res decoded, one line per tuple: "SRC:PORT -> DST:PORT  VERDICT"
      --ip IP  --src IP  --dst IP  --port N  --dport N  --verdict allow|deny
  policies                   km_wlpolicy (workload -> policy ids), km_authz_policy, and each policy in
                             full from the kmesh_map* blobs: name, namespace, scope, action, rules ->
                             clauses -> matches; a broken chain of blobs is reported, never guessed
      --name NAMESPACE/NAME  (repeatable) only that policy: its id, whether it is present, its rules
  explain SRC[:PORT] DST:PORT
                             what Kmesh's XDP does with that connection's SYN, step by step on the
                             maps (cached verdict, km_frontend, km_wlpolicy, each policy, rule by rule),
                             known Kmesh defects included; which entry decides and why, or that
                             userspace decides. Read-only. IPv6 as [fd00::1]:80
  residue                    what no live policy or connection accounts for: kmesh_map* blobs no policy
                             reaches, km_tcargs entries, km_auth_res entries whose connection is gone
                             (TCP sockets of every network namespace); counts and examples
      --save-baseline FILE   write every map's entry count to FILE (before a change)
      --baseline FILE        compare entry counts with FILE (after it): what the suites check
      --no-connections       do not read sockets   --limit N  examples per kind (5)
  watch                      changes to km_auth_res as they happen, one line each with a UTC
                             timestamp, until Ctrl-C; read-only polling
      --map NAME|ID          (repeatable) watch these maps instead (km_tcargs, km_wlpolicy, ...)
      --interval MS          between reads (100)   --count N  --duration MS  stop after N changes
                             or MS milliseconds
  frontends                  km_frontend: IP -> upstream (workload or service) id
  xdp                        XDP attachments of a network namespace
      --netns NAME|PATH | --pid PID  [--dev IFACE]
  dump NAME|ID|PIN_PATH      any map as JSON like `bpftool -j map dump`, keys and values BTF-decoded;
                             a map whose entries cannot be listed (ring buffer, socket storage) or a
                             failed dump answers {"error": "...", "map": {...}} and exits 1
      --no-btf               raw bytes only

where the maps come from (every command but xdp; dump by NAME):
  --pin-dir DIR              pinned maps in DIR (default /sys/fs/bpf/bpf_kmesh_workload/map)
  --by-name                  every map on the machine, by kernel name (default when DIR has no pins)
  --prog ID                  the maps of program ID and of its tail calls
  --netns NAME|PATH --dev IFACE, or --pid PID --dev IFACE
                             the maps of the XDP program attached there (the precise way)

options:
  --port-order host|network  port byte order of tuple keys: host (current Kmesh, default) or network
                             (Kmesh v1.2.0 and earlier)
  --json                     JSON instead of text
  -h, --help                 this text

Needs root (CAP_SYS_ADMIN to open maps by id, CAP_NET_ADMIN for XDP queries). Inside `ip netns exec`
/sys/fs/bpf is hidden: use --by-name, --prog or --netns/--dev there.
)";
}

}  // namespace kmesh::mapdump
