#include "bpf_probe/xdp_explain.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/authz_offload.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::bpf_probe {

using net::IpAddr;
using net::PortOrder;
using net::Tuple;
using net::TupleKey;
namespace {

constexpr int32_t kXdpDrop = 1, kXdpPass = 2;
// The kernel's MAX_TAIL_CALL_CNT: the 34th tail call of a chain fails and the
// caller goes on (both callers then return XDP_PASS, authz.h:604-606, 687-688).
constexpr int kMaxTailCalls = 33;
constexpr uint32_t kMembers = KM_MAX_MEMBER_NUM_PER_POLICY;  // workload.h:14
// Slots policies_check can read before the memory after km_wlpolicy's value
// stops reading as zeros.
constexpr uint32_t kSlackSlots = 8;

uint64_t U64(const Bytes& b, size_t off) { return ReadHost<uint64_t>(b, off); }
uint32_t U32(const Bytes& b, size_t off) { return ReadHost<uint32_t>(b, off); }

std::string XdpName(int32_t r) {
  return r == kXdpDrop ? "XDP_DROP" : r == kXdpPass ? "XDP_PASS" : "action " + std::to_string(r);
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The IPv6 mask word k of a prefix, in network order as a word read from
// memory: GET_PREFIX(len - 32k) with bpf_htonl (authz.h:252-263).
uint32_t MaskWord(int len, int k) {
  const int p = len - 32 * k;
  const uint32_t host = p <= 0 ? 0 : p < 32 ? ((1u << p) - 1) << (32 - p) : 0xffffffffu;
  return __builtin_bswap32(host);
}

class Walker {
 public:
  Walker(const Tuple& t, XdpMaps& maps)
      : t_(t), maps_(maps), mem_(maps.policies()), key_(net::EncodeTupleKey(t, PortOrder::kHost)) {
    e_.tuple = t;
  }

  XdpExplanation Run(bool sport_known) {
    const auto offload = maps_.AuthzOffloadValue();
    e_.authz_offload = offload;
    if (offload && *offload != 1) {
      // xdp.c:83-86: every packet goes to xdp_shutdown_in_userspace, which resets a tuple userspace denied
      // (km_auth_res = 1: the entry deleted, the packet rewritten to a RST) and passes everything else.
      Step(0, "authz_offload = " + std::to_string(*offload) +
                  " (kmeshctl authz disable): xdp_authz tail-calls xdp_shutdown_in_userspace for every packet; "
                  "no policy is read in XDP",
           "xdp.c:51-56, 83-86");
      e_.to_userspace = true;
      const auto v = sport_known ? maps_.AuthResult(key_) : std::nullopt;
      if (v && *v == 1) {
        Step(0, "km_auth_res[" + t_.ToString() + "] = DENY: the entry is deleted and the packet becomes a RST",
             "xdp.c:27-48, 138-139");
        return End(XdpAction::kPass, "km_auth_res (userspace's DENY, turned into a reset)",
                   "with authz_offload off, a tuple userspace denied is reset once, by its next packet");
      }
      Step(0, "no DENY cached for the tuple: the packet passes", "xdp.c:27-48, 140-141");
      return End(XdpAction::kPass, "authz_offload = " + std::to_string(*offload),
                 "with authz_offload off, XDP decides nothing: Kmesh's userspace judges the connection after "
                 "the handshake (sockops.c:182-188, pkg/auth/rbac.go)");
    }
    if (sport_known) {
      if (auto v = maps_.AuthResult(key_)) {
        const Verdict cached = static_cast<Verdict>(*v);
        e_.cached = cached;
        e_.action = *v ? XdpAction::kDrop : XdpAction::kPass;
        Step(0,
             "km_auth_res[" + t_.ToString() + "] = " + bpf_probe::ToString(cached) +
                 ": a cached verdict; XDP returns " + XdpName(*v ? kXdpDrop : kXdpPass) +
                 " without reading any policy",
             "xdp.c:101-102, 119-121");
        e_.decided_by = "km_auth_res (cached " + bpf_probe::ToString(cached) + ")";
        e_.why = *v ? "a verdict cached in km_auth_res drops every packet of "
                      "this 4-tuple until it is deleted"
                    : "an ALLOW cached in km_auth_res passes every packet of "
                      "this 4-tuple";
        // What the policies in force would do with a new connection: a stale
        // cache shows up here.
        Walker fresh(t_, maps_);
        const XdpExplanation now = fresh.Run(false);
        e_.policies_now = now.action;
        if (now.action != e_.action) {
          e_.notes.push_back("the policies in force would now give " + now.Outcome() + " (" + now.decided_by +
                             "): the cached verdict is stale. Kmesh deletes it only when an "
                             "established connection on "
                             "this tuple closes (sockops.c:182-194), or userspace's DENY when "
                             "xdp_shutdown_in_userspace "
                             "resets it (xdp.c:27-48); a denied SYN's entry stays (D3)");
          Defect("D3");
        }
        return std::move(e_);
      }
      Step(0, "km_auth_res[" + t_.ToString() + "]: no entry", "xdp.c:101-102");
    } else {
      Step(0,
           "no source port given: km_auth_res (keyed by the 4-tuple) not read; "
           "the walk below is a new "
           "connection's (no policy reads the source port)",
           "xdp.c:101-102");
    }
    return Walk();
  }

 private:
  void Step(int depth, std::string text, std::string source = "", std::string defect = "") {
    if (!defect.empty()) Defect(defect);
    e_.steps.push_back({depth, std::move(text), std::move(source), std::move(defect)});
  }
  void Defect(const std::string& d) {
    if (std::find(e_.defects.begin(), e_.defects.end(), d) == e_.defects.end()) e_.defects.push_back(d);
  }

  XdpExplanation Walk() {
    // get_workload_policies (xdp.c:58-78): dst -> km_frontend -> upstream id ->
    // km_wlpolicy.
    std::array<uint8_t, 16> fk{};
    const IpAddr dst = t_.dst.ip.Unmapped();
    std::memcpy(fk.data(), dst.data(), dst.size());
    const std::string fk_text = t_.dst.ip.v4_mapped()
                                    ? dst.ToString() + " (folded from " + t_.dst.ip.ToString() + ")"
                                    : dst.ToString();
    const auto upstream = maps_.Frontend(fk);
    if (!upstream) {
      Step(0, "km_frontend[" + fk_text + "]: no entry: not a destination Kmesh knows", "xdp.c:64-75");
      return End(XdpAction::kPass, "km_frontend (no entry)",
                 "the destination has no km_frontend entry, so xdp_authz "
                 "passes it (xdp.c:103-106)");
    }
    Step(0, "km_frontend[" + fk_text + "] = " + std::to_string(*upstream) + " (upstream id)", "xdp.c:64-76");
    const auto ids = maps_.WorkloadPolicies(*upstream);
    if (!ids) {
      Step(
          0,
          "km_wlpolicy[" + std::to_string(*upstream) + "]: no entry: the workload has no policy on this node",
          "xdp.c:76-77, authz.h:77-80");
      return End(XdpAction::kPass, "km_wlpolicy (no entry)",
                 "the workload lists no policy, so xdp_authz passes (xdp.c:103-106)");
    }
    ids_ = *ids;
    std::string list;
    for (uint32_t id : ids_) list += (list.empty() ? "" : ", ") + std::to_string(id);
    Step(0, "km_wlpolicy[" + std::to_string(*upstream) + "] = [" + list + "]", "xdp.c:76-77, authz.h:77-80");
    Step(0,
         "km_tcargs[tuple] = {policy_index 0, auth_result XDP_PASS}; tail call "
         "to policies_check",
         "xdp.c:107-117");
    NotePolicies();
    ctx_ = TcArgs{};
    ctx_.auth_result = kXdpPass;
    tail_calls_ = 1;
    while (true) {
      if (auto done = PoliciesCheck()) return std::move(*done);
    }
  }

  // The maps' view beside the walk: policies XDP never reaches for this
  // workload.
  void NotePolicies() {
    std::vector<std::string> scoped;
    for (uint32_t key : mem_.PolicyKeys()) {
      if (std::find(ids_.begin(), ids_.end(), key) != ids_.end()) continue;
      const auto v = mem_.Policy(key);
      if (!v || v->size() != KM_AUTHZ_POLICY_VALUE_SIZE) continue;
      const uint32_t scope = U32(*v, KM_PB_AUTHZ_SCOPE);
      if (scope == static_cast<uint32_t>(PolicyScope::kWorkloadSelector)) continue;
      scoped.push_back(DecodePolicy(key, *v, mem_).Resource() + " (" +
                       bpf_probe::ToString(static_cast<PolicyScope>(scope)) + ")");
    }
    if (scoped.empty()) return;
    std::string s;
    for (size_t i = 0; i < scoped.size() && i < 5; ++i) s += (i ? ", " : "") + scoped[i];
    if (scoped.size() > 5) s += ", ...";
    e_.notes.push_back(Plural(scoped.size(), "policy", "policies") +
                       " without a selector in km_authz_policy (" + s +
                       "): XDP evaluates only the ids in km_wlpolicy, which "
                       "lists selector policies only; Kmesh's "
                       "userspace applies them after the handshake (D30)");
    Defect("D30");
  }

  std::optional<XdpExplanation> PoliciesCheck() {
    const uint8_t idx = ctx_.policy_index;
    uint32_t id = 0;
    std::string slot = "slot " + std::to_string(idx);
    if (idx < kMembers) {
      id = ids_[idx];
    } else {
      // policies->policyIds + policy_index past the value: the memory after it
      // (authz.h:573-574). What is there is the kernel's, not a map's: on the
      // kernels measured here (conformance model_test) the 16 bytes after the
      // value are zeros (slots 4-7) and what follows is no policy id.
      slot += idx < kSlackSlots ? " (past km_wlpolicy's 4 slots: the memory "
                                  "after the value, taken as zeros)"
                                : " (past km_wlpolicy's value and its slack: "
                                  "memory taken as no policy id)";
      e_.assumed_past_slots = mem_.Policy(0).has_value();
      Defect("D35");
    }
    const auto policy = idx < kSlackSlots ? mem_.Policy(id) : std::nullopt;
    if (!policy) {
      std::string text = slot + ": km_authz_policy[" + std::to_string(id) + "]: no entry";
      std::string defect;
      if (idx >= kSlackSlots) {
        text = slot + ": no policy";
      } else if (id == 0) {
        text += idx < kMembers ? " (an empty slot)" : "";
      } else if (StrncpyKey(id) != id && mem_.Policy(StrncpyKey(id))) {
        text += "; a policy is stored under " + std::to_string(StrncpyKey(id)) +
                ", what strncpy leaves of this id (its zero byte, "
                "deserialization_to_bpf_map.c:91-106)";
        defect = "D8";
      } else {
        text += " (listed, but not in km_authz_policy)";
      }
      Step(1, text, "authz.h:573-578", defect);
      if (ctx_.need_tailcall_to_userspace) {
        Step(0,
             "no more policies, and a match with namespaces or principals did "
             "not match in XDP: tail call to "
             "xdp_shutdown_in_userspace, which passes the SYN (no km_auth_res "
             "entry yet)",
             "authz.h:579-585, xdp.c:124-141");
        e_.tcargs = ctx_;
        e_.to_userspace = true;
        Step(0, "km_tcargs keeps " + ctx_.ToString(), "authz.h:579-585", "D4");
        return End(XdpAction::kPass, "deferred to userspace",
                   "XDP could not decide a match on namespaces or principals: "
                   "Kmesh's userspace judges the "
                   "connection after the handshake (sockops.c:182-188, "
                   "pkg/auth/rbac.go) and writes "
                   "km_auth_res = DENY if it denies");
      }
      e_.tcargs = ctx_;
      if (ctx_.auth_result == kXdpDrop) {
        Step(0,
             "no more policies: auth_result is XDP_DROP (an ALLOW policy was "
             "read and none matched)",
             "authz.h:586, 677-679");
      } else {
        Step(0,
             "no more policies: auth_result is still XDP_PASS (no ALLOW policy "
             "was read)",
             "authz.h:586");
      }
      Step(0, "km_tcargs keeps " + ctx_.ToString() + " (nothing deletes it)", "authz.h:586", "D4");
      const bool drop = ctx_.auth_result == kXdpDrop;
      return End(static_cast<XdpAction>(ctx_.auth_result),
                 drop ? "no ALLOW policy matched" : "no policy matched",
                 drop ? "ALLOW policies apply to the workload and none "
                        "matched: XDP drops, and writes no "
                        "km_auth_res entry"
                      : "no policy matched and none of those read was an "
                        "ALLOW: XDP passes");
    }
    const Bytes& a = *policy;
    const DecodedPolicy d = DecodePolicy(id, a, mem_);
    const uint32_t action = U32(a, KM_PB_AUTHZ_ACTION);
    const uint64_t n_rules = U64(a, KM_PB_AUTHZ_N_RULES);
    const std::string who = d.Resource() + " (" + (action == KM_ACTION_DENY ? "DENY" : "ALLOW") + ", " +
                            Plural(n_rules, "rule", "rules") + ")";
    std::string defect = id == 0 ? "D35" : "";
    Step(1, slot + ": km_authz_policy[" + std::to_string(id) + "] = " + who, "authz.h:573-577", defect);
    const OuterKey rules_key{U64(a, KM_PB_AUTHZ_RULES)};
    const auto rules = Blob(rules_key, InnerMap::k1600);
    if (!rules) {
      Step(1,
           "its rules pointer finds no array (" +
               (rules_key.null() ? std::string("NULL: no rules") : rules_key.ToString() + " missing") +
               "): policies_check returns XDP_PASS, and no later policy is read",
           "authz.h:588-591", "D31");
      e_.tcargs = ctx_;
      return End(XdpAction::kPass, d.Resource() + " (no rules)",
                 "a policy without rules ends XDP's evaluation with XDP_PASS (D31)");
    }
    ctx_.n_rules = static_cast<uint8_t>(n_rules);
    ctx_.action = action;
    if (!Blob(OuterKey{U64(a, KM_PB_AUTHZ_NAME)}, InnerMap::k192)) {
      Step(1, "its name blob is missing: policies_check returns XDP_PASS", "authz.h:595-598");
      e_.tcargs = ctx_;
      return End(XdpAction::kPass, d.Resource() + " (name missing)",
                 "policies_check could not read the name");
    }
    if (++tail_calls_ > kMaxTailCalls) {
      Step(1,
           "the tail call to policy_check is the 34th of the chain: the kernel "
           "refuses it, XDP_PASS",
           "authz.h:604-606", "D35");
      e_.tcargs = ctx_;
      return End(XdpAction::kPass, "the tail-call limit",
                 "the chain of tail calls hit the kernel's limit of 33");
    }
    // policy_check (authz.h:610-689).
    int matched_rule = -1;
    const uint32_t bound = std::min<uint32_t>(kMembers, ctx_.n_rules);
    if (n_rules > kMembers)
      Step(2, "only the first 4 of " + std::to_string(n_rules) + " rules are read", "authz.h:632-635", "D34");
    for (uint32_t i = 0; i < bound; ++i) {
      // rulesPtr[i] on a void *: byte offset i, not entry i (authz.h:643).
      const uint64_t addr = U64(*rules, i);
      const OuterKey rk{addr};
      std::string where = "rule " + std::to_string(i);
      std::string rd;
      if (i > 0) {
        where += " (read at byte offset " + std::to_string(i) + " of the rules array: " + rk.ToString() + ")";
        rd = "D10";
      }
      const auto rule = Blob(rk, InnerMap::k64);
      if (!rule) {
        Step(2, where + ": no Rule there; skipped", "authz.h:643-650", rd);
        continue;
      }
      if (RuleMatches(*rule, where, rd)) {
        matched_rule = static_cast<int>(i);
        break;
      }
    }
    if (matched_rule >= 0) {
      const bool deny = action == KM_ACTION_DENY;
      e_.writes_auth_res = deny ? Verdict::kDeny : Verdict::kAllow;
      Step(1,
           d.Resource() + " matched: km_tcargs entry deleted, km_auth_res[tuple] = " +
               (deny ? "DENY" : "ALLOW") + ", " + (deny ? "XDP_DROP" : "XDP_PASS"),
           "authz.h:657-675");
      bool later = false;
      for (size_t s = idx + 1; s < kMembers; ++s) later = later || ids_[s] != 0;
      if (later) {
        Step(1,
             "the policies in later slots are not read: the first matching "
             "policy wins, whatever its action",
             "authz.h:651-676", "D1");
      }
      return End(deny ? XdpAction::kDrop : XdpAction::kPass,
                 d.Resource() + " rule " + std::to_string(matched_rule),
                 std::string(deny ? "the DENY policy " : "the ALLOW policy ") + d.Resource() +
                     " matched (rule " + std::to_string(matched_rule) + ")");
    }
    const int32_t before = ctx_.auth_result;
    if (ctx_.auth_result == kXdpPass) ctx_.auth_result = action == KM_ACTION_DENY ? kXdpPass : kXdpDrop;
    ++ctx_.policy_index;
    Step(1,
         d.Resource() + ": no rule matched; policy_index " + std::to_string(ctx_.policy_index) +
             (before != ctx_.auth_result ? ", auth_result becomes XDP_DROP (an unmatched ALLOW)" : "") +
             "; tail call to policies_check",
         "authz.h:677-688");
    if (++tail_calls_ > kMaxTailCalls) {
      e_.tcargs = ctx_;
      Step(0,
           "the tail call to policies_check is the 34th of the chain: refused, "
           "XDP_PASS",
           "authz.h:687-688", "D35");
      return End(XdpAction::kPass, "the tail-call limit",
                 "the chain of tail calls hit the kernel's limit of 33");
    }
    return std::nullopt;
  }

  // rule_match_check, authz.h:511-544: every clause must match.
  bool RuleMatches(const Bytes& rule, const std::string& where, const std::string& rd) {
    const uint64_t n = U64(rule, KM_PB_RULE_N_CLAUSES);
    if (n == 0) {
      Step(2, where + ": no clauses: MATCHED", "authz.h:521-523", rd);
      return true;
    }
    const auto clauses = Blob(OuterKey{U64(rule, KM_PB_RULE_CLAUSES)}, InnerMap::k1600);
    if (!clauses) {
      Step(2, where + ": its clauses array is missing: UNMATCHED", "authz.h:525-528", rd);
      return false;
    }
    Step(2, where + ": " + Plural(n, "clause", "clauses") + ", all must match", "authz.h:530-543", rd);
    if (n > kMembers) Step(3, "only the first 4 clauses are read", "authz.h:530-533", "D34");
    for (uint32_t i = 0; i < std::min<uint64_t>(n, kMembers); ++i) {
      const auto clause = Blob(OuterKey{U64(*clauses, 8 * i)}, InnerMap::k64);
      if (!clause) {
        Step(3, "clause " + std::to_string(i) + ": missing, skipped", "authz.h:534-538");
        continue;
      }
      if (!ClauseMatches(*clause, i)) {
        Step(2, where + ": UNMATCHED (clause " + std::to_string(i) + ")", "authz.h:539-541");
        return false;
      }
    }
    Step(2, where + ": MATCHED", "authz.h:543");
    return true;
  }

  // clause_match_check, authz.h:470-509: any match.
  bool ClauseMatches(const Bytes& clause, uint32_t ci) {
    const std::string where = "clause " + std::to_string(ci);
    const uint64_t n = U64(clause, KM_PB_CLAUSE_N_MATCHES);
    if (n == 0) {
      Step(3, where + ": no matches: UNMATCHED", "authz.h:480-482");
      return false;
    }
    const auto matches = Blob(OuterKey{U64(clause, KM_PB_CLAUSE_MATCHES)}, InnerMap::k1600);
    if (!matches) {
      Step(3, where + ": its matches array is missing: MATCHED", "authz.h:483-486");
      return true;
    }
    if (n > kMembers)
      Step(3, where + ": only the first 4 of " + std::to_string(n) + " matches are read", "authz.h:488-491",
           "D34");
    for (uint32_t i = 0; i < std::min<uint64_t>(n, kMembers); ++i) {
      const std::string mw = where + " match " + std::to_string(i);
      const auto match = Blob(OuterKey{U64(*matches, 8 * i)}, InnerMap::k192);
      if (!match) {
        Step(3, mw + ": missing, skipped", "authz.h:493-496");
        continue;
      }
      std::string why;
      const bool user = NeedsUser(*match);
      const bool xdp_fields = HasXdpFields(*match);
      if (MatchMatches(*match, &why)) {
        std::string defect;
        if (user && !xdp_fields) {
          why +=
              "; its namespaces/principals are not read in XDP, so it "
              "matches every client";
          defect = "D2";
        }
        Step(3, mw + ": MATCHED (" + why + ")", "authz.h:453-461, 498-500", defect);
        return true;
      }
      if (user) {
        ctx_.need_tailcall_to_userspace = true;
        Step(3,
             mw + ": UNMATCHED (" + why +
                 "); it has namespaces or principals: "
                 "need_tailcall_to_userspace",
             "authz.h:501-506");
      } else {
        Step(3, mw + ": UNMATCHED (" + why + ")", "authz.h:453-461");
      }
    }
    return false;
  }

  static bool NeedsUser(const Bytes& m) {  // need_tail_call_to_user, authz.h:463-468
    return U64(m, KM_PB_MATCH_N_NAMESPACES) || U64(m, KM_PB_MATCH_N_NOT_NAMESPACES) ||
           U64(m, KM_PB_MATCH_N_PRINCIPALS) || U64(m, KM_PB_MATCH_N_NOT_PRINCIPALS);
  }
  static bool HasXdpFields(const Bytes& m) {
    for (size_t off : {KM_PB_MATCH_N_SOURCE_IPS, KM_PB_MATCH_N_NOT_SOURCE_IPS, KM_PB_MATCH_N_DESTINATION_IPS,
                       KM_PB_MATCH_N_NOT_DESTINATION_IPS, KM_PB_MATCH_N_DESTINATION_PORTS,
                       KM_PB_MATCH_N_NOT_DESTINATION_PORTS}) {
      if (U64(m, off)) return true;
    }
    return false;
  }

  // match_check, authz.h:453-461: ports, then source and destination IPs.
  bool MatchMatches(const Bytes& m, std::string* why) {
    if (!Ports(m, why)) return false;
    if (!Ips(m, KM_PB_MATCH_N_SOURCE_IPS, KM_PB_MATCH_SOURCE_IPS, KM_PB_MATCH_N_NOT_SOURCE_IPS,
             KM_PB_MATCH_NOT_SOURCE_IPS, true, why))
      return false;
    return Ips(m, KM_PB_MATCH_N_DESTINATION_IPS, KM_PB_MATCH_DESTINATION_IPS,
               KM_PB_MATCH_N_NOT_DESTINATION_IPS, KM_PB_MATCH_NOT_DESTINATION_IPS, false, why);
  }

  void Why(std::string* why, const std::string& s) { *why += (why->empty() ? "" : "; ") + s; }

  // match_dst_ports, authz.h:147-203.
  bool Ports(const Bytes& m, std::string* why) {
    const uint64_t n = U64(m, KM_PB_MATCH_N_DESTINATION_PORTS),
                   nn = U64(m, KM_PB_MATCH_N_NOT_DESTINATION_PORTS);
    if (n == 0 && nn == 0) return true;
    const uint16_t dport = t_.dst.port;
    auto list = [&](const Bytes& b, uint64_t k) {
      std::string s;
      for (uint64_t i = 0; i < std::min<uint64_t>(k, kMembers); ++i)
        s += (i ? "," : "") + std::to_string(U32(b, 4 * i));
      if (k > kMembers) {
        s += ",... (" + std::to_string(k - kMembers) + " more not read)";
        Defect("D12");
      }
      return "[" + s + "]";
    };
    if (nn != 0) {
      const auto ports = Blob(OuterKey{U64(m, KM_PB_MATCH_NOT_DESTINATION_PORTS)}, InnerMap::k1600);
      if (!ports) {
        Why(why, "not_destination_ports array missing");
        return false;
      }
      for (uint64_t i = 0; i < std::min<uint64_t>(nn, kMembers); ++i) {
        if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) {
          Why(why, "port " + std::to_string(dport) + " in not_destination_ports " + list(*ports, nn));
          return false;
        }
      }
      Why(why, "port " + std::to_string(dport) + " not in not_destination_ports " + list(*ports, nn));
    }
    if (n == 0) return true;
    const auto ports = Blob(OuterKey{U64(m, KM_PB_MATCH_DESTINATION_PORTS)}, InnerMap::k1600);
    if (!ports) {
      Why(why, "destination_ports array missing");
      return false;
    }
    for (uint64_t i = 0; i < std::min<uint64_t>(n, kMembers); ++i) {
      if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) {
        Why(why, "port " + std::to_string(dport) + " in destination_ports " + list(*ports, n));
        return true;
      }
    }
    Why(why, "port " + std::to_string(dport) + " not in destination_ports " + list(*ports, n));
    return false;
  }

