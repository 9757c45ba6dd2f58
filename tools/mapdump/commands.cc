#include "tools/mapdump/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <cerrno>
#include <cstring>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/dump_json.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/json_writer.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/map_watch.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/residue.h"
#include "bpf_probe/xdp.h"
#include "bpf_probe/xdp_explain.h"
#include "netns/netns.h"

namespace kmesh::mapdump {
namespace {

using namespace bpf_probe;
using namespace kmesh::net;

struct UsageError : Error {
  using Error::Error;
};

// Kmesh's maps that `maps` reports on (and says are missing).
const char* const kKmeshMaps[] = {KM_MAP_AUTH_RES,  KM_MAP_AUTH_REQ, KM_MAP_AUTHZ_POLICY, KM_MAP_WLPOLICY,
                                  KM_MAP_FRONTEND,  KM_MAP_TCARGS,   KM_MAP_XDP_TAILCALL};

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("write output");
    }
    off += static_cast<size_t>(n);
  }
}

uint64_t ParseNumber(const std::string& flag, const std::string& v, uint64_t max) {
  if (v.empty() || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) || v.size() > 19 ||
      std::stoull(v) > max) {
    throw UsageError(flag + " \"" + v + "\": expected a number from 0 to " + std::to_string(max));
  }
  return std::stoull(v);
}

IpAddr ParseIp(const std::string& flag, const std::string& v) {
  // A bracketed IPv6 address ("[fd00::1]", as in a tuple) is accepted too.
  const bool bracketed = v.size() >= 2 && v.front() == '[' && v.back() == ']';
  const auto ip = net::IpAddr::Parse(bracketed ? v.substr(1, v.size() - 2) : v);
  if (!ip) throw UsageError(flag + " \"" + v + "\": not an IPv4 or IPv6 address");
  return *ip;
}

bool IsDir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

netns::NetnsRef NamespaceOf(const Options& o) {
  if (o.pid) return netns::NetnsRef::OfPid(*o.pid);
  return netns::NetnsRef::Resolve(o.netns);
}

// Where the maps come from, by the options (see Usage()).
MapCatalog Catalog(const Options& o, int err_fd) {
  if (o.prog) return MapCatalog::FromProgram(*o.prog);
  if (!o.netns.empty() || o.pid) {
    if (o.dev.empty()) throw UsageError("--netns/--pid select maps only together with --dev IFACE (the interface "
                                        "whose XDP program's maps to read)");
    const netns::NetnsRef ns = NamespaceOf(o);
    const XdpAttachment a = QueryXdp(ns, o.dev);
    if (!a.attached()) {
      throw Error("no XDP program is attached to " + o.dev + " in " + ns.path() +
                  " (Kmesh attaches xdp_authz only to enrolled pods, in dual-engine mode)");
    }
    return MapCatalog::FromProgram(a.programs.front().prog.id);
  }
  if (o.by_name) return MapCatalog::FromKernel();
  const std::string dir = o.pin_dir.empty() ? KM_PIN_DIR : o.pin_dir;
  if (o.pin_dir_given || IsDir(dir)) {
    MapCatalog pins = MapCatalog::FromPinDir(dir);
    if (o.pin_dir_given || !pins.maps().empty()) return pins;
  }
  WriteAll(err_fd, "kmesh-mapdump: no pins under " + dir + "; finding maps by kernel name\n");
  return MapCatalog::FromKernel();
}

int CmdMaps(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  const bool kernel = cat.source() == "kernel map names";
  std::vector<MapRow> rows;
  std::vector<std::string> missing;
  for (const char* name : kKmeshMaps) {
    if (cat.Named(name).empty()) missing.push_back(name);
  }
  for (const auto& info : cat.maps()) {
    // From the kernel, only Kmesh's maps (km_*, kmesh_map*): the machine has many others.
    if (kernel && !IsKmeshMapName(info.name)) continue;
    MapRow r{info, std::nullopt, KmeshLayoutProblem(info, info.name)};
    try {
      r.entries = MapCatalog::OpenInfo(info).CountEntries();
    } catch (const Error&) {
      // Ring buffers and the like have nothing to count: shown as "-".
    }
    rows.push_back(std::move(r));
  }
  WriteAll(out, FormatMaps(cat.source(), rows, missing, o.json));
  return kExitOk;
}

