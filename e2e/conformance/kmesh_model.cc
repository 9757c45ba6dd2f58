#include "e2e/conformance/kmesh_model.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/kmesh_abi.h"
#include "external/kmesh_src/api/v2-c/workloadapi/security/authorization.pb-c.h"

namespace kmesh::conformance {

namespace bp = kmesh::bpf_probe;

namespace {

// Inner map types of an outer key's top byte (bpf/include/inner_map_defs.h:10).
constexpr int kMap64 = 0, kMap192 = 1, kMap1600 = 3;
const char* const kInnerMaps[] = {"kmesh_map64", "kmesh_map192", "kmesh_map296", "kmesh_map1600"};

// The inner map KMESH_GET_PTR_VAL(ptr, T) reads for a struct T (bpf_common.h:208-233): by size.
constexpr int MapFor(size_t size) { return size <= 64 ? 0 : size <= 192 ? 1 : size <= 296 ? 2 : 3; }
constexpr int kRuleMap = MapFor(sizeof(Istio__Security__Rule));
constexpr int kClauseMap = MapFor(sizeof(Istio__Security__Clause));
constexpr int kMatchMap = MapFor(sizeof(Istio__Security__Match));
constexpr int kAddressMap = MapFor(sizeof(Istio__Security__Address));
static_assert(sizeof(Istio__Security__Authorization) == KM_AUTHZ_POLICY_VALUE_SIZE, "km_authz_policy value");

// A field of a protobuf-c struct stored in a blob, as the BPF program reads it (8-byte pointers and
// size_t on both x86-64 and bpfel).
uint64_t U64(const std::vector<uint8_t>& b, size_t off) {
  uint64_t v = 0;
  if (off + 8 <= b.size()) std::memcpy(&v, b.data() + off, 8);
  return v;
}
uint32_t U32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  if (off + 4 <= b.size()) std::memcpy(&v, b.data() + off, 4);
  return v;
}

// The IPv6 mask word k of a prefix, as bytes in network order applied to a word read from memory:
// GET_PREFIX(len - 32k) with bpf_htonl (authz.h:252-263).
uint32_t MaskWord(int len, int k) {
  const int p = len - 32 * k;
  const uint32_t host = p <= 0 ? 0 : p < 32 ? ((1u << p) - 1) << (32 - p) : 0xffffffffu;
  return __builtin_bswap32(host);  // bpf_htonl on little-endian
}

constexpr int kStringMatchMap = MapFor(sizeof(Istio__Security__StringMatch));

class Emulator {
 public:
  Emulator(const ModelCase& mc, const Connection& conn, const DefectSet& present, const Identity* id,
           bool trace)
      : mc_(mc),
        mem_(mc.memory()),
        conn_(conn),
        d_(present),
        id_(id),
        want_trace_(trace),
        key_(net::EncodeTupleKey(conn.tuple)),
        family_(conn.family()) {}

  Prediction Run() {
    const std::vector<uint32_t> ids = ListIds();
    if (ids.empty()) {  // no km_wlpolicy entry: xdp_authz passes (xdp.c:103-106)
      Trace("no km_wlpolicy entry for the workload: XDP_PASS");
      return p_;
    }
    ctx_.auth_result = kXdpPass;
    return d_.Has(Defect::kD1) ? Sequential(ids) : IstioOrder(ids);
  }

 private:
  static constexpr int32_t kXdpDrop = 1, kXdpPass = 2;
  // The slot at which the model stops reading zero ids past the value (Kmesh may go on: ModelAgrees).
  static constexpr size_t kReadPastSlots = 8;

  struct PolicyResult {
    bool found = false;     // looked up in km_authz_policy
    bool no_rules = false;  // rules pointer NULL (a policy with no rules, D31)
    bool deny = false;
    bool matched = false;
  };

  void Trace(const std::string& line) {
    if (want_trace_) p_.trace.push_back(line);
  }

  // The ids policies_check walks: km_wlpolicy's 4 slots (0 = empty) or, with D6 fixed, every listed one.
  std::vector<uint32_t> ListIds() const {
    std::vector<uint32_t> ids = mc_.selected_ids();
    if (!d_.Has(Defect::kD30)) ids.insert(ids.end(), mc_.scoped_ids().begin(), mc_.scoped_ids().end());
    if (ids.empty() || !d_.Has(Defect::kD6)) return ids;
    ids.resize(KM_MAX_MEMBER_NUM_PER_POLICY, 0);  // storeWorkloadPolicies: the first 4, zeros after
    return ids;
  }