  // match_ip_common, authz.h:330-412.
  bool Ips(const Bytes& m, size_t n_off, size_t off, size_t nn_off, size_t not_off, bool source,
           std::string* why) {
    const uint64_t n = U64(m, n_off), nn = U64(m, nn_off);
    if (n == 0 && nn == 0) return true;
    const std::string field = source ? "source_ips" : "destination_ips";
    const std::string who = source ? "client " + t_.src.ip.ToString() : "destination " + t_.dst.ip.ToString();
    if (nn != 0) {
      const auto ptrs = Blob(OuterKey{U64(m, not_off)}, InnerMap::k1600);
      if (!ptrs) {
        Why(why, "not_" + field + " array missing");
        return false;
      }
      for (uint32_t i = 0; i < std::min<uint64_t>(nn, kMembers); ++i) {
        std::string rule;
        if (Entry(*ptrs, i, nn, source, &rule)) {
          Why(why, who + " in not_" + field + " " + rule);
          return false;
        }
      }
      if (nn > kMembers) Defect("D34");
    }
    if (n != 0) {
      const auto ptrs = Blob(OuterKey{U64(m, off)}, InnerMap::k1600);
      if (!ptrs) {
        Why(why, field + " array missing");
        return false;
      }
      std::string seen;
      for (uint32_t i = 0; i < std::min<uint64_t>(n, kMembers); ++i) {
        std::string rule;
        if (Entry(*ptrs, i, n, source, &rule)) {
          Why(why, who + " in " + field + " " + rule);
          return true;
        }
        if (!rule.empty()) seen += (seen.empty() ? "" : ", ") + rule;
      }
      if (n > kMembers) Defect("D34");
      Why(why, who + " not in " + field + " [" + seen + "]" +
                   (n > 1 ? " (" + std::to_string(n) +
                                " entries; after the first, entry i is read at byte "
                                "offset i, D5)"
                          : ""));
      return false;
    }
    Why(why, who + " not in not_" + field + ", and there is no " + field + " list: UNMATCHED");
    Defect("D11");
    return false;
  }

