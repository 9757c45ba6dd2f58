// Finding and opening BPF maps: by kernel id, by kernel name, by pin path or pin folder, and (the precise
// way) by program: the maps a program uses (bpf_prog_info.map_ids), following its tail calls.
//
// BPF objects are global to the machine, so a map found here is the same map whichever network
// namespace the program that uses it is attached in. Pins need a mounted bpffs: `ip netns exec`
// remounts /sys, hiding /sys/fs/bpf, so inside one use ids (or a program's maps) instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "bpf_probe/bytes.h"

namespace kmesh::bpf_probe {

// What the kernel says about one map (struct bpf_map_info), plus where we found it.
struct MapInfo {
  uint32_t id = 0;
  std::string name;   // kernel name, at most 15 characters
  uint32_t type = 0;  // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t flags = 0;   // BPF_F_NO_PREALLOC = 0x1, ...
  uint32_t btf_id = 0;  // 0 = no BTF
  uint32_t btf_key_type_id = 0;
  uint32_t btf_value_type_id = 0;
  std::string pin_path;  // the pin it was opened through, else ""

  // bpftool's name of the type: "hash", "array", "prog_array", "ringbuf", ...
  std::string TypeName() const;
  bool PerCpu() const;
  bool HasBtf() const { return btf_id != 0; }
  // Whether its entries can be walked from userspace (get_next_key): not ring buffers (records, not
  // entries), socket/inode/task storage (reached only through their owner: walking km_sockstorage fails
  // ENOTSUPP), struct_ops, queues, stacks, bloom filters. Prog arrays walk; their values read back as
  // program ids.
  bool EntriesWalkable() const { return NotWalkableReason().empty(); }
  // Why its entries cannot be walked, for a person ("a ring buffer holds records, not entries: ..."), or ""
  // when they can.
  std::string NotWalkableReason() const;
  // "km_auth_res (id 12, hash, key 36 B, value 4 B, max 8192)" for messages.
  std::string Describe() const;
};

// Kmesh's maps are named km_* and kmesh_map64/192/296/1600 (the deserializer's inner maps for policy blobs).
bool IsKmeshMapName(std::string_view name);

// An open map: the fd (closed on destruction) and its info.
class Map {
 public:
  // Needs CAP_SYS_ADMIN. Throws kmesh::Error naming the id (and the capability on EPERM).
  static Map OpenById(uint32_t id);
  // A pinned map ("/sys/fs/bpf/bpf_kmesh_workload/map/km_auth_res"). Throws when the pin is missing or
  // is not a map.
  static Map OpenPinned(const std::string& path);
  // Takes ownership of `fd`.
  static Map Adopt(UniqueFd fd);
  // Duplicates `fd` (the caller keeps theirs), e.g. bpf_map__fd() of a loaded libbpf object.
  static Map Borrow(int fd);

  int fd() const { return fd_.get(); }
  const MapInfo& info() const { return info_; }

  // Bytes bpf_map_lookup_elem() fills: value_size, or for per-CPU maps round_up(value_size, 8) for each
  // possible CPU.
  size_t LookupValueSize() const;
  // The value under `key`, or nullopt when absent. Throws when `key` is not key_size bytes (expected vs
  // found) or the lookup fails otherwise.
  std::optional<Bytes> Lookup(ByteView key) const;
  // Inserts or replaces. Throws naming the map and the key on failure.
  void Update(ByteView key, ByteView value) const;
  // Removes `key`; false when it was absent.
  bool Delete(ByteView key) const;
  // Number of keys present now (walks the map; for arrays, slots that answer a lookup).
  uint64_t CountEntries() const;

 private:
  Map(UniqueFd fd, MapInfo info) : fd_(std::move(fd)), info_(std::move(info)) {}
  UniqueFd fd_;
  MapInfo info_;
};

// Info of the map behind `fd`.
MapInfo ReadMapInfo(int fd);

// Every map on the machine (needs CAP_SYS_ADMIN). Maps that vanish while listing are skipped.
std::vector<MapInfo> ListMaps();
// Maps pinned directly in `dir` (not recursive), each with pin_path set. Throws when `dir` is missing.
std::vector<MapInfo> ListPinnedMaps(const std::string& dir);
// Maps used by program `prog_id`; with `follow_tail_calls`, also those of every program reachable
// through its PROG_ARRAY maps (Kmesh's xdp_authz reaches km_authz_policy only via a tail call).
std::vector<MapInfo> ListProgramMaps(uint32_t prog_id, bool follow_tail_calls = true);

// A set of maps from one source, with lookups by name whose errors say what was found instead.
class MapCatalog {
 public:
  // Maps pinned in `dir` (default: Kmesh's pin folder).
  static MapCatalog FromPinDir(const std::string& dir);
  // Every map on the machine, by kernel name.
  static MapCatalog FromKernel();
  // The maps of a program and its tail calls.
  static MapCatalog FromProgram(uint32_t prog_id);

  const std::vector<MapInfo>& maps() const { return maps_; }
  // Where the maps came from: "pin folder /sys/fs/bpf/...", "kernel map names", "program 42 (xdp_authz)".
  const std::string& source() const { return source_; }

  // Every map named `name` (several when more than one Kmesh, or test run, is alive).
  std::vector<MapInfo> Named(const std::string& name) const;
  // The one map named `name`, opened. Throws kmesh::Error when none is found (listing the km_* maps that
  // were found instead) or when several are (listing their ids, suggesting a program or an id).
  Map Open(const std::string& name) const;
  // Opens an entry of maps() (through its pin when it has one, else by id).
  static Map OpenInfo(const MapInfo& info);

 private:
  MapCatalog(std::vector<MapInfo> maps, std::string source)
      : maps_(std::move(maps)), source_(std::move(source)) {}
  std::vector<MapInfo> maps_;
  std::string source_;
};

// `ref` is a map id ("12") or a kernel name ("km_auth_res"): opens it by id, or by name from `catalog`.
Map OpenMapRef(const std::string& ref, const MapCatalog& catalog);

}  // namespace kmesh::bpf_probe