  // The key km_authz_policy holds the policy under: the id, or with D8 present what strncpy left of it.
  uint32_t LookupKey(uint32_t id) const { return d_.Has(Defect::kD8) ? id : mc_.StoredKey(id); }

  // km_authz_policy[id] as XDP finds it. With D8 fixed every policy sits under its own id, so a cut-down
  // key (0 for an id whose first byte is zero) holds nothing.
  const std::vector<uint8_t>* LookupPolicy(uint32_t id) {
    if (!d_.Has(Defect::kD8) && !mc_.IsPolicyId(id) && mc_.IsCutKey(id)) return nullptr;
    return mem_.Policy(LookupKey(id));
  }

  // policies_check for slot `idx` and, when the policy is found and has rules, policy_check.
  PolicyResult Evaluate(const std::vector<uint32_t>& ids, size_t idx) {
    PolicyResult r;
    uint32_t id = 0;
    if (idx < ids.size()) {
      id = ids[idx];
    } else if (!d_.Has(Defect::kD6)) {
      return r;  // the whole list, and nothing after it
    } else if (!d_.Has(Defect::kD35) || idx >= kReadPastSlots || mem_.Policy(0) == nullptr) {
      if (d_.Has(Defect::kD35)) p_.read_past_list = true;
      return r;  // memory after the value: taken as an id no policy is stored under
    } else {
      // policyIds + policy_index past the 4 slots, with a policy stored under key 0: the bytes after
      // km_wlpolicy's value read as zero ids (stale element memory) for a while.
      p_.read_past_list = true;
      p_.past_list_ambiguous = true;
    }
    if (id == 0 && !d_.Has(Defect::kD35)) return r;  // an empty slot ends the list
    const std::vector<uint8_t>* policy = LookupPolicy(id);
    if (policy == nullptr) {
      if (id != 0 && want_trace_) {
        Trace("slot " + std::to_string(idx) + ": " + mc_.NameOf(id) + " not in km_authz_policy under key " +
              std::to_string(LookupKey(id)));
      }
      return r;
    }
    r.found = true;
    const auto& a = *policy;
    r.deny = U32(a, offsetof(Istio__Security__Authorization, action)) == ISTIO__SECURITY__ACTION__DENY;
    const uint64_t n_rules = U64(a, offsetof(Istio__Security__Authorization, n_rules));
    const std::vector<uint8_t>* rules =
        mem_.Blob(U64(a, offsetof(Istio__Security__Authorization, rules)), kMap1600);
    std::string what;
    if (want_trace_) {
      what = "slot " + std::to_string(idx) + ": " + mc_.NameOf(id) + " (" + (r.deny ? "DENY" : "ALLOW") +
             ", " + std::to_string(n_rules) + (n_rules == 1 ? " rule)" : " rules)");
    }
    if (rules == nullptr) {
      r.no_rules = true;
      Trace(what + ": no rules pointer");
      return r;
    }
    ctx_.n_rules = static_cast<uint8_t>(n_rules);
    ctx_.action = r.deny ? KM_ACTION_DENY : KM_ACTION_ALLOW;
    const size_t bound =
        d_.Has(Defect::kD34) ? std::min<uint64_t>(n_rules, KM_MAX_MEMBER_NUM_PER_POLICY) : n_rules;
    for (size_t i = 0; i < bound; ++i) {
      const size_t off = d_.Has(Defect::kD10) ? i : 8 * i;  // &rulesPtr[i] on a void *
      const std::vector<uint8_t>* rule = mem_.Blob(U64(*rules, off), kRuleMap);
      if (rule == nullptr) continue;
      if (EvalRule(*rule)) {
        r.matched = true;
        Trace(what + ": rule " + std::to_string(i) + " matched" +
              (d_.Has(Defect::kD10) && i > 0 ? " (read at byte offset " + std::to_string(i) + ")" : ""));
        return r;
      }
    }
    Trace(what + ": no rule matched" +
          (bound < n_rules                       ? " (rules after the 4th not read)"
           : d_.Has(Defect::kD10) && n_rules > 1 ? " (rules after the first read at byte offsets)"
                                                 : ""));
    return r;
  }

