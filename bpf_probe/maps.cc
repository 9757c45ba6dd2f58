#include "bpf_probe/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/prog.h"

namespace kmesh::bpf_probe {
namespace {

bool IsDigits(const std::string& s) {
  return !s.empty() && s.size() <= 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What kind of BPF object an fd is ("bpf-map", "bpf-prog", ...), from its anon inode name.
std::string FdKind(int fd) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[128] = {};
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return "";
  std::string t(target, static_cast<size_t>(n));
  const std::string prefix = "anon_inode:";
  return t.rfind(prefix, 0) == 0 ? t.substr(prefix.size()) : t;
}

std::string KmeshMapsIn(const std::vector<MapInfo>& maps) {
  std::string out;
  for (const auto& m : maps) {
    if (!IsKmeshMapName(m.name)) continue;
    out += (out.empty() ? "" : ", ") + m.name + " (id " + std::to_string(m.id) + ")";
  }
  return out;
}

}  // namespace

std::string MapInfo::TypeName() const {
  const char* n = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return n ? n : "type " + std::to_string(type);
}

std::string MapInfo::NotWalkableReason() const {
  switch (type) {
    case BPF_MAP_TYPE_RINGBUF:
    case BPF_MAP_TYPE_USER_RINGBUF:
      return std::string("a ring buffer holds records, not entries, and reading them consumes them") +
             (name == "km_auth_req" ? " (km_auth_req must never be consumed by anyone but Kmesh's daemon)" : "");
    case BPF_MAP_TYPE_SK_STORAGE:
    case BPF_MAP_TYPE_INODE_STORAGE:
    case BPF_MAP_TYPE_TASK_STORAGE:
      return "its entries live on their sockets, inodes or tasks and are reached only through them: the kernel "
             "refuses to list its keys (ENOTSUPP)";
    case BPF_MAP_TYPE_STRUCT_OPS:
      return "struct_ops maps are not dumped";
    case BPF_MAP_TYPE_QUEUE:
    case BPF_MAP_TYPE_STACK:
      return "a queue or stack has no keys; only its head can be peeked";
    case BPF_MAP_TYPE_BLOOM_FILTER:
      return "a bloom filter cannot be listed";
    default:
      return "";
  }
}

bool IsKmeshMapName(std::string_view name) {
  return name.substr(0, 3) == "km_" || name.substr(0, 9) == "kmesh_map";
}

bool MapInfo::PerCpu() const {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

std::string MapInfo::Describe() const {
  return (name.empty() ? "(unnamed)" : name) + " (id " + std::to_string(id) + ", " + TypeName() + ", key " +
         std::to_string(key_size) + " B, value " + std::to_string(value_size) + " B, max " +
         std::to_string(max_entries) + ")";
}

MapInfo ReadMapInfo(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) ThrowBpf("read BPF map info", errno, BpfNeeds::kBpf);
  MapInfo m;
  m.id = info.id;
  m.name = info.name;
  m.type = info.type;
  m.key_size = info.key_size;
  m.value_size = info.value_size;
  m.max_entries = info.max_entries;
  m.flags = info.map_flags;
  m.btf_id = info.btf_id;
  m.btf_key_type_id = info.btf_key_type_id;
  m.btf_value_type_id = info.btf_value_type_id;
  return m;
}

Map Map::OpenById(uint32_t id) {
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error("BPF map id " + std::to_string(id) +
                  " does not exist (`bpftool map list` or "
                  "`kmesh-mapdump maps` show the maps present)");
    }
    ThrowBpf("open BPF map id " + std::to_string(id), err, BpfNeeds::kSysAdmin);
  }
  UniqueFd owned(fd);
  MapInfo info = ReadMapInfo(fd);
  return Map(std::move(owned), std::move(info));
}

Map Map::OpenPinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error("no BPF pin at " + path +
                  " (is bpffs mounted there, and is Kmesh running? Inside `ip netns "
                  "exec` /sys is remounted and pins are hidden; use a map id instead)");
    }
    ThrowBpf("open pinned BPF object " + path, err, BpfNeeds::kFile);
  }
  UniqueFd owned(fd);
  const std::string kind = FdKind(fd);
  if (kind != "bpf-map") {
    throw Error("pin " + path + " is a " + (kind.empty() ? "non-map object" : kind) + ", not a BPF map");
  }
  MapInfo info = ReadMapInfo(fd);
  info.pin_path = path;
  return Map(std::move(owned), std::move(info));
}

