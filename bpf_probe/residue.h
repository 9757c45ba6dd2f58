// What Kmesh's maps hold that no live policy or connection accounts for, two ways:
//
//   - entry counts against a baseline (CountMapEntries, CompareEntryCounts): what the suites check after a
//     case ("every map back to its baseline", e2e/authz CheckResidue, e2e/lab ResidueAgainst) and what
//     `kmesh-mapdump residue --baseline FILE` prints;
//   - the maps' own structure (FindResidue), no baseline needed: kmesh_map* blobs no km_authz_policy entry
//     reaches (the deserializer's leak on delete, D9, deserialization_to_bpf_map.c:1190-1226), km_tcargs
//     entries (every tuple no policy matched or that was deferred leaves one, D4, authz.h:577-586,
//     680-687), and km_auth_res entries whose connection no longer exists in any network namespace (a
//     denied SYN's verdict is never cleaned, D3, authz.h:672; sockops cleans only established connections
//     that close, sockops.c:182-194).
//
// In dual-engine (workload) mode Kmesh's deserializer writes only Authorization into kmesh_map*, so a blob
// no policy reaches is residue; in kernel-native mode the same maps hold listeners and clusters too.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/verdict.h"
#include "net/tuple.h"
#include "bpf_probe/xdp_explain.h"

namespace kmesh::bpf_probe {

// --- entry counts ----------------------------------------------------------------------------------------

struct MapEntryCount {
  std::string name;
  uint32_t id = 0;
  std::string type;  // bpftool's type name
  // nullopt for maps without entries to walk: ring buffers, socket/inode/task/cgroup storage, queues...
  std::optional<uint64_t> entries;
};

// Every map of the catalog, by name, with its entry count now.
std::map<std::string, MapEntryCount> CountMapEntries(const MapCatalog& catalog);

struct CountChange {
  std::string name;
  std::optional<uint64_t> before, after;  // nullopt: the map was absent (or has nothing to count)
  bool appeared = false, vanished = false;
  // "km_wlpolicy: 0 -> 1 entries", "km_x: gone (baseline 3 entries)", "km_y: new map with 2 entries".
  std::string ToString() const;
};

// The maps whose count differs from the baseline, appeared or vanished; empty when all are back.
std::vector<CountChange> CompareEntryCounts(const std::map<std::string, MapEntryCount>& baseline,
                                            const std::map<std::string, MapEntryCount>& now);
std::vector<CountChange> CompareEntryCounts(const std::map<std::string, uint64_t>& baseline,
                                            const std::map<std::string, uint64_t>& now);

// Counts as JSON and back (`residue --save-baseline FILE`, then `residue --baseline FILE`).
std::string EntryCountsToJson(const std::map<std::string, MapEntryCount>& counts);
// Throws kmesh::Error naming `origin` and what is wrong.
std::map<std::string, MapEntryCount> EntryCountsFromJson(const std::string& text, const std::string& origin);

// --- live connections ----------------------------------------------------------------------------------

// The TCP connections that exist on the machine now: every socket with a peer (not listening, not
// TIME_WAIT/CLOSE) of every network namespace a process or a /run/netns name holds, read with sock_diag
// (NETLINK_SOCK_DIAG) inside each namespace. IPv4-mapped IPv6 addresses are folded to IPv4.
class ConnectionTable {
 public:
  static ConnectionTable Read();
  // Tests: a table of given connections (local -> remote).
  static ConnectionTable Of(std::vector<net::Tuple> sockets);
  // Whether a socket of this connection exists, at either end (client or server side).
  bool Exists(const net::Tuple& t) const;
  size_t namespaces() const { return namespaces_; }
  size_t sockets() const { return sockets_.size(); }

 private:
  std::set<net::Tuple> sockets_;  // local -> remote, folded
  size_t namespaces_ = 0;
};

// --- structure -----------------------------------------------------------------------------------------

struct ResidueReport {
  std::string source;  // where the maps came from
  // kmesh_map*: every blob, those some policy reaches, and those none does, by inner map.
  uint64_t blobs = 0, blobs_reached = 0;
  size_t policies = 0;
  std::map<InnerMap, std::vector<uint32_t>> unreachable;  // sorted indexes
  std::vector<std::string> broken_policies;               // "ns/name: <first problem>"
  bool inner_maps_found = true;
  // km_tcargs: every entry.
  std::vector<std::pair<net::Tuple, TcArgs>> tcargs;
  // km_auth_res: every entry, and those whose connection no longer exists.
  uint64_t auth_entries = 0;
  std::vector<std::pair<net::Tuple, Verdict>> auth_without_connection;
  bool connections_checked = false;
  size_t namespaces_checked = 0;

  uint64_t UnreachableBlobs() const;
  bool Clean() const { return UnreachableBlobs() == 0 && tcargs.empty() && auth_without_connection.empty(); }
};

// Reads the catalog's km_authz_policy, kmesh_map*, km_tcargs and km_auth_res once. `connections`: the
// live connections to check km_auth_res against (nullptr: not checked).
ResidueReport FindResidue(const MapCatalog& catalog, const ConnectionTable* connections);

}  // namespace kmesh::bpf_probe