  Prediction Sequential(const std::vector<uint32_t>& ids) {
    for (size_t idx = 0;; ++idx) {
      const PolicyResult r = Evaluate(ids, idx);
      if (!r.found) {
        if (ctx_.need_tailcall_to_userspace) {  // authz.h:582-584
          p_.to_userspace = true;
          p_.action = bp::XdpAction::kPass;
        } else {
          p_.action = static_cast<bp::XdpAction>(ctx_.auth_result);
        }
        p_.tcargs = ctx_;
        return p_;
      }
      if (r.no_rules) {
        if (d_.Has(Defect::kD31)) {  // authz.h:588-591
          p_.action = bp::XdpAction::kPass;
          p_.tcargs = ctx_;
          return p_;
        }
        ctx_.action = r.deny ? KM_ACTION_DENY : KM_ACTION_ALLOW;
      }
      if (r.matched) {  // authz.h:657-676
        p_.auth_res = r.deny ? bp::Verdict::kDeny : bp::Verdict::kAllow;
        p_.action = r.deny ? bp::XdpAction::kDrop : bp::XdpAction::kPass;
        return p_;
      }
      if (ctx_.auth_result == kXdpPass) ctx_.auth_result = r.deny ? kXdpPass : kXdpDrop;  // authz.h:677-679
      ctx_.policy_index = static_cast<uint8_t>(idx + 1);
    }
  }

  // Istio's order over the policies XDP gets to (D1 fixed): any DENY match denies, then ALLOW.
  Prediction IstioOrder(const std::vector<uint32_t>& ids) {
    bool deny = false, allow_any = false, allow = false, pass_stop = false;
    for (size_t idx = 0;; ++idx) {
      const PolicyResult r = Evaluate(ids, idx);
      if (!r.found) break;
      if (r.no_rules && d_.Has(Defect::kD31)) {
        pass_stop = true;
        break;
      }
      if (r.deny) {
        deny = deny || r.matched;
      } else {
        allow_any = true;
        allow = allow || r.matched;
      }
    }
    if (deny) {
      p_.action = bp::XdpAction::kDrop;
      p_.auth_res = bp::Verdict::kDeny;
    } else if (pass_stop || !allow_any) {
      p_.action = bp::XdpAction::kPass;
    } else if (allow) {
      p_.action = bp::XdpAction::kPass;
      p_.auth_res = bp::Verdict::kAllow;
    } else if (ctx_.need_tailcall_to_userspace) {
      p_.action = bp::XdpAction::kPass;
      p_.to_userspace = true;
    } else {
      p_.action = bp::XdpAction::kDrop;
    }
    return p_;
  }

  bool EvalRule(const std::vector<uint8_t>& rule) {  // rule_match_check, authz.h:511-544
    const uint64_t n = U64(rule, offsetof(Istio__Security__Rule, n_clauses));
    if (n == 0) return true;
    const std::vector<uint8_t>* clauses =
        mem_.Blob(U64(rule, offsetof(Istio__Security__Rule, clauses)), kMap1600);
    if (clauses == nullptr) return false;
    const size_t bound = d_.Has(Defect::kD34) ? std::min<uint64_t>(n, KM_MAX_MEMBER_NUM_PER_POLICY) : n;
    for (size_t i = 0; i < bound; ++i) {
      const std::vector<uint8_t>* clause = mem_.Blob(U64(*clauses, 8 * i), kClauseMap);
      if (clause != nullptr && !EvalClause(*clause)) return false;
    }
    return true;
  }

  bool EvalClause(const std::vector<uint8_t>& clause) {  // clause_match_check, authz.h:470-509
    const uint64_t n = U64(clause, offsetof(Istio__Security__Clause, n_matches));
    if (n == 0) return false;
    const std::vector<uint8_t>* matches =
        mem_.Blob(U64(clause, offsetof(Istio__Security__Clause, matches)), kMap1600);
    if (matches == nullptr) return true;
    const size_t bound = d_.Has(Defect::kD34) ? std::min<uint64_t>(n, KM_MAX_MEMBER_NUM_PER_POLICY) : n;
    for (size_t i = 0; i < bound; ++i) {
      const std::vector<uint8_t>* match = mem_.Blob(U64(*matches, 8 * i), kMatchMap);
      if (match == nullptr) continue;
      if (EvalMatch(*match)) return true;
      if (d_.Has(Defect::kD2) && NeedsUser(*match)) ctx_.need_tailcall_to_userspace = true;
    }
    return false;
  }

