#include "bpf_probe/dump_json.h"

#include <bpf/libbpf.h>

#include <cstring>
#include <memory>
#include <optional>

#include "base/error.h"
#include "bpf_probe/btf_json.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"

namespace kmesh::bpf_probe {
namespace {

enum class KmeshKind { kNone, kAuthRes, kTcArgs, kWlPolicy, kAuthzPolicy, kFrontend };

KmeshKind KindOf(const MapInfo& info) {
  struct {
    const char* name;
    KmeshKind kind;
  } const kKinds[] = {{KM_MAP_AUTH_RES, KmeshKind::kAuthRes}, {KM_MAP_TCARGS, KmeshKind::kTcArgs},
                      {KM_MAP_WLPOLICY, KmeshKind::kWlPolicy}, {KM_MAP_AUTHZ_POLICY, KmeshKind::kAuthzPolicy},
                      {KM_MAP_FRONTEND, KmeshKind::kFrontend}};
  for (const auto& k : kKinds) {
    if (info.name == k.name && KmeshLayoutProblem(info, k.name).empty() && !info.PerCpu()) return k.kind;
  }
  return KmeshKind::kNone;
}

uint32_t U32(ByteView v, size_t off) {
  uint32_t x;
  std::memcpy(&x, v.data + off, 4);
  return x;
}

void WriteKmesh(JsonWriter& w, KmeshKind kind, ByteView key, ByteView value, PortOrder order) {
  w.Key("kmesh").BeginObject();
  switch (kind) {
    case KmeshKind::kAuthRes:
    case KmeshKind::kTcArgs: {
      const Tuple t = *net::DecodeTupleKey(key.data, key.size, order);
      w.Key("tuple").String(t.ToString());
      w.Key("port_order").String(ToString(order));
      if (kind == KmeshKind::kAuthRes) w.Key("verdict").String(ToString(static_cast<Verdict>(U32(value, 0))));
      break;
    }
    case KmeshKind::kWlPolicy: {
      w.Key("workload_id").Uint(U32(key, 0));
      w.Key("policy_ids").BeginArray();
      for (int i = 0; i < KM_MAX_MEMBER_NUM_PER_POLICY; ++i) {
        if (U32(value, i * 4) != 0) w.Uint(U32(value, i * 4));
      }
      w.EndArray();
      break;
    }
    case KmeshKind::kAuthzPolicy: {
      w.Key("policy_id").Uint(U32(key, 0));
      w.Key("scope").String(ToString(static_cast<PolicyScope>(U32(value, 40))));
      w.Key("action").String(ToString(static_cast<PolicyAction>(U32(value, 44))));
      uint64_t rules;
      std::memcpy(&rules, value.data + 48, 8);
      w.Key("n_rules").Uint(rules);
      break;
    }
    case KmeshKind::kFrontend: {
      bool v4 = true;
      for (size_t i = 4; i < 16; ++i) v4 = v4 && key[i] == 0;
      w.Key("ip").String((v4 ? IpAddr::V4(key.data) : IpAddr::V6(key.data)).ToString());
      w.Key("upstream_id").Uint(U32(value, 0));
      break;
    }
    case KmeshKind::kNone:
      break;
  }
  w.EndObject();
}

}  // namespace

DumpStats WriteMapJson(const Map& map, JsonWriter& w, const JsonDumpOptions& opts) {
  const MapInfo& info = map.info();
  std::optional<Btf> btf;
  std::unique_ptr<BtfDecoder> dec;
  if (opts.btf && info.HasBtf() && (info.btf_key_type_id || info.btf_value_type_id)) {
    btf = Btf::LoadFromKernel(info.btf_id);
    dec = std::make_unique<BtfDecoder>(btf->get());
    // A BTF type that does not fit the map would decode garbage: refuse up front.
    if (info.btf_key_type_id && dec->SizeOf(info.btf_key_type_id) != info.key_size) {
      throw Error(info.Describe() + ": BTF key type " + dec->TypeName(info.btf_key_type_id) + " is " +
                  std::to_string(dec->SizeOf(info.btf_key_type_id)) + " bytes, the key is " +
                  std::to_string(info.key_size));
    }
  }
  const KmeshKind kind = opts.kmesh_view ? KindOf(info) : KmeshKind::kNone;
  const bool per_cpu = info.PerCpu();
  const size_t stride = (info.value_size + 7) / 8 * 8;
  const size_t ncpu = per_cpu ? map.LookupValueSize() / stride : 1;

  w.BeginArray();
  const DumpStats stats = DumpMap(
      map,
      [&](ByteView key, ByteView value) {
        w.BeginObject();
        w.Key("key").HexArray(key);
        if (!per_cpu) {
          w.Key("value").HexArray(value);
        } else {
          w.Key("values").BeginArray();
          for (size_t c = 0; c < ncpu; ++c) {
            w.BeginObject().Key("cpu").Uint(c).Key("value").HexArray(value.sub(c * stride, info.value_size));
            w.EndObject();
          }
          w.EndArray();
        }
        if (dec) {
          w.Key("formatted").BeginObject();
          if (info.btf_key_type_id) dec->Write(w.Key("key"), info.btf_key_type_id, key);
          if (info.btf_value_type_id) {
            if (!per_cpu) {
              dec->Write(w.Key("value"), info.btf_value_type_id, value);
            } else {
              w.Key("values").BeginArray();
              for (size_t c = 0; c < ncpu; ++c) {
                w.BeginObject().Key("cpu").Uint(c);
                dec->Write(w.Key("value"), info.btf_value_type_id, value.sub(c * stride, info.value_size));
                w.EndObject();
              }
              w.EndArray();
            }
          }
          w.EndObject();
        }
        if (kind != KmeshKind::kNone) WriteKmesh(w, kind, key, value, opts.port_order);
        w.EndObject();
      },
      opts.walk);
  w.EndArray();
  return stats;
}

}  // namespace kmesh::bpf_probe
