#include "bpf_probe/kmesh_policy.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>

#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/fnv.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {
namespace {

uint64_t U64(const Bytes& b, size_t off) { return ReadHost<uint64_t>(b, off); }
uint32_t U32(const Bytes& b, size_t off) { return ReadHost<uint32_t>(b, off); }

class Decoder {
 public:
  Decoder(PolicyMemory& mem, DecodedPolicy& out) : mem_(mem), out_(out) {}

  void Run(ByteView value) {
    const Bytes v = value.ToBytes();
    if (v.size() != KM_AUTHZ_POLICY_VALUE_SIZE) {
      Problem("", "the value is " + std::to_string(v.size()) + " bytes, Kmesh's Authorization is " +
                      std::to_string(KM_AUTHZ_POLICY_VALUE_SIZE) + " (x86-64 protobuf-c): not decoded");
      return;
    }
    out_.scope_raw = U32(v, KM_PB_AUTHZ_SCOPE);
    out_.action_raw = U32(v, KM_PB_AUTHZ_ACTION);
    out_.n_rules = U64(v, KM_PB_AUTHZ_N_RULES);
    if (auto s = String(OuterKey{U64(v, KM_PB_AUTHZ_NAME)}, "name")) {
      out_.name = *s;
      out_.name_read = true;
    }
    if (auto s = String(OuterKey{U64(v, KM_PB_AUTHZ_NAMESPACE)}, "namespace")) {
      out_.ns = *s;
      out_.ns_read = true;
    }
    if (out_.n_rules == 0) {
      if (U64(v, KM_PB_AUTHZ_RULES) != 0) Problem("rules", "n_rules is 0 but rules holds an outer key");
      Finish();
      return;
    }
    out_.rules =
        Messages(v, KM_PB_AUTHZ_N_RULES, KM_PB_AUTHZ_RULES, "rules", InnerMap::k64, "a Rule", &Decoder::Rule);
    Finish();
  }

 private:
  void Problem(const std::string& path, const std::string& what) {
    out_.problems.push_back(path.empty() ? what : path + ": " + what);
  }

  void Finish() { out_.blobs.assign(seen_.begin(), seen_.end()); }

  // The blob `k` names, which must be in `want` (where the programs look for it) and `want`'s size.
  std::optional<Bytes> Follow(OuterKey k, InnerMap want, const std::string& path, const char* what) {
    if (k.null()) {
      Problem(path, std::string("NULL where ") + what + " should be");
      return std::nullopt;
    }
    if (k.raw >> 32) {
      char b[32];
      std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(k.raw));
      Problem(path, std::string(b) +
                        " is not an outer key (high 32 bits set): "
                        "an address, not Kmesh's layout");
      return std::nullopt;
    }
    if (k.type() != static_cast<uint32_t>(want)) {
      Problem(path, "outer key names " + k.ToString() + ", but " + what + " lives in " + ToString(want) +
                        " (the BPF programs look only there: "
                        "KMESH_GET_PTR_VAL, bpf_common.h:208-233)");
      return std::nullopt;
    }
    const BlobRef ref{want, k.index()};
    if (!mem_.HasInnerMap(want)) {
      Problem(path, ref.ToString() + ": " + ToString(want) + " is not among the maps read");
      return std::nullopt;
    }
    const Bytes* b = mem_.Blob(want, k.index());
    if (!b) {
      Problem(path, ref.ToString() + " is missing (" + what + ")");
      return std::nullopt;
    }
    seen_.insert(ref);
    if (b->size() != ValueSize(want)) {
      Problem(path, ref.ToString() + " is " + std::to_string(b->size()) + " bytes, expected " +
                        std::to_string(ValueSize(want)));
      return std::nullopt;
    }
    return *b;
  }

  std::optional<std::string> String(OuterKey k, const std::string& path) {
    auto b = Follow(k, InnerMap::k192, path, "a string");
    if (!b) return std::nullopt;
    const auto nul = std::find(b->begin(), b->end(), 0);
    if (nul == b->end()) {
      Problem(path, BlobRef{InnerMap::k192, k.index()}.ToString() + " holds no NUL-terminated string");
      return std::nullopt;
    }
    return std::string(b->begin(), nul);
  }