  static bool NeedsUser(const std::vector<uint8_t>& m) {  // need_tail_call_to_user, authz.h:463-468
    return U64(m, offsetof(Istio__Security__Match, n_namespaces)) ||
           U64(m, offsetof(Istio__Security__Match, n_not_namespaces)) ||
           U64(m, offsetof(Istio__Security__Match, n_principals)) ||
           U64(m, offsetof(Istio__Security__Match, n_not_principals));
  }

  bool EvalMatch(const std::vector<uint8_t>& m) {  // match_check, authz.h:453-461
    using M = Istio__Security__Match;
    const bool xdp =
        Ports(m) &&
        IpList(m, offsetof(M, n_source_ips), offsetof(M, source_ips), offsetof(M, n_not_source_ips),
               offsetof(M, not_source_ips), /*source=*/true) &&
        IpList(m, offsetof(M, n_destination_ips), offsetof(M, destination_ips),
               offsetof(M, n_not_destination_ips), offsetof(M, not_destination_ips), /*source=*/false);
    if (!xdp || d_.Has(Defect::kD2)) return xdp;
    // D2 fixed: the identity's namespace and principal are matched too (Istio's string match; a match
    // with no type is istiod's presence, "*", which Kmesh's proto cannot carry).
    return Strings(m, offsetof(M, n_namespaces), offsetof(M, namespaces), id_->ns, false) &&
           Strings(m, offsetof(M, n_not_namespaces), offsetof(M, not_namespaces), id_->ns, true) &&
           Strings(m, offsetof(M, n_principals), offsetof(M, principals), id_->principal, false) &&
           Strings(m, offsetof(M, n_not_principals), offsetof(M, not_principals), id_->principal, true);
  }

  bool Strings(const std::vector<uint8_t>& m, size_t n_off, size_t list_off, const std::string& value,
               bool negated) {
    using S = Istio__Security__StringMatch;
    const uint64_t n = U64(m, n_off);
    if (n == 0) return true;
    const std::vector<uint8_t>* ptrs = mem_.Blob(U64(m, list_off), kMap1600);
    bool any = false;
    for (size_t i = 0; ptrs != nullptr && i < n && !any; ++i) {
      const std::vector<uint8_t>* sm = mem_.Blob(U64(*ptrs, 8 * i), kStringMatchMap);
      if (sm == nullptr) continue;
      const uint32_t type = U32(*sm, offsetof(S, match_type_case));
      std::string pattern;
      if (const std::vector<uint8_t>* str = mem_.Blob(U64(*sm, offsetof(S, exact)), kMap192)) {
        pattern.assign(reinterpret_cast<const char*>(str->data()),
                       strnlen(reinterpret_cast<const char*>(str->data()), str->size()));
      }
      switch (type) {
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT:
          any = value == pattern;
          break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX:
          any = value.compare(0, pattern.size(), pattern) == 0;
          break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX:
          any = value.size() >= pattern.size() &&
                value.compare(value.size() - pattern.size(), pattern.size(), pattern) == 0;
          break;
        default:
          any = !value.empty();
      }
    }
    return negated ? !any : any;
  }