Map Map::Adopt(UniqueFd fd) {
  MapInfo info = ReadMapInfo(fd.get());
  return Map(std::move(fd), std::move(info));
}

Map Map::Borrow(int fd) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno("duplicate BPF map fd " + std::to_string(fd));
  return Adopt(UniqueFd(copy));
}

size_t Map::LookupValueSize() const {
  if (!info_.PerCpu()) return info_.value_size;
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) ThrowErrno("count possible CPUs for per-CPU map " + info_.name, -cpus);
  return ((info_.value_size + 7) / 8 * 8) * static_cast<size_t>(cpus);
}

std::optional<Bytes> Map::Lookup(ByteView key) const {
  if (key.size != info_.key_size) {
    throw Error("lookup in " + info_.Describe() + ": key is " + std::to_string(key.size) +
                " bytes, the map's is " + std::to_string(info_.key_size));
  }
  Bytes value(LookupValueSize());
  if (bpf_map_lookup_elem(fd(), key.data, value.data()) != 0) {
    if (errno == ENOENT) return std::nullopt;
    ThrowBpf("lookup in " + info_.Describe() + " of key " + HexSpaced(key), errno, BpfNeeds::kBpf);
  }
  return value;
}

void Map::Update(ByteView key, ByteView value) const {
  if (key.size != info_.key_size || value.size != LookupValueSize()) {
    throw Error("update of " + info_.Describe() + ": got key " + std::to_string(key.size) + " B and value " +
                std::to_string(value.size) + " B, expected " + std::to_string(info_.key_size) + " B and " +
                std::to_string(LookupValueSize()) + " B");
  }
  if (bpf_map_update_elem(fd(), key.data, value.data, BPF_ANY) != 0) {
    ThrowBpf("update " + info_.Describe() + " at key " + HexSpaced(key), errno, BpfNeeds::kBpf);
  }
}

bool Map::Delete(ByteView key) const {
  if (key.size != info_.key_size) {
    throw Error("delete in " + info_.Describe() + ": key is " + std::to_string(key.size) +
                " bytes, the map's is " + std::to_string(info_.key_size));
  }
  if (bpf_map_delete_elem(fd(), key.data) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowBpf("delete from " + info_.Describe() + " key " + HexSpaced(key), errno, BpfNeeds::kBpf);
}

uint64_t Map::CountEntries() const {
  uint64_t n = 0;
  DumpMap(*this, [&](ByteView, ByteView) { ++n; });
  return n;
}

std::vector<MapInfo> ListMaps() {
  std::vector<MapInfo> out;
  __u32 id = 0;
  while (true) {
    if (bpf_map_get_next_id(id, &id) != 0) {
      if (errno == ENOENT) break;
      ThrowBpf("list BPF maps (BPF_MAP_GET_NEXT_ID)", errno, BpfNeeds::kSysAdmin);
    }
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // freed since the id was listed
      ThrowBpf("open BPF map id " + std::to_string(id), errno, BpfNeeds::kSysAdmin);
    }
    UniqueFd owned(fd);
    out.push_back(ReadMapInfo(fd));
  }
  return out;
}