int CmdAuth(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  const AuthResultMap auth(cat.Open(KM_MAP_AUTH_RES), o.port_order);
  const std::vector<AuthEntry> entries = auth.Entries();
  WriteAll(out, FormatAuth(entries, o.filter, o.port_order, o.json));
  if (!o.json) WriteAll(err, AuthSummary(entries, o.filter, o.port_order) + "\n");
  return kExitOk;
}

int CmdPolicies(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  std::map<uint32_t, std::string> names;
  for (const auto& n : o.names) {
    const size_t slash = n.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == n.size() || n.find('/', slash + 1) != std::string::npos) {
      throw UsageError("--name \"" + n + "\": expected NAMESPACE/NAME, like default/deny-by-ip");
    }
    names[PolicyId(n.substr(0, slash), n.substr(slash + 1))] = n;
  }
  const WorkloadPolicyMap wl(cat.Open(KM_MAP_WLPOLICY));
  const AuthzPolicyMap policies(cat.Open(KM_MAP_AUTHZ_POLICY));
  // In full when the policy blobs are there (Kmesh's deserializer maps) and the values are Kmesh's layout.
  std::optional<std::vector<DecodedPolicy>> details;
  if (policies.value_layout_problem().empty() && !cat.Named(KM_INNER_MAP_NAME_64).empty()) {
    LivePolicyMemory memory(cat);
    details = DecodePolicies(memory);
  } else if (!o.json) {
    WriteAll(err, "kmesh-mapdump: " +
                      (policies.value_layout_problem().empty()
                           ? std::string("no kmesh_map64 among the maps (") + cat.source() +
                                 "): the policies' rules live there, only ids and counts are shown"
                           : policies.value_layout_problem()) +
                      "\n");
  }
  WriteAll(out, FormatPolicies(wl.Entries(), policies.Entries(), names, o.json, details ? &*details : nullptr));
  return kExitOk;
}

// "10.0.0.1:40001", "10.0.0.1", "[fd00::1]:40001", "[fd00::1]", "fd00::1": the address and the port, if any.
std::pair<IpAddr, std::optional<uint16_t>> ParseEndpoint(const std::string& what, const std::string& v) {
  std::string host = v;
  std::optional<uint16_t> port;
  const size_t colon = v.rfind(':');
  if (!v.empty() && v[0] == '[') {
    const size_t close = v.find(']');
    if (close == std::string::npos) throw UsageError(what + " \"" + v + "\": no closing ]");
    host = v.substr(1, close - 1);
    if (close + 1 < v.size()) {
      if (v[close + 1] != ':') throw UsageError(what + " \"" + v + "\": expected :PORT after ]");
      port = static_cast<uint16_t>(ParseNumber(what + " port", v.substr(close + 2), 65535));
    }
  } else if (colon != std::string::npos && v.find(':') == colon) {  // one colon: IPv4:PORT
    host = v.substr(0, colon);
    port = static_cast<uint16_t>(ParseNumber(what + " port", v.substr(colon + 1), 65535));
  }
  return {ParseIp(what, host), port};
}

