// A map as JSON in the spirit of `bpftool -j map dump`: one array of records, each with the raw "key" and
// "value" byte arrays exactly as bpftool prints them, plus
//   "formatted": {"key": ..., "value": ...}  decoded through the map's BTF, when it has BTF;
//   "kmesh": {...}                           Kmesh's meaning, for maps named and laid out like Kmesh's
//                                            (km_auth_res: tuple and verdict; km_wlpolicy; ...).
// Per-CPU maps give "values": [{"cpu": n, "value": [...]}, ...] like bpftool. Records are written as they
// are read: memory stays flat whatever the size of the map.
#pragma once

#include "bpf_probe/dump.h"
#include "bpf_probe/json_writer.h"
#include "bpf_probe/maps.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {

struct JsonDumpOptions {
  bool btf = true;         // add "formatted" when the map has BTF
  bool kmesh_view = true;  // add "kmesh" for Kmesh's maps
  net::PortOrder port_order = net::PortOrder::kHost;
  DumpOptions walk;
};

// Writes the whole array (no trailing newline) to `w`.
DumpStats WriteMapJson(const Map& map, JsonWriter& w, const JsonDumpOptions& opts = {});

}  // namespace kmesh::bpf_probe