  // One entry of an address list, as read at byte offset i (&ipPtrs[i] on a
  // void *, authz.h:361, 393).
  bool Entry(const Bytes& ptrs, uint32_t i, uint64_t n, bool source, std::string* rule) {
    const uint64_t addr = U64(ptrs, i);
    if (i > 0 && n > 1) Defect("D5");
    if (addr == 0) return false;
    const auto a = Blob(OuterKey{addr}, InnerMap::k64);
    if (!a) return false;
    const uint64_t len = U64(*a, KM_PB_ADDRESS_LEN);
    const uint64_t data = U64(*a, KM_PB_ADDRESS_DATA);
    const uint32_t prefix = U32(*a, KM_PB_ADDRESS_LENGTH);
    std::optional<Bytes> bytes;
    if (data != 0) bytes = Blob(OuterKey{data}, InnerMap::k64);
    if (len == 4) {
      uint32_t rule_ip = 0;  // convert_ipv4_to_u32 returns 0 when the bytes are
                             // not found (authz.h:208-227)
      if (bytes)
        rule_ip = uint32_t{(*bytes)[0]} << 24 | uint32_t{(*bytes)[1]} << 16 | uint32_t{(*bytes)[2]} << 8 |
                  (*bytes)[3];
      const uint8_t be[4] = {static_cast<uint8_t>(rule_ip >> 24), static_cast<uint8_t>(rule_ip >> 16),
                             static_cast<uint8_t>(rule_ip >> 8), static_cast<uint8_t>(rule_ip)};
      *rule = IpAddr::V4(be).ToString() + "/" + std::to_string(prefix);
      if (!t_.src.ip.is_v4()) Defect("D32");
      return Ipv4Matches(rule_ip, prefix, source);
    }
    if (len == 16) {
      if (!bytes) return false;
      *rule = IpAddr::V6(bytes->data()).ToString() + "/" + std::to_string(prefix);
      Defect("D33");
      return Ipv6Matches(*bytes, prefix, source);
    }
    return false;
  }

