#include "bpf_probe/authz_offload.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/btf_json.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/prog.h"

namespace kmesh::bpf_probe {
namespace {

// The offset of `var` in the DATASEC value type of map `info`, if it has one.
std::optional<uint32_t> VarOffset(const MapInfo& info, const char* var) {
  if (!info.HasBtf() || info.btf_value_type_id == 0) return std::nullopt;
  const Btf btf = Btf::LoadFromKernel(info.btf_id);
  const btf_type* t = btf__type_by_id(btf.get(), info.btf_value_type_id);
  if (t == nullptr || !btf_is_datasec(t)) return std::nullopt;
  const btf_var_secinfo* v = btf_var_secinfos(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
    const btf_type* vt = btf__type_by_id(btf.get(), v->type);
    if (vt != nullptr && std::strcmp(btf__name_by_offset(btf.get(), vt->name_off), var) == 0 &&
        v->size == 4) {
      return v->offset;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<AuthzOffload> ReadAuthzOffload(uint32_t auth_res_map_id) {
  std::optional<AuthzOffload> found;
  uint32_t id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    ProgramInfo p;
    try {
      p = ReadProgramById(id);
    } catch (const Error&) {
      continue;  // unloaded while we walked
    }
    if (p.name != "xdp_authz") continue;
    if (std::find(p.map_ids.begin(), p.map_ids.end(), auth_res_map_id) == p.map_ids.end()) continue;
    for (uint32_t map_id : p.map_ids) {
      std::optional<Map> m;
      try {
        m.emplace(Map::OpenById(map_id));
      } catch (const Error&) {
        continue;
      }
      const MapInfo& info = m->info();
      if (info.type != BPF_MAP_TYPE_ARRAY) continue;
      const auto off = VarOffset(info, "authz_offload");
      if (!off) continue;
      const uint32_t key = 0;
      const auto v = m->Lookup(ByteView(reinterpret_cast<const uint8_t*>(&key), 4));
      if (!v || v->size() < *off + 4) continue;
      AuthzOffload a;
      std::memcpy(&a.value, v->data() + *off, 4);
      a.prog_id = p.id;
      a.map_id = info.id;
      a.map_name = info.name;
      if (found && found->value != a.value) {
        throw Error("two xdp_authz programs use km_auth_res (map id " + std::to_string(auth_res_map_id) +
                    ") with different authz_offload: program " + std::to_string(found->prog_id) + " has " +
                    std::to_string(found->value) + ", program " + std::to_string(a.prog_id) + " has " +
                    std::to_string(a.value));
      }
      found = a;
    }
  }
  return found;
}

}  // namespace kmesh::bpf_probe
