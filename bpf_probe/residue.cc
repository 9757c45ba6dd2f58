#include "bpf_probe/residue.h"

#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "bpf_probe/dump.h"
#include "base/unique_fd.h"
#include "bpf_probe/json_writer.h"
#include "netns/netns.h"

namespace kmesh::bpf_probe {
namespace {

// ::ffff:a.b.c.d as a.b.c.d: a dual-stack socket and Kmesh's IPv4 key name the same peer.
Tuple Folded(const Tuple& t) { return Tuple{{t.src.ip.Unmapped(), t.src.port}, {t.dst.ip.Unmapped(), t.dst.port}}; }

// Every TCP socket with a peer in the calling thread's network namespace, as local -> remote.
std::vector<Tuple> SocketsHere() {
  std::vector<Tuple> out;
  for (const int family : {AF_INET, AF_INET6}) {
    UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (fd.get() < 0) ThrowErrno("open a NETLINK_SOCK_DIAG socket");
    struct {
      nlmsghdr nlh;
      inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = static_cast<uint8_t>(family);
    msg.req.sdiag_protocol = IPPROTO_TCP;
    // Every state with a peer: not LISTEN, TIME_WAIT or CLOSE (linux/tcp_states.h numbering).
    msg.req.idiag_states = ~((1u << 10) | (1u << 6) | (1u << 7));
    if (send(fd.get(), &msg, sizeof msg, 0) < 0) ThrowErrno("sock_diag: send the TCP dump request");
    std::vector<char> buf(64 * 1024);
    bool done = false;
    while (!done) {
      const ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        ThrowErrno("sock_diag: read the TCP dump");
      }
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
          throw Error("sock_diag: the kernel refused the TCP dump: " + std::string(std::strerror(-e->error)));
        }
        const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
        Tuple t;
        if (m->idiag_family == AF_INET) {
          t.src.ip = IpAddr::V4(reinterpret_cast<const uint8_t*>(m->id.idiag_src));
          t.dst.ip = IpAddr::V4(reinterpret_cast<const uint8_t*>(m->id.idiag_dst));
        } else {
          t.src.ip = IpAddr::V6(reinterpret_cast<const uint8_t*>(m->id.idiag_src));
          t.dst.ip = IpAddr::V6(reinterpret_cast<const uint8_t*>(m->id.idiag_dst));
        }
        t.src.port = ntohs(m->id.idiag_sport);
        t.dst.port = ntohs(m->id.idiag_dport);
        out.push_back(t);
      }
      if (n == 0) break;
    }
  }
  return out;
}

// Every network namespace on the machine that a process or a /run/netns name holds, one path each.
std::vector<std::string> NamespacePaths() {
  std::vector<std::string> out;
  std::set<std::pair<dev_t, ino_t>> seen;
  auto add = [&](const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return;
    if (seen.insert({st.st_dev, st.st_ino}).second) out.push_back(path);
  };
  add("/proc/self/ns/net");
  for (const char* dir : {netns::kNetnsDir, "/proc"}) {
    DIR* d = opendir(dir);
    if (d == nullptr) continue;
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (std::string(dir) == "/proc") {
        if (!std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        add("/proc/" + name + "/ns/net");
      } else {
        add(std::string(dir) + "/" + name);
      }
    }
    closedir(d);
  }
  return out;
}

std::string Count(const std::optional<uint64_t>& n) {
  return n ? std::to_string(*n) : std::string("uncounted");
}

}  // namespace

// --- entry counts ----------------------------------------------------------------------------------------

std::map<std::string, MapEntryCount> CountMapEntries(const MapCatalog& catalog) {
  std::map<std::string, MapEntryCount> out;
  for (const auto& info : catalog.maps()) {
    MapEntryCount c;
    c.name = info.name;
    c.id = info.id;
    c.type = info.TypeName();
    if (info.EntriesWalkable()) c.entries = MapCatalog::OpenInfo(info).CountEntries();
    out[c.name] = c;
  }
  return out;
}

std::string CountChange::ToString() const {
  if (vanished) return name + ": gone (baseline " + Count(before) + " entries)";
  if (appeared) return name + ": new map with " + Count(after) + " entries";
  return name + ": " + Count(before) + " -> " + Count(after) + " entries";
}

std::vector<CountChange> CompareEntryCounts(const std::map<std::string, MapEntryCount>& baseline,
                                            const std::map<std::string, MapEntryCount>& now) {
  std::vector<CountChange> out;
  for (const auto& [name, b] : baseline) {
    auto it = now.find(name);
    if (it == now.end()) {
      out.push_back({name, b.entries, std::nullopt, false, true});
    } else if (it->second.entries != b.entries) {
      out.push_back({name, b.entries, it->second.entries, false, false});
    }
  }
  for (const auto& [name, n] : now) {
    if (baseline.count(name) == 0) out.push_back({name, std::nullopt, n.entries, true, false});
  }
  return out;
}