  bool Ports(const std::vector<uint8_t>& m) {  // match_dst_ports, authz.h:147-203
    using M = Istio__Security__Match;
    const uint64_t n = U64(m, offsetof(M, n_destination_ports)),
                   nn = U64(m, offsetof(M, n_not_destination_ports));
    if (n == 0 && nn == 0) return true;
    auto bound = [&](uint64_t k) {
      return d_.Has(Defect::kD12) ? std::min<uint64_t>(k, KM_MAX_MEMBER_NUM_PER_POLICY) : k;
    };
    const uint16_t dport = conn_.tuple.dst.port;
    if (nn != 0) {
      const std::vector<uint8_t>* ports = mem_.Blob(U64(m, offsetof(M, not_destination_ports)), kMap1600);
      if (ports == nullptr) return false;
      for (size_t i = 0; i < bound(nn); ++i) {
        if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) return false;
      }
    }
    if (n == 0) return true;
    const std::vector<uint8_t>* ports = mem_.Blob(U64(m, offsetof(M, destination_ports)), kMap1600);
    if (ports == nullptr) return false;
    for (size_t i = 0; i < bound(n); ++i) {
      if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) return true;
    }
    return false;
  }

  // match_ip_common, authz.h:330-412.
  bool IpList(const std::vector<uint8_t>& m, size_t n_off, size_t list_off, size_t nn_off, size_t not_off,
              bool source) {
    const uint64_t n = U64(m, n_off), nn = U64(m, nn_off);
    if (n == 0 && nn == 0) return true;
    auto bound = [&](uint64_t k) {
      return d_.Has(Defect::kD34) ? std::min<uint64_t>(k, KM_MAX_MEMBER_NUM_PER_POLICY) : k;
    };
    auto entry = [&](const std::vector<uint8_t>& ptrs, size_t i) -> const std::vector<uint8_t>* {
      const size_t off = d_.Has(Defect::kD5) ? i : 8 * i;  // &ipPtrs[i] on a void *
      const uint64_t addr = U64(ptrs, off);
      return addr == 0 ? nullptr : mem_.Blob(addr, kAddressMap);
    };
    if (nn != 0) {
      const std::vector<uint8_t>* ptrs = mem_.Blob(U64(m, not_off), kMap1600);
      if (ptrs == nullptr) return false;
      for (size_t i = 0; i < bound(nn); ++i) {
        const std::vector<uint8_t>* a = entry(*ptrs, i);
        if (a != nullptr && IpRule(*a, source)) return false;
      }
    }
    if (n != 0) {
      const std::vector<uint8_t>* ptrs = mem_.Blob(U64(m, list_off), kMap1600);
      if (ptrs == nullptr) return false;
      for (size_t i = 0; i < bound(n); ++i) {
        const std::vector<uint8_t>* a = entry(*ptrs, i);
        if (a != nullptr && IpRule(*a, source)) return true;
      }
      return false;
    }
    return !d_.Has(Defect::kD11);  // only not-addresses, none matched
  }

  // match_ip_rule, authz.h:295-328, on an Address blob.
  bool IpRule(const std::vector<uint8_t>& a, bool source) {
    using A = Istio__Security__Address;
    const uint64_t len = U64(a, offsetof(A, address) + offsetof(ProtobufCBinaryData, len));
    const uint64_t data = U64(a, offsetof(A, address) + offsetof(ProtobufCBinaryData, data));
    const uint32_t prefix = U32(a, offsetof(A, length));
    if (len == 4) return Ipv4Rule(data, prefix, source);
    if (len == 16) return Ipv6Rule(data, prefix, source);
    return false;
  }

  bool Ipv4Rule(uint64_t data, uint32_t prefix, bool source) {
    uint32_t rule = 0;  // convert_ipv4_to_u32 returns 0 when the bytes are not found (authz.h:214-218)
    if (data != 0) {
      if (const std::vector<uint8_t>* b = mem_.Blob(data, kMap64)) {
        rule = uint32_t{(*b)[0]} << 24 | uint32_t{(*b)[1]} << 16 | uint32_t{(*b)[2]} << 8 | (*b)[3];
      }
    }
    if (prefix > 32) return false;
    size_t at = source ? 0 : 4;  // tuple_info->ipv4.saddr / daddr, whatever the packet's family
    if (!d_.Has(Defect::kD32) && family_ != Family::kIPv4) {
      if (family_ == Family::kIPv6) return false;
      at = source ? 12 : 28;  // the IPv4 address inside ::ffff:a.b.c.d
    }
    const uint32_t target =
        uint32_t{key_[at]} << 24 | uint32_t{key_[at + 1]} << 16 | uint32_t{key_[at + 2]} << 8 | key_[at + 3];
    // (rule & mask) == (target & mask), mask = 0xFFFFFFFF << (32 - prefix) computed in 64 bits.
    return (uint64_t{rule ^ target} >> (32 - prefix)) == 0;
  }

  bool Ipv6Rule(uint64_t data, uint32_t prefix, bool source) {
    if (data == 0) return false;
    const std::vector<uint8_t>* b = mem_.Blob(data, kMap64);
    if (b == nullptr || prefix > 128) return false;
    const size_t at = source ? 0 : 16;
    const int len = static_cast<int>(prefix);
    if (!d_.Has(Defect::kD33)) {  // a proper IPv6 prefix match, and only on an IPv6 (not mapped) packet
      if (family_ != Family::kIPv6) return false;
      for (int k = 0; k < 4; ++k) {
        uint32_t r, t;
        std::memcpy(&r, b->data() + 4 * k, 4);
        std::memcpy(&t, key_.data() + at + 4 * k, 4);
        if ((r & MaskWord(len, k)) != (t & MaskWord(len, k))) return false;
      }
      return true;
    }
    // convert_ipv6_to_ip6addr as the object here is compiled (clang 19 -O2): word k is the OR of its 4
    // bytes shifted left by 8k, word 1 is all ones (`|=` on a union word the initializer left unset).
    auto or4 = [&](int k) {
      return uint32_t((*b)[4 * k] | (*b)[4 * k + 1] | (*b)[4 * k + 2] | (*b)[4 * k + 3]);
    };
    const uint32_t rule[4] = {or4(0), 0xffffffffu, or4(2) << 16, or4(3) << 24};
    for (int k = 0; k < 4; ++k) {
      uint32_t t;
      std::memcpy(&t, key_.data() + at + 4 * k, 4);
      if (rule[k] != (t & MaskWord(len, k))) return false;
    }
    return true;
  }

  const ModelCase& mc_;
  NodeMemory& mem_;
  const Connection& conn_;
  const DefectSet& d_;
  const Identity* id_;
  const bool want_trace_;
  const net::TupleKey key_;
  const Family family_;
  MatchContext ctx_;
  Prediction p_;
};

}  // namespace