  // The elements of a repeated field (count at `n_off` of `m`, outer key of its kmesh_map1600 array at
  // `off`): 8-byte outer keys of messages or strings, or 4-byte uint32 (ports).
  template <typename Raw>
  std::vector<Raw> Array(const Bytes& m, size_t n_off, size_t off, const std::string& path) {
    std::vector<Raw> out;
    uint64_t n = U64(m, n_off);
    if (n == 0) return out;
    auto b = Follow(OuterKey{U64(m, off)}, InnerMap::k1600, path, "an array");
    if (!b) return out;
    constexpr uint64_t kMax = 1600 / sizeof(Raw);
    if (n > kMax) {
      Problem(path, "count " + std::to_string(n) + " is more than a kmesh_map1600 array holds (" +
                        std::to_string(kMax) + (sizeof(Raw) == 8 ? " keys" : " uint32") + "); the first " +
                        std::to_string(kMax) + " read");
      n = kMax;
    }
    for (uint64_t i = 0; i < n; ++i) out.push_back(ReadHost<Raw>(*b, sizeof(Raw) * i));
    return out;
  }

  // A repeated message field: each element read by `read` from the blob in `map` its key names, or marked
  // broken where that blob cannot be read.
  template <typename T>
  std::vector<T> Messages(const Bytes& m, size_t n_off, size_t off, const std::string& path, InnerMap map,
                          const char* what, void (Decoder::*read)(const Bytes&, const std::string&, T&)) {
    std::vector<T> out;
    const auto keys = Array<uint64_t>(m, n_off, off, path);
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string p = path + "[" + std::to_string(i) + "]";
      T t;
      if (auto b = Follow(OuterKey{keys[i]}, map, p, what)) {
        (this->*read)(*b, p, t);
      } else {
        t.broken = Broken();
      }
      out.push_back(std::move(t));
    }
    return out;
  }

  std::string Broken() const { return out_.problems.empty() ? "" : out_.problems.back(); }

  void Rule(const Bytes& b, const std::string& path, PolicyRule& r) {
    r.clauses = Messages(b, KM_PB_RULE_N_CLAUSES, KM_PB_RULE_CLAUSES, path + ".clauses", InnerMap::k64,
                         "a Clause", &Decoder::Clause);
  }

  void Clause(const Bytes& b, const std::string& path, PolicyClause& c) {
    c.matches = Messages(b, KM_PB_CLAUSE_N_MATCHES, KM_PB_CLAUSE_MATCHES, path + ".matches", InnerMap::k192,
                         "a Match", &Decoder::Match);
  }

  std::vector<PolicyString> Strings(const Bytes& m, size_t n_off, size_t off, const std::string& path) {
    return Messages(m, n_off, off, path, InnerMap::k64, "a StringMatch", &Decoder::StringMatch);
  }

  void StringMatch(const Bytes& b, const std::string& path, PolicyString& s) {
    s.match_type_case = U32(b, KM_PB_STRING_MATCH_CASE);
    switch (s.match_type_case) {
      case 0:
        s.kind = PolicyString::Kind::kUnset;
        break;
      case KM_PB_STRING_MATCH_EXACT:
        s.kind = PolicyString::Kind::kExact;
        break;
      case KM_PB_STRING_MATCH_PREFIX:
        s.kind = PolicyString::Kind::kPrefix;
        break;
      case KM_PB_STRING_MATCH_SUFFIX:
        s.kind = PolicyString::Kind::kSuffix;
        break;
      default:
        s.kind = PolicyString::Kind::kUnknown;
    }
    if (s.kind != PolicyString::Kind::kUnset && s.kind != PolicyString::Kind::kUnknown) {
      if (auto v = String(OuterKey{U64(b, KM_PB_STRING_MATCH_STRING)}, path))
        s.value = *v;
      else
        s.broken = Broken();
    }
  }

  std::vector<PolicyAddress> Addresses(const Bytes& m, size_t n_off, size_t off, const std::string& path) {
    return Messages(m, n_off, off, path, InnerMap::k64, "an Address", &Decoder::Address);
  }

  void Address(const Bytes& b, const std::string& path, PolicyAddress& a) {
    const uint64_t len = U64(b, KM_PB_ADDRESS_LEN);
    a.prefix = U32(b, KM_PB_ADDRESS_LENGTH);
    if (len > ValueSize(InnerMap::k64)) {
      Problem(path, "address length " + std::to_string(len) + " is more than a kmesh_map64 blob holds");
      a.broken = Broken();
    } else if (auto bytes = Follow(OuterKey{U64(b, KM_PB_ADDRESS_DATA)}, InnerMap::k64, path + ".address",
                                   "the address bytes")) {
      a.bytes.assign(bytes->begin(), bytes->begin() + static_cast<long>(len));
    } else {
      a.broken = Broken();
    }
  }

  void Match(const Bytes& b, const std::string& path, PolicyMatch& m) {
    m.namespaces = Strings(b, KM_PB_MATCH_N_NAMESPACES, KM_PB_MATCH_NAMESPACES, path + ".namespaces");
    m.not_namespaces =
        Strings(b, KM_PB_MATCH_N_NOT_NAMESPACES, KM_PB_MATCH_NOT_NAMESPACES, path + ".not_namespaces");
    m.principals = Strings(b, KM_PB_MATCH_N_PRINCIPALS, KM_PB_MATCH_PRINCIPALS, path + ".principals");
    m.not_principals =
        Strings(b, KM_PB_MATCH_N_NOT_PRINCIPALS, KM_PB_MATCH_NOT_PRINCIPALS, path + ".not_principals");
    m.source_ips = Addresses(b, KM_PB_MATCH_N_SOURCE_IPS, KM_PB_MATCH_SOURCE_IPS, path + ".source_ips");
    m.not_source_ips =
        Addresses(b, KM_PB_MATCH_N_NOT_SOURCE_IPS, KM_PB_MATCH_NOT_SOURCE_IPS, path + ".not_source_ips");
    m.destination_ips =
        Addresses(b, KM_PB_MATCH_N_DESTINATION_IPS, KM_PB_MATCH_DESTINATION_IPS, path + ".destination_ips");
    m.not_destination_ips = Addresses(b, KM_PB_MATCH_N_NOT_DESTINATION_IPS, KM_PB_MATCH_NOT_DESTINATION_IPS,
                                      path + ".not_destination_ips");
    m.destination_ports = Array<uint32_t>(b, KM_PB_MATCH_N_DESTINATION_PORTS, KM_PB_MATCH_DESTINATION_PORTS,
                                          path + ".destination_ports");
    m.not_destination_ports =
        Array<uint32_t>(b, KM_PB_MATCH_N_NOT_DESTINATION_PORTS, KM_PB_MATCH_NOT_DESTINATION_PORTS,
                        path + ".not_destination_ports");
  }

  PolicyMemory& mem_;
  DecodedPolicy& out_;
  std::set<BlobRef> seen_;
};

}  // namespace