int CmdExplain(const Options& o, int out, int err) {
  if (o.args.size() != 2) {
    throw UsageError("explain takes SRC[:PORT] DST:PORT (the client and the server pod), e.g. explain "
                     "10.244.1.5:40001 10.244.2.7:8080");
  }
  if (o.port_order != PortOrder::kHost) {
    throw UsageError("explain models Kmesh at ec501a98 (host-order ports in tuple keys); --port-order network "
                     "(Kmesh v1.2.0 and earlier) is not modelled");
  }
  const auto [src, sport] = ParseEndpoint("SRC", o.args[0]);
  const auto [dst, dport] = ParseEndpoint("DST", o.args[1]);
  if (!dport) throw UsageError("DST \"" + o.args[1] + "\": needs a port (the server's, e.g. 10.244.2.7:8080)");
  if (src.family() != dst.family()) {
    throw UsageError("SRC and DST mix IPv4 and IPv6: an IPv4 client of a dual-stack server is seen as "
                     "::ffff:a.b.c.d (give both in that form)");
  }
  const Tuple t{{src, sport.value_or(0)}, {dst, *dport}};
  LiveXdpMaps maps(Catalog(o, err));
  const XdpExplanation e = ExplainXdp(t, maps, sport.has_value());
  std::vector<std::pair<Tuple, uint32_t>> cached;
  if (!sport) cached = maps.AuthResultsFor(src, dst, *dport);
  WriteAll(out, o.json ? FormatExplainJson(e, sport.has_value(), cached)
                       : FormatExplainText(e, sport.has_value(), cached));
  return kExitOk;
}

int CmdResidue(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  std::optional<std::vector<CountChange>> changes;
  if (!o.baseline.empty()) {
    std::ifstream in(o.baseline);
    if (!in) throw UsageError("--baseline " + o.baseline + ": cannot read it (write one with --save-baseline)");
    std::stringstream ss;
    ss << in.rdbuf();
    changes = CompareEntryCounts(EntryCountsFromJson(ss.str(), o.baseline), CountMapEntries(cat));
  }
  if (!o.save_baseline.empty()) {
    std::ofstream f(o.save_baseline);
    f << EntryCountsToJson(CountMapEntries(cat));
    if (!f) ThrowErrno("write the baseline " + o.save_baseline);
    if (!o.json) WriteAll(err, "kmesh-mapdump: entry counts of " + cat.source() + " saved to " + o.save_baseline + "\n");
  }
  std::optional<ConnectionTable> conns;
  if (o.connections) conns = ConnectionTable::Read();
  const ResidueReport r = FindResidue(cat, conns ? &*conns : nullptr);
  WriteAll(out, FormatResidue(r, changes ? &*changes : nullptr, o.baseline, o.limit, o.json));
  return kExitOk;
}

std::atomic<bool> g_stop{false};

int CmdWatch(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  std::vector<Map> maps;
  for (const auto& name : o.watch_maps.empty() ? std::vector<std::string>{KM_MAP_AUTH_RES} : o.watch_maps) {
    maps.push_back(OpenMapRef(name, cat));
  }
  MapWatcher watcher(std::move(maps));
  const auto interval = o.interval_ms ? std::chrono::milliseconds(*o.interval_ms) : defaults::MapWatchInterval();
  std::string what;
  for (size_t i = 0; i < watcher.maps().size(); ++i) {
    what += (i ? ", " : "") + watcher.maps()[i].info().name + " (id " + std::to_string(watcher.maps()[i].info().id) +
            ", " + std::to_string(watcher.EntriesOf(i)) + " entries now)";
  }
  WriteAll(err, "kmesh-mapdump: watching " + what + " every " + std::to_string(interval.count()) +
                    " ms, read-only; Ctrl-C to stop\n");
  const auto start = std::chrono::steady_clock::now();
  uint64_t printed = 0;
  while (!g_stop.load()) {
    if (o.duration_ms && std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(*o.duration_ms)) break;
    std::this_thread::sleep_for(interval);
    const auto now = std::chrono::system_clock::now();
    for (const MapChange& c : watcher.Poll()) {
      WriteAll(out, FormatWatchLine(now, c, o.port_order, o.json));
      if (o.count && ++printed >= *o.count) return kExitOk;
    }
  }
  return kExitOk;
}