NodeMemory::NodeMemory(const std::string& pin_dir)
    : policies_(bp::Map::OpenPinned(pin_dir + "/" + KM_MAP_AUTHZ_POLICY)) {
  for (const char* name : kInnerMaps) inner_.push_back(bp::Map::OpenPinned(pin_dir + "/" + name));
}

const std::vector<uint8_t>* NodeMemory::Blob(uint64_t pointer, int map_type) {
  const uint32_t outer = static_cast<uint32_t>(pointer);  // (__u32)(uintptr_t)ptr, bpf_common.h:199
  if (static_cast<int>(outer >> 24) != map_type) return nullptr;
  const uint32_t index = outer & 0xffffff;
  const uint64_t cache_key = uint64_t(map_type) << 32 | index;
  auto it = blobs_.find(cache_key);
  if (it == blobs_.end()) {
    auto v = inner_[map_type].Lookup(bp::ByteView(reinterpret_cast<const uint8_t*>(&index), 4));
    std::optional<std::vector<uint8_t>> blob;
    if (v) blob = std::vector<uint8_t>(v->begin(), v->end());
    it = blobs_.emplace(cache_key, std::move(blob)).first;
  }
  return it->second ? &*it->second : nullptr;
}

const std::vector<uint8_t>* NodeMemory::Policy(uint32_t key) {
  auto it = policy_blobs_.find(key);
  if (it == policy_blobs_.end()) {
    auto v = policies_.Lookup(bp::ByteView(reinterpret_cast<const uint8_t*>(&key), 4));
    std::optional<std::vector<uint8_t>> blob;
    if (v) blob = std::vector<uint8_t>(v->begin(), v->end());
    it = policy_blobs_.emplace(key, std::move(blob)).first;
  }
  return it->second ? &*it->second : nullptr;
}

void NodeMemory::Forget() {
  blobs_.clear();
  policy_blobs_.clear();
}

std::string Prediction::ToString() const {
  return "XDP_" + bp::ToString(action) +
         ", km_auth_res = " + (auth_res ? bp::ToString(*auth_res) : "no entry") +
         (to_userspace ? ", tail call to xdp_shutdown_in_userspace" : "");
}

