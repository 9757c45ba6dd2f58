#include "bpf_probe/map_watch.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/xdp_explain.h"

namespace kmesh::bpf_probe {
namespace {

uint32_t U32(const Bytes& b, size_t off) { return ReadHost<uint32_t>(b, off); }

std::string Hex(const Bytes& b) {
  return HexBytes(b.data(), std::min<size_t>(b.size(), 32)) +
         (b.size() > 32 ? "...(" + std::to_string(b.size()) + " bytes)" : "");
}

// The value of one entry in words, for the map it is in; "" when the map is not one of Kmesh's.
std::string Value(const MapChange& c, const Bytes& v, PortOrder) {
  if (v.empty()) return "";
  if (c.map == KM_MAP_AUTH_RES && v.size() == 4) return ToString(static_cast<Verdict>(U32(v, 0)));
  if (c.map == KM_MAP_TCARGS && v.size() == KM_TCARGS_VALUE_SIZE) return TcArgs::Decode(v).ToString();
  if (c.map == KM_MAP_WLPOLICY && v.size() == 16) {
    std::string s;
    for (int i = 0; i < 4; ++i) s += (i ? ", " : "") + std::to_string(U32(v, 4 * i));
    return "[" + s + "]";
  }
  if (c.map == KM_MAP_FRONTEND && v.size() == 4) return "upstream " + std::to_string(U32(v, 0));
  if (c.map == KM_MAP_AUTHZ_POLICY && v.size() == KM_AUTHZ_POLICY_VALUE_SIZE) {
    uint64_t n = 0;
    std::memcpy(&n, v.data() + KM_PB_AUTHZ_N_RULES, 8);
    return ToString(static_cast<PolicyAction>(U32(v, KM_PB_AUTHZ_ACTION))) + " " +
           ToString(static_cast<PolicyScope>(U32(v, KM_PB_AUTHZ_SCOPE))) + ", " + std::to_string(n) +
           " rule(s)";
  }
  if (InnerMapNamed(c.map)) return std::to_string(v.size()) + " bytes";
  return Hex(v);
}

std::string Key(const MapChange& c, PortOrder order) {
  if ((c.map == KM_MAP_AUTH_RES || c.map == KM_MAP_TCARGS) && c.key.size() == KM_TUPLE_SIZE) {
    return net::DecodeTupleKey(c.key.data(), c.key.size(), order)->ToString();
  }
  if (c.map == KM_MAP_WLPOLICY && c.key.size() == 4) return "workload " + std::to_string(U32(c.key, 0));
  if (c.map == KM_MAP_AUTHZ_POLICY && c.key.size() == 4) return "policy " + std::to_string(U32(c.key, 0));
  if (c.map == KM_MAP_FRONTEND && c.key.size() == 16) {
    bool v4 = true;
    for (size_t i = 4; i < 16; ++i) v4 = v4 && c.key[i] == 0;
    return v4 ? IpAddr::V4(c.key.data()).ToString() : IpAddr::V6(c.key.data()).ToString();
  }
  if (InnerMapNamed(c.map) && c.key.size() == 4) return "[" + std::to_string(U32(c.key, 0)) + "]";
  return Hex(c.key);
}

}  // namespace

MapWatcher::MapWatcher(std::vector<Map> maps) : maps_(std::move(maps)), state_(maps_.size()) {
  for (size_t i = 0; i < maps_.size(); ++i) {
    const MapInfo& info = maps_[i].info();
    if (!info.EntriesWalkable()) {
      throw Error("cannot watch " + info.Describe() + ": " + info.NotWalkableReason());
    }
  }
  Poll();
}

std::vector<MapChange> MapWatcher::Poll() {
  std::vector<MapChange> out;
  for (size_t i = 0; i < maps_.size(); ++i) {
    std::map<Bytes, Bytes> now;
    DumpMap(maps_[i], [&](ByteView k, ByteView v) { now.emplace(k.ToBytes(), v.ToBytes()); });
    const MapInfo& info = maps_[i].info();
    auto& was = state_[i];
    // Both maps are sorted by key: one merge pass.
    auto a = was.begin();
    auto b = now.begin();
    while (a != was.end() || b != now.end()) {
      if (b == now.end() || (a != was.end() && a->first < b->first)) {
        out.push_back({MapChange::Kind::kRemoved, info.name, info.id, a->first, a->second, {}});
        ++a;
      } else if (a == was.end() || b->first < a->first) {
        out.push_back({MapChange::Kind::kAdded, info.name, info.id, b->first, {}, b->second});
        ++b;
      } else {
        if (a->second != b->second) {
          out.push_back({MapChange::Kind::kChanged, info.name, info.id, a->first, a->second, b->second});
        }
        ++a;
        ++b;
      }
    }
    was = std::move(now);
  }
  return out;
}

std::string DescribeChange(const MapChange& c, PortOrder order) {
  const std::string key = Key(c, order);
  switch (c.kind) {
    case MapChange::Kind::kAdded:
      return c.map + " + " + key + "  " + Value(c, c.after, order);
    case MapChange::Kind::kRemoved:
      return c.map + " - " + key + "  (was " + Value(c, c.before, order) + ")";
    case MapChange::Kind::kChanged:
      return c.map + " ~ " + key + "  " + Value(c, c.before, order) + " -> " + Value(c, c.after, order);
  }
  return "";
}

}  // namespace kmesh::bpf_probe