int CmdFrontends(const Options& o, int out, int err) {
  const MapCatalog cat = Catalog(o, err);
  WriteAll(out, FormatFrontends(FrontendMap(cat.Open(KM_MAP_FRONTEND)).Entries(), o.json));
  return kExitOk;
}

int CmdXdp(const Options& o, int out, int) {
  if (o.netns.empty() && !o.pid) throw UsageError("xdp needs --netns NAME|PATH or --pid PID");
  const netns::NetnsRef ns = NamespaceOf(o);
  std::vector<XdpAttachment> all;
  if (o.dev.empty()) all = QueryXdpAll(ns);
  else all.push_back(QueryXdp(ns, o.dev));
  WriteAll(out, FormatXdp(ns.path(), all, o.json));
  return kExitOk;
}

// dump's answer when there is no dump to give: like `bpftool -j`, one JSON object whose "error" says why, plus
// the map when it was found, so a script reading stdout always gets valid JSON. The message also goes to
// stderr for a person.
int DumpError(JsonWriter& w, int err, const std::string& why, const MapInfo* info) {
  w.Discard();
  w.BeginObject().Key("error").String(why);
  if (info) {
    w.Key("map").BeginObject();
    w.Key("id").Uint(info->id).Key("name").String(info->name).Key("type").String(info->TypeName());
    w.Key("bytes_key").Uint(info->key_size).Key("bytes_value").Uint(info->value_size);
    w.Key("max_entries").Uint(info->max_entries);
    if (!info->pin_path.empty()) w.Key("pinned").String(info->pin_path);
    w.EndObject();
    w.Key("entries_walkable").Bool(info->EntriesWalkable());
  }
  w.EndObject().Newline();
  w.Flush();
  WriteAll(err, "kmesh-mapdump: " + why + "\n");
  return kExitError;
}

int CmdDump(const Options& o, int out, int err) {
  if (o.args.size() != 1) throw UsageError("dump takes one map: a name (km_auth_res), an id (12) or a pin path");
  const std::string& ref = o.args[0];
  JsonWriter w(out);
  std::optional<Map> map;
  try {
    // Names need a catalog; ids and pin paths do not (and must not print the "no pins" note).
    const bool by_ref =
        ref[0] == '/' || std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; });
    map.emplace(!by_ref        ? Catalog(o, err).Open(ref)
                : ref[0] == '/' ? Map::OpenPinned(ref)
                                : Map::OpenById(static_cast<uint32_t>(ParseNumber("map id", ref, UINT32_MAX))));
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    return DumpError(w, err, e.what(), nullptr);
  }
  const MapInfo& info = map->info();
  if (!info.EntriesWalkable()) {
    return DumpError(w, err, "cannot dump " + info.Describe() + ": " + info.NotWalkableReason(), &info);
  }
  JsonDumpOptions jo;
  jo.btf = o.btf;
  jo.port_order = o.port_order;
  DumpStats stats;
  try {
    stats = WriteMapJson(*map, w, jo);
  } catch (const Error& e) {
    // Nothing printed yet: the answer is the error. Records already out (a map larger than the writer's
    // buffer): the document cannot be completed, and stderr says so.
    if (!w.flushed()) return DumpError(w, err, e.what(), &info);
    w.Discard();
    WriteAll(err, std::string("kmesh-mapdump: ") + e.what() + "; the JSON printed so far is cut short\n");
    return kExitError;
  }
  w.Newline();
  w.Flush();
  if (!stats.complete) {
    WriteAll(err, "kmesh-mapdump: dump of " + info.Describe() + " is incomplete: " + stats.Describe() + "\n");
    return kExitError;
  }
  return kExitOk;
}

}  // namespace

void RequestStop() { g_stop.store(true); }