ModelCase::ModelCase(const Case& c, const Written& w, NodeMemory& memory) : c_(c), w_(w), mem_(memory) {
  for (const auto& name : w.selected) selected_ids_.push_back(w.policies.at(name).policy_id);
  std::vector<std::string> scoped;
  const auto applying = ApplyingPolicies(c);
  for (const auto& p : applying) {
    if (!p.has_selector) scoped.push_back(p.IdKey());
  }
  std::sort(scoped.begin(), scoped.end());
  for (const auto& name : scoped) scoped_ids_.push_back(w.policies.at(name).policy_id);
  for (const auto& [name, p] : w.policies) {
    stored_[p.policy_id] = p.stored_key;
    names_[p.policy_id] = name;
  }
  identities_ = Representatives(applying);
  // Policies whose record another one replaced under the same cut-down key (D8): their rules are gone.
  for (const auto& [name, p] : w.policies) {
    if (p.stored_key == p.policy_id) continue;
    const std::vector<uint8_t>* record = memory.Policy(p.stored_key);
    std::string stored_name;
    if (record != nullptr) {
      if (const std::vector<uint8_t>* n =
              memory.Blob(U64(*record, offsetof(Istio__Security__Authorization, name)), kMap192)) {
        stored_name.assign(reinterpret_cast<const char*>(n->data()),
                           strnlen(reinterpret_cast<const char*>(n->data()), n->size()));
      }
    }
    if (stored_name != name.substr(name.find('/') + 1)) lost_.push_back(name);
  }

  // Which defects the case's shape can expose (see Relevant).
  namespace pol = kmesh::policy;
  using K = pol::ConditionKey::Kind;
  const size_t cap = KM_MAX_MEMBER_NUM_PER_POLICY;
  bool multi_address = false, over_cap = false, many_ports = false, not_only = false, ipv6 = false,
       multi_rule = false;
  bool no_rules = false;
  auto addresses = [&](size_t n_in, size_t n_not, bool v6) {
    multi_address = multi_address || n_in > 1 || n_not > 1;
    over_cap = over_cap || n_in > cap || n_not > cap;
    not_only = not_only || (n_in == 0 && n_not > 0);
    ipv6 = ipv6 || v6;
  };
  auto family = [&](const std::vector<net::Cidr>& v) {
    bool six = false;
    for (const auto& c : v) {
      six = six || !c.address().is_v4();
      has_ipv4_rule_ = has_ipv4_rule_ || c.address().is_v4();
    }
    return six;
  };
  auto family_text = [&](const std::vector<std::string>& v) {
    std::vector<net::Cidr> cidrs;
    for (const auto& t : v) {
      if (const auto c = net::Cidr::Parse(t)) cidrs.push_back(*c);
    }
    return family(cidrs);
  };
  for (const auto& p : applying) {
    multi_rule = multi_rule || p.rules.size() > 1;
    no_rules = no_rules || p.rules.empty();
    over_cap = over_cap || p.rules.size() > cap;
    for (const auto& rule : p.rules) {
      const size_t clauses = (rule.from.empty() ? 0 : 1) + (rule.to.empty() ? 0 : 1) + rule.when.size();
      over_cap = over_cap || clauses > cap || rule.from.size() > cap || rule.to.size() > cap;
      for (const auto& s : rule.from) {
        const bool six = family(s.ip_blocks) | family(s.not_ip_blocks);
        addresses(s.ip_blocks.size(), s.not_ip_blocks.size(), six);
      }
      for (const auto& o : rule.to)
        many_ports = many_ports || o.ports.size() > cap || o.not_ports.size() > cap;
      for (const auto& c : rule.when) {
        if (c.key.kind == K::kSourceIp || c.key.kind == K::kDestinationIp) {
          const bool six = family_text(c.values) | family_text(c.not_values);
          addresses(c.values.size(), c.not_values.size(), six);
        } else if (c.key.kind == K::kDestinationPort) {
          many_ports = many_ports || c.values.size() > cap || c.not_values.size() > cap;
        }
      }
    }
  }
  DefectSet r;
  if (selected_ids_.size() + scoped_ids_.size() > 1) r = r.With(Defect::kD1);
  if (identities_.size() > 1) r = r.With(Defect::kD2);
  if (multi_address) r = r.With(Defect::kD5);
  if (selected_ids_.size() + scoped_ids_.size() > cap) r = r.With(Defect::kD6);
  for (const auto& [id, key] : stored_) {
    if (id != key) r = r.With(Defect::kD8);
    if (key == 0) r = r.With(Defect::kD35);
  }
  if (multi_rule) r = r.With(Defect::kD10);
  if (not_only) r = r.With(Defect::kD11);
  if (many_ports) r = r.With(Defect::kD12);
  if (!scoped_ids_.empty()) r = r.With(Defect::kD30);
  if (no_rules) r = r.With(Defect::kD31);
  if (ipv6) r = r.With(Defect::kD33);
  if (over_cap) r = r.With(Defect::kD34);
  relevant_ = r;
}