std::vector<CountChange> CompareEntryCounts(const std::map<std::string, uint64_t>& baseline,
                                            const std::map<std::string, uint64_t>& now) {
  auto wrap = [](const std::map<std::string, uint64_t>& m) {
    std::map<std::string, MapEntryCount> out;
    for (const auto& [name, n] : m) out[name] = MapEntryCount{name, 0, "", n};
    return out;
  };
  return CompareEntryCounts(wrap(baseline), wrap(now));
}

std::string EntryCountsToJson(const std::map<std::string, MapEntryCount>& counts) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("maps").BeginArray();
  for (const auto& [name, c] : counts) {
    w.BeginObject().Key("name").String(c.name).Key("id").Uint(c.id).Key("type").String(c.type).Key("entries");
    if (c.entries)
      w.Uint(*c.entries);
    else
      w.Null();
    w.EndObject();
  }
  w.EndArray().EndObject().Newline();
  return out;
}

std::map<std::string, MapEntryCount> EntryCountsFromJson(const std::string& text, const std::string& origin) {
  std::map<std::string, MapEntryCount> out;
  try {
    const auto j = nlohmann::json::parse(text);
    for (const auto& m : j.at("maps")) {
      MapEntryCount c;
      c.name = m.at("name").get<std::string>();
      c.id = m.value("id", 0u);
      c.type = m.value("type", "");
      if (!m.at("entries").is_null()) c.entries = m.at("entries").get<uint64_t>();
      out[c.name] = c;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not a baseline written by `kmesh-mapdump residue --save-baseline` (" + e.what() +
                ")");
  }
  return out;
}

// --- live connections ----------------------------------------------------------------------------------

ConnectionTable ConnectionTable::Read() {
  ConnectionTable t;
  for (const std::string& path : NamespacePaths()) {
    std::vector<Tuple> sockets;
    try {
      sockets = netns::RunIn(netns::NetnsRef::Resolve(path), [] { return SocketsHere(); });
    } catch (const Error&) {
      continue;  // a process that exited while we walked /proc
    }
    ++t.namespaces_;
    for (const Tuple& s : sockets) t.sockets_.insert(Folded(s));
  }
  return t;
}

ConnectionTable ConnectionTable::Of(std::vector<Tuple> sockets) {
  ConnectionTable t;
  t.namespaces_ = 1;
  for (const Tuple& s : sockets) t.sockets_.insert(Folded(s));
  return t;
}

bool ConnectionTable::Exists(const Tuple& t) const {
  const Tuple f = Folded(t);
  const Tuple reversed{f.dst, f.src};
  return sockets_.count(f) > 0 || sockets_.count(reversed) > 0;
}

// --- structure -----------------------------------------------------------------------------------------

uint64_t ResidueReport::UnreachableBlobs() const {
  uint64_t n = 0;
  for (const auto& [m, v] : unreachable) n += v.size();
  return n;
}

ResidueReport FindResidue(const MapCatalog& catalog, const ConnectionTable* connections) {
  ResidueReport r;
  r.source = catalog.source();
  r.inner_maps_found = !catalog.Named(KM_INNER_MAP_NAME_64).empty();
  if (!catalog.Named(KM_MAP_AUTHZ_POLICY).empty()) {
    PolicyMemorySnapshot mem = PolicyMemorySnapshot::Read(catalog);
    std::set<BlobRef> reached;
    for (const DecodedPolicy& p : DecodePolicies(mem)) {
      ++r.policies;
      reached.insert(p.blobs.begin(), p.blobs.end());
      if (!p.problems.empty()) r.broken_policies.push_back(p.Resource() + ": " + p.problems.front());
    }
    for (const auto& [ref, v] : mem.blobs()) {
      ++r.blobs;
      if (reached.count(ref))
        ++r.blobs_reached;
      else
        r.unreachable[ref.map].push_back(ref.index);
    }
  }
  if (!catalog.Named(KM_MAP_TCARGS).empty()) {
    const Map tcargs = catalog.Open(KM_MAP_TCARGS);
    CheckKmeshLayout(tcargs.info(), KM_MAP_TCARGS);
    DumpMap(tcargs, [&](ByteView k, ByteView v) {
      r.tcargs.emplace_back(*net::DecodeTupleKey(k.data, k.size, PortOrder::kHost), TcArgs::Decode(v));
    });
    std::sort(r.tcargs.begin(), r.tcargs.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  if (!catalog.Named(KM_MAP_AUTH_RES).empty()) {
    const AuthResultMap auth(catalog.Open(KM_MAP_AUTH_RES), PortOrder::kHost);
    for (const AuthEntry& e : auth.Entries()) {
      ++r.auth_entries;
      if (connections != nullptr && !connections->Exists(e.tuple)) {
        r.auth_without_connection.emplace_back(e.tuple, e.verdict);
      }
    }
    r.connections_checked = connections != nullptr;
    if (connections != nullptr) r.namespaces_checked = connections->namespaces();
  }
  return r;
}

}  // namespace kmesh::bpf_probe