Options ParseArgs(const std::vector<std::string>& argv) {
  Options o;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= argv.size()) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") o.help = true;
    else if (a == "--json") o.json = true;
    else if (a == "--no-btf") o.btf = false;
    else if (a == "--by-name") o.by_name = true;
    else if (a == "--pin-dir") o.pin_dir = value(), o.pin_dir_given = true;
    else if (a == "--prog") o.prog = static_cast<uint32_t>(ParseNumber(a, value(), UINT32_MAX));
    else if (a == "--netns") o.netns = value();
    else if (a == "--pid") o.pid = static_cast<int>(ParseNumber(a, value(), INT32_MAX));
    else if (a == "--dev") o.dev = value();
    else if (a == "--port-order") {
      try {
        o.port_order = *ParsePortOrder(value());
      } catch (const Error& e) {
        throw UsageError(e.what());
      }
    } else if (a == "--ip") o.filter.ip = ParseIp(a, value());
    else if (a == "--src") o.filter.src = ParseIp(a, value());
    else if (a == "--dst") o.filter.dst = ParseIp(a, value());
    else if (a == "--port") o.filter.port = static_cast<uint16_t>(ParseNumber(a, value(), 65535));
    else if (a == "--dport") o.filter.dport = static_cast<uint16_t>(ParseNumber(a, value(), 65535));
    else if (a == "--verdict") {
      try {
        o.filter.verdict = ParseVerdict(value());
      } catch (const Error& e) {
        throw UsageError(std::string("--verdict: ") + e.what());
      }
    } else if (a == "--name") o.names.push_back(value());
    else if (a == "--baseline") o.baseline = value();
    else if (a == "--save-baseline") o.save_baseline = value();
    else if (a == "--no-connections") o.connections = false;
    else if (a == "--limit") o.limit = static_cast<size_t>(ParseNumber(a, value(), 1000000));
    else if (a == "--map") o.watch_maps.push_back(value());
    else if (a == "--count") o.count = ParseNumber(a, value(), UINT32_MAX);
    else if (a == "--duration") o.duration_ms = ParseNumber(a, value(), 24ull * 3600 * 1000);
    else if (a == "--interval") {
      o.interval_ms = ParseNumber(a, value(), 60000);
      if (*o.interval_ms == 0) throw UsageError("--interval 0: give at least 1 ms between reads");
    }
    else if (a.size() > 1 && a[0] == '-') throw UsageError("unknown option " + a + " (see --help)");
    else if (o.command.empty()) o.command = a;
    else o.args.push_back(a);
  }
  if (!o.netns.empty() && o.pid) throw UsageError("give --netns or --pid, not both");
  return o;
}

int Run(const std::vector<std::string>& argv, int out, int err) {
  try {
    const Options o = ParseArgs(argv);
    if (o.help || o.command.empty()) {
      WriteAll(o.help ? out : err, Usage());
      return o.help ? kExitOk : kExitUsage;
    }
    if (o.command != "dump" && o.command != "explain" && !o.args.empty()) {
      throw UsageError(o.command + " takes no positional arguments (got \"" + o.args[0] + "\")");
    }
    if (o.command == "maps") return CmdMaps(o, out, err);
    if (o.command == "auth") return CmdAuth(o, out, err);
    if (o.command == "policies") return CmdPolicies(o, out, err);
    if (o.command == "frontends") return CmdFrontends(o, out, err);
    if (o.command == "xdp") return CmdXdp(o, out, err);
    if (o.command == "dump") return CmdDump(o, out, err);
    if (o.command == "explain") return CmdExplain(o, out, err);
    if (o.command == "residue") return CmdResidue(o, out, err);
    if (o.command == "watch") return CmdWatch(o, out, err);
    throw UsageError("unknown command \"" + o.command +
                     "\" (commands: maps, auth, policies, explain, residue, watch, frontends, xdp, dump)");
  } catch (const UsageError& e) {
    WriteAll(err, std::string("kmesh-mapdump: ") + e.what() + "\n");
    return kExitUsage;
  } catch (const Error& e) {
    WriteAll(err, std::string("kmesh-mapdump: ") + e.what() + "\n");
    return kExitError;
  }
}

}  // namespace kmesh::mapdump