const char* ToString(InnerMap m) {
  switch (m) {
    case InnerMap::k64:
      return KM_INNER_MAP_NAME_64;
    case InnerMap::k192:
      return KM_INNER_MAP_NAME_192;
    case InnerMap::k296:
      return KM_INNER_MAP_NAME_296;
    case InnerMap::k1600:
      return KM_INNER_MAP_NAME_1600;
  }
  return "kmesh_map?";
}

uint32_t ValueSize(InnerMap m) {
  switch (m) {
    case InnerMap::k64:
      return 64;
    case InnerMap::k192:
      return 192;
    case InnerMap::k296:
      return 296;
    case InnerMap::k1600:
      return 1600;
  }
  return 0;
}

std::optional<InnerMap> InnerMapNamed(const std::string& name) {
  for (InnerMap m : kInnerMaps) {
    if (name == ToString(m)) return m;
  }
  return std::nullopt;
}

std::string BlobRef::ToString() const {
  return std::string(bpf_probe::ToString(map)) + "[" + std::to_string(index) + "]";
}

std::string OuterKey::ToString() const {
  if (type() < KM_INNER_MAP_COUNT) return BlobRef{static_cast<InnerMap>(type()), index()}.ToString();
  char b[64];
  std::snprintf(b, sizeof b, "outer key 0x%x (type %u: no such inner map)", static_cast<uint32_t>(raw),
                type());
  return b;
}

// --- memory ------------------------------------------------------------------------------------------------

LivePolicyMemory::LivePolicyMemory(const MapCatalog& catalog) : policies_(catalog.Open(KM_MAP_AUTHZ_POLICY)) {
  if (policies_.info().key_size != 4) CheckKmeshLayout(policies_.info(), KM_MAP_AUTHZ_POLICY);
  for (InnerMap m : kInnerMaps) {
    if (!catalog.Named(ToString(m)).empty()) inner_[static_cast<int>(m)] = catalog.Open(ToString(m));
  }
}

const Bytes* LivePolicyMemory::Policy(uint32_t key) {
  auto it = policy_cache_.find(key);
  if (it == policy_cache_.end()) {
    it = policy_cache_.emplace(key, policies_.Lookup(ByteView(reinterpret_cast<const uint8_t*>(&key), 4)))
             .first;
  }
  return it->second ? &*it->second : nullptr;
}

std::vector<uint32_t> LivePolicyMemory::PolicyKeys() {
  std::vector<uint32_t> out;
  DumpMap(policies_, [&](ByteView k, ByteView v) {
    uint32_t key;
    std::memcpy(&key, k.data, 4);
    out.push_back(key);
    policy_cache_[key] = v.ToBytes();
  });
  std::sort(out.begin(), out.end());
  return out;
}