  // match_ipv4_rule, authz.h:265-279: the tuple's ipv4 fields, whatever the
  // packet's family (D32).
  bool Ipv4Matches(uint32_t rule_ip, uint32_t prefix, bool source) {
    if (prefix > 32) return false;
    const size_t at = source ? 0 : 4;
    const uint32_t target =
        uint32_t{key_[at]} << 24 | uint32_t{key_[at + 1]} << 16 | uint32_t{key_[at + 2]} << 8 | key_[at + 3];
    // mask = 0xFFFFFFFF << (32 - prefix) in a 64-bit register: prefix 0 masks
    // everything away.
    const uint32_t mask = static_cast<uint32_t>(0xFFFFFFFFull << (32 - prefix));
    return (rule_ip & mask) == (target & mask);
  }

  // convert_ipv6_to_ip6addr + match_ipv6_rule, authz.h:229-249, 281-293, as the
  // object is compiled (clang 19 -O2): word k of the rule is the OR of its 4
  // bytes shifted by 8k, word 1 all ones (D33), so an IPv6 block practically
  // never matches; the rule words are compared unmasked with the masked target.
  bool Ipv6Matches(const Bytes& b, uint32_t prefix, bool source) {
    if (prefix > 128) return false;
    auto or4 = [&](int k) { return uint32_t(b[4 * k] | b[4 * k + 1] | b[4 * k + 2] | b[4 * k + 3]); };
    const uint32_t rule[4] = {or4(0), 0xffffffffu, or4(2) << 16, or4(3) << 24};
    const size_t at = source ? 0 : 16;
    for (int k = 0; k < 4; ++k) {
      uint32_t w;
      std::memcpy(&w, key_.data() + at + 4 * k, 4);
      if (rule[k] != (w & MaskWord(static_cast<int>(prefix), k))) return false;
    }
    return true;
  }