std::vector<MapInfo> ListPinnedMaps(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) {
      throw Error("pin folder " + dir +
                  " does not exist (bpffs not mounted there, Kmesh not running, or inside "
                  "`ip netns exec` which hides /sys/fs/bpf)");
    }
    ThrowErrno("open pin folder " + dir);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    names.push_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<MapInfo> out;
  for (const auto& n : names) {
    const std::string path = dir + "/" + n;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // sub-folders, sockets...
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      if (errno == ENOENT) continue;
      ThrowBpf("open pin " + path, errno, BpfNeeds::kFile);
    }
    UniqueFd owned(fd);
    if (FdKind(fd) != "bpf-map") continue;  // pinned programs and links live here too
    MapInfo info = ReadMapInfo(fd);
    info.pin_path = path;
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<MapInfo> ListProgramMaps(uint32_t prog_id, bool follow_tail_calls) {
  std::vector<MapInfo> out;
  std::set<uint32_t> seen_maps;
  std::set<uint32_t> seen_progs;
  std::vector<uint32_t> todo{prog_id};
  while (!todo.empty()) {
    const uint32_t pid = todo.back();
    todo.pop_back();
    if (!seen_progs.insert(pid).second) continue;
    ProgramInfo prog = ReadProgramById(pid);
    for (uint32_t mid : prog.map_ids) {
      if (!seen_maps.insert(mid).second) continue;
      Map m = Map::OpenById(mid);
      out.push_back(m.info());
      if (!follow_tail_calls || m.info().type != BPF_MAP_TYPE_PROG_ARRAY) continue;
      // From user space a PROG_ARRAY slot reads back as the id of the program in it.
      for (uint32_t slot = 0; slot < m.info().max_entries; ++slot) {
        uint32_t target = 0;
        if (bpf_map_lookup_elem(m.fd(), &slot, &target) == 0 && target != 0) todo.push_back(target);
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const MapInfo& a, const MapInfo& b) { return a.id < b.id; });
  return out;
}

MapCatalog MapCatalog::FromPinDir(const std::string& dir) {
  return MapCatalog(ListPinnedMaps(dir), "pin folder " + dir);
}

MapCatalog MapCatalog::FromKernel() { return MapCatalog(ListMaps(), "kernel map names"); }

MapCatalog MapCatalog::FromProgram(uint32_t prog_id) {
  const ProgramInfo p = ReadProgramById(prog_id);
  return MapCatalog(ListProgramMaps(prog_id, true),
                    "program " + std::to_string(prog_id) + " (" + p.name + ") and its tail calls");
}

std::vector<MapInfo> MapCatalog::Named(const std::string& name) const {
  std::vector<MapInfo> out;
  for (const auto& m : maps_) {
    if (m.name == name) out.push_back(m);
  }
  return out;
}

Map MapCatalog::OpenInfo(const MapInfo& info) {
  return info.pin_path.empty() ? Map::OpenById(info.id) : Map::OpenPinned(info.pin_path);
}

Map MapCatalog::Open(const std::string& name) const {
  const std::vector<MapInfo> found = Named(name);
  if (found.size() == 1) return OpenInfo(found[0]);
  if (found.empty()) {
    std::string msg = "map " + name + " not found in " + source_ + "; ";
    const std::string here = KmeshMapsIn(maps_);
    if (!here.empty()) {
      msg += "Kmesh maps found there instead: " + here;
    } else {
      msg += "no km_* maps there at all";
      if (source_ != "kernel map names") {
        // Worth a look elsewhere: pins may be hidden (ip netns exec) while the maps exist.
        try {
          const std::string anywhere = KmeshMapsIn(ListMaps());
          msg += anywhere.empty() ? "; none on this machine either (is Kmesh running?)"
                                  : "; by kernel name this machine has: " + anywhere;
        } catch (const Error&) {
        }
      } else {
        msg += " (is Kmesh running on this node?)";
      }
    }
    throw Error(msg);
  }
  std::string ids;
  for (const auto& m : found) ids += (ids.empty() ? "" : ", ") + std::to_string(m.id);
  throw Error(std::to_string(found.size()) + " maps are named " + name + " in " + source_ + " (ids " + ids +
              "): more than one Kmesh or test datapath is loaded. Pick one by id, by pin folder, or by the "
              "program that uses it (--prog ID, or --netns/--dev of its XDP attachment)");
}

Map OpenMapRef(const std::string& ref, const MapCatalog& catalog) {
  if (ref.empty())
    throw Error("empty map reference (expected a map id, a name like km_auth_res, or a pin path)");
  if (ref[0] == '/') return Map::OpenPinned(ref);
  if (IsDigits(ref)) return Map::OpenById(static_cast<uint32_t>(std::stoul(ref)));
  return catalog.Open(ref);
}

}  // namespace kmesh::bpf_probe
