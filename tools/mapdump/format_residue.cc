// kmesh-mapdump's `residue` and `watch` lines: pure functions of the data (golden-file tested).
#include <cstdio>
#include <ctime>

#include "bpf_probe/json_writer.h"
#include "tools/mapdump/format.h"

namespace kmesh::mapdump {
namespace {

using bpf_probe::JsonWriter;

void WriteTcArgs(JsonWriter& w, const bpf_probe::TcArgs& c) {
  w.BeginObject().Key("policy_index").Uint(c.policy_index);
  w.Key("need_tailcall_to_userspace").Bool(c.need_tailcall_to_userspace);
  w.Key("auth_result").String(c.auth_result == 1 ? "XDP_DROP" : c.auth_result == 2 ? "XDP_PASS" : "other");
  w.Key("action").String(c.action == KM_ACTION_DENY ? "DENY" : "ALLOW").Key("n_rules").Uint(c.n_rules);
  w.EndObject();
}

}  // namespace

std::string FormatResidue(const bpf_probe::ResidueReport& r,
                          const std::vector<bpf_probe::CountChange>* changes,
                          const std::string& baseline_origin, size_t limit, bool json) {
  std::string out;
  if (json) {
    JsonWriter w(&out);
    w.BeginObject().Key("source").String(r.source).Key("clean").Bool(r.Clean());
    w.Key("blobs").BeginObject().Key("total").Uint(r.blobs).Key("reached").Uint(r.blobs_reached);
    w.Key("policies").Uint(r.policies).Key("inner_maps_found").Bool(r.inner_maps_found);
    w.Key("unreachable").BeginObject();
    for (const auto& [m, idx] : r.unreachable) {
      w.Key(bpf_probe::ToString(m)).BeginArray();
      for (uint32_t i : idx) w.Uint(i);
      w.EndArray();
    }
    w.EndObject().EndObject();
    w.Key("broken_policies").BeginArray();
    for (const auto& b : r.broken_policies) w.String(b);
    w.EndArray();
    w.Key("tcargs").BeginArray();
    for (const auto& [t, c] : r.tcargs) {
      w.BeginObject().Key("tuple").String(t.ToString()).Key("context");
      WriteTcArgs(w, c);
      w.EndObject();
    }
    w.EndArray();
    w.Key("auth_res").BeginObject().Key("entries").Uint(r.auth_entries);
    w.Key("connections_checked").Bool(r.connections_checked).Key("namespaces").Uint(r.namespaces_checked);
    w.Key("without_connection").BeginArray();
    for (const auto& [t, v] : r.auth_without_connection) {
      w.BeginObject()
          .Key("tuple")
          .String(t.ToString())
          .Key("verdict")
          .String(bpf_probe::ToString(v))
          .EndObject();
    }
    w.EndArray().EndObject();
    if (changes) {
      w.Key("baseline").BeginObject().Key("file").String(baseline_origin).Key("changes").BeginArray();
      for (const auto& c : *changes) {
        w.BeginObject().Key("name").String(c.name).Key("before");
        if (c.before)
          w.Uint(*c.before);
        else
          w.Null();
        w.Key("after");
        if (c.after)
          w.Uint(*c.after);
        else
          w.Null();
        w.Key("text").String(c.ToString()).EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndObject().Newline();
    return out;
  }
  out += "residue in " + r.source + "\n";
  if (!r.inner_maps_found) {
    out += "kmesh_map*: not among the maps (no policy blobs to account for)\n";
  } else {
    out += "kmesh_map*: " + std::to_string(r.blobs) + " blobs, " + std::to_string(r.blobs_reached) +
           " reached by the " + std::to_string(r.policies) + " policies in km_authz_policy, " +
           std::to_string(r.UnreachableBlobs()) + " no policy reaches\n";
    for (const auto& [m, idx] : r.unreachable) {
      std::string e;
      for (size_t i = 0; i < idx.size() && i < limit; ++i) e += (i ? ", " : "") + std::to_string(idx[i]);
      if (idx.size() > limit) e += ", ...";
      out += std::string("  ") + bpf_probe::ToString(m) + ": " + std::to_string(idx.size()) + " (" + e + ")" +
             (m == bpf_probe::InnerMap::k64 ? "    # Kmesh leaks a blob per address of a removed policy "
                                              "(deserialization_to_bpf_map.c:1190-1226) [D9]"
                                            : "") +
             "\n";
    }
  }
  for (const auto& b : r.broken_policies) out += "  broken policy: " + b + "\n";
  out += "km_tcargs: " + std::to_string(r.tcargs.size()) + " entries" +
         (r.tcargs.empty() ? std::string("\n")
                           : "    # a tail-call context each tuple no policy matched (or deferred) leaves; "
                             "nothing deletes it (authz.h:586) [D4]\n");
  for (size_t i = 0; i < r.tcargs.size() && i < limit; ++i) {
    out += "  " + r.tcargs[i].first.ToString() + "  " + r.tcargs[i].second.ToString() + "\n";
  }
  if (r.tcargs.size() > limit) out += "  ... " + std::to_string(r.tcargs.size() - limit) + " more\n";
  out += "km_auth_res: " + std::to_string(r.auth_entries) + " entries";
  if (!r.connections_checked) {
    out += " (connections not checked)\n";
  } else {
    out += ", " + std::to_string(r.auth_without_connection.size()) +
           " without a connection (TCP sockets of " + std::to_string(r.namespaces_checked) +
           " network namespaces checked)" +
           (r.auth_without_connection.empty()
                ? std::string("\n")
                : "    # a denied SYN's verdict outlives its connection (authz.h:672; sockops.c cleans only "
                  "established connections that close, 182-194) [D3]\n");
    for (size_t i = 0; i < r.auth_without_connection.size() && i < limit; ++i) {
      out += "  " + r.auth_without_connection[i].first.ToString() + "  " +
             bpf_probe::ToString(r.auth_without_connection[i].second) + "\n";
    }
    if (r.auth_without_connection.size() > limit) {
      out += "  ... " + std::to_string(r.auth_without_connection.size() - limit) + " more\n";
    }
  }
  if (changes) {
    out += "against the baseline " + baseline_origin + ": " +
           (changes->empty() ? std::string("every map back to its count\n")
                             : std::to_string(changes->size()) + " map(s) differ\n");
    for (const auto& c : *changes) out += "  " + c.ToString() + "\n";
  }
  out += r.Clean() && (!changes || changes->empty()) ? "clean\n" : "";
  return out;
}

}  // namespace kmesh::mapdump

namespace kmesh::mapdump {

std::string FormatWatchLine(std::chrono::system_clock::time_point when, const bpf_probe::MapChange& c,
                            net::PortOrder order, bool json) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[96];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  const std::string text = bpf_probe::DescribeChange(c, order);
  if (!json) return std::string(stamp) + " " + text + "\n";
  std::string out;
  bpf_probe::JsonWriter w(&out);
  w.BeginObject().Key("time").String(stamp).Key("map").String(c.map).Key("map_id").Uint(c.map_id);
  w.Key("change").String(c.kind == bpf_probe::MapChange::Kind::kAdded     ? "added"
                         : c.kind == bpf_probe::MapChange::Kind::kRemoved ? "removed"
                                                                          : "changed");
  w.Key("key").HexArray(bpf_probe::ByteView(c.key));
  if (!c.before.empty()) w.Key("before").HexArray(bpf_probe::ByteView(c.before));
  if (!c.after.empty()) w.Key("after").HexArray(bpf_probe::ByteView(c.after));
  w.Key("text").String(text).EndObject().Newline();
  return out;
}

}  // namespace kmesh::mapdump