  // KMESH_GET_PTR_VAL: the low 32 bits as an outer key, looked up only in
  // `want` (bpf_common.h:195-233).
  std::optional<Bytes> Blob(OuterKey k, InnerMap want) {
    if (k.type() != static_cast<uint32_t>(want)) return std::nullopt;
    return mem_.Blob(want, k.index());
  }

  XdpExplanation End(XdpAction action, std::string decided_by, std::string why) {
    e_.action = action;
    e_.decided_by = std::move(decided_by);
    e_.why = std::move(why);
    return std::move(e_);
  }

  const Tuple t_;
  XdpMaps& maps_;
  PolicyMemory& mem_;
  const TupleKey key_;
  std::array<uint32_t, 4> ids_{};
  TcArgs ctx_;
  int tail_calls_ = 0;
  XdpExplanation e_;
};

}  // namespace

TcArgs TcArgs::Decode(ByteView v) {
  if (v.size < KM_TCARGS_VALUE_SIZE) {
    throw Error("km_tcargs value is " + std::to_string(v.size) + " bytes, Kmesh's match_context is " +
                std::to_string(KM_TCARGS_VALUE_SIZE));
  }
  TcArgs c;
  std::memcpy(&c.action, v.data + KM_TCARGS_ACTION, 4);
  c.policy_index = v[KM_TCARGS_POLICY_INDEX];
  c.need_tailcall_to_userspace = v[KM_TCARGS_NEED_TAILCALL_TO_USERSPACE] != 0;
  c.n_rules = v[KM_TCARGS_N_RULES];
  std::memcpy(&c.auth_result, v.data + KM_TCARGS_AUTH_RESULT, 4);
  return c;
}