const Bytes* LivePolicyMemory::Blob(InnerMap map, uint32_t index) {
  const auto& m = inner_[static_cast<int>(map)];
  if (!m) return nullptr;
  const uint64_t ref = uint64_t{static_cast<uint8_t>(map)} << 32 | index;
  auto it = blob_cache_.find(ref);
  if (it == blob_cache_.end()) {
    it = blob_cache_.emplace(ref, m->Lookup(ByteView(reinterpret_cast<const uint8_t*>(&index), 4))).first;
  }
  return it->second ? &*it->second : nullptr;
}

void LivePolicyMemory::Forget() {
  policy_cache_.clear();
  blob_cache_.clear();
}

PolicyMemorySnapshot PolicyMemorySnapshot::Read(const MapCatalog& catalog) {
  PolicyMemorySnapshot s;
  const Map policies = catalog.Open(KM_MAP_AUTHZ_POLICY);
  DumpMap(policies, [&](ByteView k, ByteView v) {
    uint32_t key;
    std::memcpy(&key, k.data, 4);
    s.policies_[key] = v.ToBytes();
  });
  for (InnerMap m : kInnerMaps) {
    if (catalog.Named(ToString(m)).empty()) {
      s.SetHasInnerMap(m, false);
      continue;
    }
    const Map inner = catalog.Open(ToString(m));
    if (inner.info().key_size != 4) {
      throw Error(inner.info().Describe() + " is not one of Kmesh's inner maps: its key is " +
                  std::to_string(inner.info().key_size) + " bytes, Kmesh's is a u32 index");
    }
    DumpMap(inner, [&](ByteView k, ByteView v) {
      uint32_t index;
      std::memcpy(&index, k.data, 4);
      s.blobs_[BlobRef{m, index}] = v.ToBytes();
    });
  }
  return s;
}

const Bytes* PolicyMemorySnapshot::Policy(uint32_t key) {
  auto it = policies_.find(key);
  return it == policies_.end() ? nullptr : &it->second;
}

std::vector<uint32_t> PolicyMemorySnapshot::PolicyKeys() {
  std::vector<uint32_t> out;
  for (const auto& [k, v] : policies_) out.push_back(k);
  return out;
}

const Bytes* PolicyMemorySnapshot::Blob(InnerMap map, uint32_t index) {
  if (!HasInnerMap(map)) return nullptr;
  auto it = blobs_.find(BlobRef{map, index});
  return it == blobs_.end() ? nullptr : &it->second;
}

// --- decoded -----------------------------------------------------------------------------------------------

std::string PolicyAddress::ToString() const {
  if (!broken.empty()) return "<broken>";
  std::string ip;
  if (bytes.size() == 4) {
    ip = IpAddr::V4(bytes.data()).ToString();
  } else if (bytes.size() == 16) {
    ip = IpAddr::V6(bytes.data()).ToString();
  } else {
    ip = "0x" + HexBytes(bytes.data(), bytes.size());
  }
  return ip + "/" + std::to_string(prefix);
}

std::string PolicyString::ToString() const {
  if (!broken.empty()) return "<broken>";
  switch (kind) {
    case Kind::kExact:
      return value;
    case Kind::kPrefix:
      return value + "*";
    case Kind::kSuffix:
      return "*" + value;
    case Kind::kUnset:
      return "<unset>";
    case Kind::kUnknown:
      return "<match type " + std::to_string(match_type_case) + ">";
  }
  return "";
}

bool PolicyMatch::Empty() const {
  return namespaces.empty() && not_namespaces.empty() && principals.empty() && not_principals.empty() &&
         source_ips.empty() && not_source_ips.empty() && destination_ips.empty() &&
         not_destination_ips.empty() && destination_ports.empty() && not_destination_ports.empty();
}

std::string DecodedPolicy::Resource() const {
  if (!name_read || !ns_read) return "key " + std::to_string(key);
  return ns + "/" + name;
}

uint32_t DecodedPolicy::IdOfName() const { return PolicyId(ns, name); }

DecodedPolicy DecodePolicy(uint32_t key, ByteView value, PolicyMemory& memory) {
  DecodedPolicy p;
  p.key = key;
  Decoder(memory, p).Run(value);
  return p;
}

std::vector<DecodedPolicy> DecodePolicies(PolicyMemory& memory) {
  std::vector<DecodedPolicy> out;
  for (uint32_t key : memory.PolicyKeys()) {
    if (auto v = memory.Policy(key)) out.push_back(DecodePolicy(key, *v, memory));
  }
  return out;
}

uint32_t StrncpyKey(uint32_t id) {
  uint8_t b[4];
  std::memcpy(b, &id, 4);
  bool zero = false;
  for (uint8_t& x : b) {
    zero = zero || x == 0;
    if (zero) x = 0;
  }
  uint32_t out;
  std::memcpy(&out, b, 4);
  return out;
}

}  // namespace kmesh::bpf_probe