DefectSet ModelCase::Relevant(const Connection& conn) const {
  return conn.family() != Family::kIPv4 && has_ipv4_rule_ ? relevant_.With(Defect::kD32) : relevant_;
}

bool ModelCase::IsPolicyId(uint32_t id) const { return stored_.count(id) != 0; }

bool ModelCase::IsCutKey(uint32_t key) const {
  for (const auto& [id, stored] : stored_) {
    if (stored == key && stored != id) return true;
  }
  return false;
}

uint32_t ModelCase::StoredKey(uint32_t id) const {
  auto it = stored_.find(id);
  return it == stored_.end() ? id : it->second;
}

std::string ModelCase::NameOf(uint32_t id) const {
  auto it = names_.find(id);
  return it == names_.end() ? "id " + std::to_string(id) : it->second + " (id " + std::to_string(id) + ")";
}

bool ModelAgrees(const Prediction& m, const Observation& k) {
  const bool tcargs_equal =
      m.tcargs.has_value() == k.tcargs.has_value() && (!m.tcargs || *m.tcargs == *k.tcargs);
  if (m.action == k.action && m.auth_res == k.auth_res && tcargs_equal) return true;
  if (!m.past_list_ambiguous || !m.tcargs || !k.tcargs || m.auth_res != k.auth_res) return false;
  MatchContext seen = *k.tcargs, predicted = *m.tcargs;
  if (seen.policy_index < KM_MAX_MEMBER_NUM_PER_POLICY || seen.policy_index > 16) return false;
  predicted.policy_index = seen.policy_index;
  if (!(seen == predicted)) return false;
  // 16 slots: policies_check for slot 16 is the 33rd tail call, its tail call to policy_check fails and it
  // returns XDP_PASS (authz.h:604-606).
  return k.action == m.action || (k.action == bp::XdpAction::kPass && seen.policy_index == 16);
}

Prediction Predict(const ModelCase& mc, const Connection& conn, const DefectSet& present, bool trace) {
  if (present.Has(Defect::kD2)) return Emulator(mc, conn, present, nullptr, trace).Run();
  // D2 fixed: decide only what every identity class agrees on, defer the rest.
  std::vector<Prediction> each;
  bool drop = false, pass = false;
  for (const Identity& id : mc.identities()) {
    each.push_back(Emulator(mc, conn, present, &id, trace).Run());
    drop = drop || each.back().action == bp::XdpAction::kDrop;
    pass = pass || each.back().action != bp::XdpAction::kDrop;
    if (drop && pass) break;  // the identity decides: deferred, whatever the others say
  }
  auto all = [&](auto pred) { return std::all_of(each.begin(), each.end(), pred); };
  Prediction p;
  p.read_past_list =
      std::any_of(each.begin(), each.end(), [](const Prediction& e) { return e.read_past_list; });
  p.past_list_ambiguous =
      std::any_of(each.begin(), each.end(), [](const Prediction& e) { return e.past_list_ambiguous; });
  p.trace = each.front().trace;
  if (all([](const Prediction& e) { return e.action == bp::XdpAction::kDrop; })) {
    p.action = bp::XdpAction::kDrop;
    if (!all([](const Prediction& e) { return !e.auth_res; })) p.auth_res = bp::Verdict::kDeny;
  } else if (all([](const Prediction& e) { return e.action == bp::XdpAction::kPass; })) {
    p.action = bp::XdpAction::kPass;
    if (all([](const Prediction& e) { return e.auth_res == bp::Verdict::kAllow; }))
      p.auth_res = bp::Verdict::kAllow;
  } else {
    p.action = bp::XdpAction::kPass;
    p.to_userspace = true;
  }
  return p;
}

}  // namespace kmesh::conformance