std::string TcArgs::ToString() const {
  return "{policy_index " + std::to_string(policy_index) + ", need_tailcall_to_userspace " +
         (need_tailcall_to_userspace ? "true" : "false") + ", auth_result " + XdpName(auth_result) +
         ", action " + (action == KM_ACTION_DENY ? "DENY" : "ALLOW") + ", n_rules " +
         std::to_string(n_rules) + "}";
}

LiveXdpMaps::LiveXdpMaps(const MapCatalog& catalog)
    : auth_res_(catalog.Open(KM_MAP_AUTH_RES)),
      frontend_(catalog.Open(KM_MAP_FRONTEND)),
      wlpolicy_(catalog.Open(KM_MAP_WLPOLICY)),
      policies_(catalog) {
  CheckKmeshLayout(auth_res_.info(), KM_MAP_AUTH_RES);
  CheckKmeshLayout(frontend_.info(), KM_MAP_FRONTEND);
  CheckKmeshLayout(wlpolicy_.info(), KM_MAP_WLPOLICY);
  CheckKmeshLayout(policies_.policies().info(), KM_MAP_AUTHZ_POLICY);
}

std::optional<uint32_t> LiveXdpMaps::AuthResult(const TupleKey& key) {
  auto v = auth_res_.Lookup(ByteView(key.data(), key.size()));
  if (!v) return std::nullopt;
  uint32_t out;
  std::memcpy(&out, v->data(), 4);
  return out;
}

std::optional<uint32_t> LiveXdpMaps::Frontend(const std::array<uint8_t, 16>& key) {
  auto v = frontend_.Lookup(ByteView(key.data(), key.size()));
  if (!v) return std::nullopt;
  uint32_t out;
  std::memcpy(&out, v->data(), 4);
  return out;
}

std::optional<std::array<uint32_t, 4>> LiveXdpMaps::WorkloadPolicies(uint32_t workload) {
  auto v = wlpolicy_.Lookup(ByteView(reinterpret_cast<const uint8_t*>(&workload), 4));
  if (!v) return std::nullopt;
  std::array<uint32_t, 4> out{};
  std::memcpy(out.data(), v->data(), 16);
  return out;
}

std::optional<uint32_t> LiveXdpMaps::AuthzOffloadValue() {
  if (!offload_read_) {
    offload_read_ = true;
    if (const auto a = ReadAuthzOffload(auth_res_.info().id)) offload_ = a->value;
  }
  return offload_;
}

std::vector<std::pair<Tuple, uint32_t>> LiveXdpMaps::AuthResultsFor(const IpAddr& src, const IpAddr& dst,
                                                                    uint16_t dport) {
  std::vector<std::pair<Tuple, uint32_t>> out;
  DumpMap(auth_res_, [&](ByteView k, ByteView v) {
    const Tuple t = *net::DecodeTupleKey(k.data, k.size, PortOrder::kHost);
    if (t.src.ip != src || t.dst.ip != dst || t.dst.port != dport) return;
    uint32_t x;
    std::memcpy(&x, v.data, 4);
    out.emplace_back(t, x);
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::string XdpExplanation::Outcome() const {
  std::string s = "XDP_" + ToString(action);
  if (to_userspace) s += " (deferred to userspace)";
  return s;
}

XdpExplanation ExplainXdp(const Tuple& t, XdpMaps& maps, bool sport_known) {
  if (t.src.ip.family() != t.dst.ip.family()) throw Error("explain: " + t.ToString() + " mixes IPv4 and IPv6");
  XdpExplanation e = Walker(t, maps).Run(sport_known);
  e.sport_known = sport_known;
  return e;
}

std::string FormatExplanation(const XdpExplanation& e) {
  std::string tuple = e.tuple.ToString();
  if (!e.sport_known) {
    tuple = e.tuple.src.ip.ToUrlHost() + ":* -> " + e.tuple.dst.ToString();
  }
  std::string out = "explain " + tuple + " (the SYN as xdp_authz sees it on the server pod, Kmesh ec501a98, " +
                    (e.authz_offload ? "authz_offload = " + std::to_string(*e.authz_offload)
                                     : std::string("authz_offload not readable, 1 assumed")) +
                    ")\n";
  size_t n = 0;
  for (const auto& s : e.steps) {
    std::string line = std::string(2 + 2 * static_cast<size_t>(s.depth), ' ') + s.text;
    std::string tail;
    if (!s.defect.empty()) tail += "[" + s.defect + "] ";
    if (!s.source.empty()) tail += s.source;
    if (!tail.empty()) line += "    # " + tail;
    out += line + "\n";
    ++n;
  }
  out += "verdict: " + e.Outcome() + ", decided by " + e.decided_by + ": " + e.why + "\n";
  if (e.writes_auth_res) out += "writes: km_auth_res[tuple] = " + ToString(*e.writes_auth_res) + "\n";
  if (e.tcargs) out += "leaves: km_tcargs[tuple] = " + e.tcargs->ToString() + "\n";
  if (e.assumed_past_slots) {
    out +=
        "uncertain: past km_wlpolicy's 4 slots Kmesh reads memory this tool "
        "cannot see (zeros assumed, and "
        "km_authz_policy holds a policy under key 0): it may meet other "
        "ids, or the 33-tail-call limit "
        "(XDP_PASS) [D35]\n";
  }
  for (const auto& note : e.notes) out += "note: " + note + "\n";
  if (!e.defects.empty()) {
    std::string d;
    for (const auto& x : e.defects) d += (d.empty() ? "" : ", ") + x;
    out += "known Kmesh defects on this path: " + d + " (docs/kmesh-offload-contract.md)\n";
  }
  out +=
      "sources (Kmesh ec501a98): xdp.c, sockops.c = bpf/kmesh/workload/; authz.h = "
      "bpf/kmesh/workload/include/\n";
  if (!e.to_userspace && !e.cached) {
    out +=
        "after the handshake Kmesh's userspace judges the connection too "
        "(sockops.c:182-188): a namespace "
        "or principal rule can still deny it\n";
  }
  return out;
}

}  // namespace kmesh::bpf_probe
