#include "bpf_probe/xdp_explain.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "base/error.h"
#include "bpf_probe/authz_offload.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::bpf_probe {

namespace {

constexpr int32_t kXdpDrop = 1, kXdpPass = 2;
// The kernel's MAX_TAIL_CALL_CNT: the 34th tail call of a chain fails and the caller goes on (both callers
// then return XDP_PASS, authz.h:604-606, 687-688).
constexpr int kMaxTailCalls = 33;
constexpr uint32_t kMembers = KM_MAX_MEMBER_NUM_PER_POLICY;  // workload.h:14
// Slots policies_check can read before the memory after km_wlpolicy's value stops reading as zeros.
constexpr uint32_t kSlackSlots = 8;

uint64_t U64(const Bytes& b, size_t off) { return ReadHost<uint64_t>(b, off); }
uint32_t U32(const Bytes& b, size_t off) { return ReadHost<uint32_t>(b, off); }

std::string XdpName(int32_t r) {
  return r == kXdpDrop ? "XDP_DROP" : r == kXdpPass ? "XDP_PASS" : "action " + std::to_string(r);
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The IPv6 mask word k of a prefix, in network order as a word read from memory: GET_PREFIX(len - 32k) with
// bpf_htonl (authz.h:252-263).
uint32_t MaskWord(int len, int k) {
  const int p = len - 32 * k;
  const uint32_t host = p <= 0 ? 0 : p < 32 ? ((1u << p) - 1) << (32 - p) : 0xffffffffu;
  return __builtin_bswap32(host);
}

class Walker {
 public:
  Walker(const Tuple& t, XdpMaps& maps, const XdpModel& model)
      : t_(t),
        maps_(maps),
        mem_(maps.policies()),
        model_(model),
        d_(model.present),
        trace_(model.trace),
        key_(net::EncodeTupleKey(t, PortOrder::kHost)) {
    e_.tuple = t;
  }

  XdpExplanation Run(bool sport_known) {
    const auto offload = maps_.AuthzOffloadValue();
    e_.authz_offload = offload;
    if (offload && *offload != 1) {
      // xdp.c:83-86: every packet goes to xdp_shutdown_in_userspace, which resets a tuple userspace denied
      // (km_auth_res = 1: the entry deleted, the packet rewritten to a RST) and passes everything else.
      Step(0,
           "authz_offload = " + std::to_string(*offload) +
               " (kmeshctl authz disable): xdp_authz tail-calls xdp_shutdown_in_userspace for every packet; "
               "no policy is read in XDP",
           "xdp.c:51-56, 83-86");
      e_.to_userspace = true;
      const auto v = sport_known ? maps_.AuthResult(key_) : std::nullopt;
      if (v && *v == 1) {
        Step(0,
             "km_auth_res[" + t_.ToString() + "] = DENY: the entry is deleted and the packet becomes a RST",
             "xdp.c:27-48, 138-139");
        End(XdpAction::kPass, "km_auth_res (userspace's DENY, turned into a reset)",
            "with authz_offload off, a tuple userspace denied is reset once, by its next packet");
        return std::move(e_);
      }
      Step(0, "no DENY cached for the tuple: the packet passes", "xdp.c:27-48, 140-141");
      End(XdpAction::kPass, "authz_offload = " + std::to_string(*offload),
          "with authz_offload off, XDP decides nothing: Kmesh's userspace judges the connection after the "
          "handshake (sockops.c:182-188, pkg/auth/rbac.go)");
      return std::move(e_);
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
        e_.why = *v ? "a verdict cached in km_auth_res drops every packet of this 4-tuple until it is deleted"
                    : "an ALLOW cached in km_auth_res passes every packet of this 4-tuple";
        // What the policies in force would do with a new connection: a stale cache shows up here.
        const XdpExplanation now = Walker(t_, maps_, model_).Run(false);
        e_.policies_now = now.action;
        if (now.action != e_.action) {
          e_.notes.push_back(
              "the policies in force would now give " + now.Outcome() + " (" + now.decided_by +
              "): the cached verdict is stale. Kmesh deletes it only when an established "
              "connection on this tuple closes (sockops.c:182-194), or userspace's DENY when "
              "xdp_shutdown_in_userspace resets it (xdp.c:27-48); a denied SYN's entry stays (D3)");
          Met("D3");
        }
        return std::move(e_);
      }
      if (trace_) Step(0, "km_auth_res[" + t_.ToString() + "]: no entry", "xdp.c:101-102");
    } else {
      Step(0,
           "no source port given: km_auth_res (keyed by the 4-tuple) not read; the walk below is a new "
           "connection's (no policy reads the source port)",
           "xdp.c:101-102");
    }
    Walk();
    return std::move(e_);
  }

 private:
  // What one km_wlpolicy slot gave.
  enum class Slot {
    kEnd,        // no policy there: the list is over
    kStopped,    // the walk ended in policies_check (End called)
    kNoRules,    // a policy whose rules pointer finds no array
    kUnmatched,  // a policy none of whose rules matched
    kMatched,    // rule `rule_` of the policy matched
  };

  // Steps, defects met and names are kept only when tracing (the conformance run's millions do without).
  void Step(int depth, std::string_view text, std::string_view source = {}, std::string_view defect = {}) {
    if (!trace_) return;
    if (!defect.empty()) Met(defect);
    e_.steps.push_back({depth, std::string(text), std::string(source), std::string(defect)});
  }
  void Met(std::string_view d) {  // a defect on the path
    if (trace_ && std::find(e_.defects.begin(), e_.defects.end(), d) == e_.defects.end())
      e_.defects.emplace_back(d);
  }
  bool Has(Defect d) const { return d_.Has(d); }

  void Walk() {
    // get_workload_policies (xdp.c:58-78): dst -> km_frontend -> upstream id -> km_wlpolicy.
    std::array<uint8_t, 16> fk{};
    const IpAddr dst = t_.dst.ip.Unmapped();
    std::memcpy(fk.data(), dst.data(), dst.size());
    const std::string fk_text = !trace_ ? ""
                                : t_.dst.ip.v4_mapped()
                                    ? dst.ToString() + " (folded from " + t_.dst.ip.ToString() + ")"
                                    : dst.ToString();
    const auto upstream = maps_.Frontend(fk);
    if (!upstream) {
      Step(0, "km_frontend[" + fk_text + "]: no entry: not a destination Kmesh knows", "xdp.c:64-75");
      End(XdpAction::kPass, "km_frontend (no entry)",
          "the destination has no km_frontend entry, so xdp_authz passes it (xdp.c:103-106)");
      return;
    }
    if (trace_) {
      Step(0, "km_frontend[" + fk_text + "] = " + std::to_string(*upstream) + " (upstream id)",
           "xdp.c:64-76");
    }
    const auto ids = maps_.WorkloadPolicies(*upstream);
    if (!ids) {
      if (trace_) {
        Step(0,
             "km_wlpolicy[" + std::to_string(*upstream) +
                 "]: no entry: the workload has no policy on this node",
             "xdp.c:76-77, authz.h:77-80");
      }
      End(XdpAction::kPass, "km_wlpolicy (no entry)",
          "the workload lists no policy, so xdp_authz passes (xdp.c:103-106)");
      return;
    }
    ids_ = std::move(*ids);
    if (trace_) {
      std::string list;
      for (uint32_t id : ids_) list += (list.empty() ? "" : ", ") + std::to_string(id);
      Step(0, "km_wlpolicy[" + std::to_string(*upstream) + "] = [" + list + "]",
           "xdp.c:76-77, authz.h:77-80");
      Step(0, "km_tcargs[tuple] = {policy_index 0, auth_result XDP_PASS}; tail call to policies_check",
           "xdp.c:107-117");
      if (Has(Defect::kD30)) NotePolicies();
    }
    ctx_ = TcArgs{};
    ctx_.auth_result = kXdpPass;
    tail_calls_ = 1;
    if (Has(Defect::kD1)) {
      Sequential();
    } else {
      IstioOrder();
    }
  }

  // The maps' view beside the walk: policies XDP never reaches for this workload.
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
                       "): XDP evaluates only the ids in km_wlpolicy, which lists selector policies only; "
                       "Kmesh's userspace applies them after the handshake (D30)");
    Met("D30");
  }

  // Kmesh's order: policies_check and policy_check tail-call each other slot by slot, and the first policy
  // that matches decides, whatever its action (D1).
  void Sequential() {
    while (true) {
      const uint8_t idx = ctx_.policy_index;
      const Slot slot = CheckSlot(idx);
      if (slot == Slot::kStopped) return;
      if (slot == Slot::kEnd) return EndOfList();
      if (slot == Slot::kNoRules) {
        if (Has(Defect::kD31)) {
          e_.tcargs = ctx_;
          End(XdpAction::kPass, trace_ ? who_ + " (no rules)" : "",
              "a policy without rules ends XDP's evaluation with XDP_PASS (D31)");
          return;
        }
        ctx_.action = action_;
      }
      if (slot == Slot::kMatched) {
        const bool deny = action_ == KM_ACTION_DENY;
        e_.writes_auth_res = deny ? Verdict::kDeny : Verdict::kAllow;
        if (trace_) {
          Step(1,
               who_ + " matched: km_tcargs entry deleted, km_auth_res[tuple] = " + (deny ? "DENY" : "ALLOW") +
                   ", " + (deny ? "XDP_DROP" : "XDP_PASS"),
               "authz.h:657-675");
        }
        bool later = false;
        for (size_t s = idx + 1; s < ids_.size(); ++s) later = later || ids_[s] != 0;
        if (later) {
          Step(
              1,
              "the policies in later slots are not read: the first matching policy wins, whatever its action",
              "authz.h:651-676", "D1");
        }
        End(deny ? XdpAction::kDrop : XdpAction::kPass, trace_ ? who_ + " rule " + std::to_string(rule_) : "",
            trace_ ? std::string(deny ? "the DENY policy " : "the ALLOW policy ") + who_ + " matched (rule " +
                         std::to_string(rule_) + ")"
                   : "");
        return;
      }
      const int32_t before = ctx_.auth_result;
      if (ctx_.auth_result == kXdpPass) ctx_.auth_result = action_ == KM_ACTION_DENY ? kXdpPass : kXdpDrop;
      ++ctx_.policy_index;
      if (trace_) {
        Step(1,
             who_ + ": no rule matched; policy_index " + std::to_string(ctx_.policy_index) +
                 (before != ctx_.auth_result ? ", auth_result becomes XDP_DROP (an unmatched ALLOW)" : "") +
                 "; tail call to policies_check",
             "authz.h:677-688");
      }
      if (++tail_calls_ > kMaxTailCalls) {
        e_.tcargs = ctx_;
        Step(0, "the tail call to policies_check is the 34th of the chain: refused, XDP_PASS",
             "authz.h:687-688", "D35");
        End(XdpAction::kPass, "the tail-call limit", "the chain of tail calls hit the kernel's limit of 33");
        return;
      }
    }
  }

  // No policy in the slot policies_check reads: the end of the evaluation (authz.h:579-586).
  void EndOfList() {
    e_.tcargs = ctx_;
    if (ctx_.need_tailcall_to_userspace) {
      Step(0,
           "no more policies, and a match with namespaces or principals did not match in XDP: tail call to "
           "xdp_shutdown_in_userspace, which passes the SYN (no km_auth_res entry yet)",
           "authz.h:579-585, xdp.c:124-141");
      e_.to_userspace = true;
      if (trace_) Step(0, "km_tcargs keeps " + ctx_.ToString(), "authz.h:579-585", "D4");
      End(XdpAction::kPass, "deferred to userspace",
          "XDP could not decide a match on namespaces or principals: Kmesh's userspace judges the connection "
          "after the handshake (sockops.c:182-188, pkg/auth/rbac.go) and writes km_auth_res = DENY if it "
          "denies");
      return;
    }
    const bool drop = ctx_.auth_result == kXdpDrop;
    if (drop) {
      Step(0, "no more policies: auth_result is XDP_DROP (an ALLOW policy was read and none matched)",
           "authz.h:586, 677-679");
    } else {
      Step(0, "no more policies: auth_result is still XDP_PASS (no ALLOW policy was read)", "authz.h:586");
    }
    if (trace_) Step(0, "km_tcargs keeps " + ctx_.ToString() + " (nothing deletes it)", "authz.h:586", "D4");
    End(static_cast<XdpAction>(ctx_.auth_result), drop ? "no ALLOW policy matched" : "no policy matched",
        drop ? "ALLOW policies apply to the workload and none matched: XDP drops, and writes no km_auth_res "
               "entry"
             : "no policy matched and none of those read was an ALLOW: XDP passes");
  }

  // D1 fixed: Istio's order over the policies XDP gets to: any DENY that matches denies, then an ALLOW
  // that matches allows; no ALLOW matching drops (or defers, when a namespace or principal could match).
  void IstioOrder() {
    bool deny = false, allow_any = false, allow = false, pass_stop = false;
    for (uint8_t idx = 0;; ++idx) {
      const Slot slot = CheckSlot(idx);
      if (slot == Slot::kStopped) return;
      if (slot == Slot::kEnd) break;
      if (slot == Slot::kNoRules && Has(Defect::kD31)) {
        pass_stop = true;
        break;
      }
      if (action_ == KM_ACTION_DENY) {
        deny = deny || slot == Slot::kMatched;
      } else {
        allow_any = true;
        allow = allow || slot == Slot::kMatched;
      }
    }
    if (deny) {
      e_.writes_auth_res = Verdict::kDeny;
      End(XdpAction::kDrop, "a DENY policy", "a DENY policy matched (Istio's order)");
    } else if (pass_stop) {
      End(XdpAction::kPass, "a policy without rules",
          "a policy without rules ends the walk with XDP_PASS (D31)");
    } else if (!allow_any) {
      End(XdpAction::kPass, "no DENY policy", "no DENY policy matched and no ALLOW policy applies");
    } else if (allow) {
      e_.writes_auth_res = Verdict::kAllow;
      End(XdpAction::kPass, "an ALLOW policy", "an ALLOW policy matched (Istio's order)");
    } else if (ctx_.need_tailcall_to_userspace) {
      e_.to_userspace = true;
      End(XdpAction::kPass, "deferred to userspace", "a namespace or principal decides");
    } else {
      End(XdpAction::kDrop, "no ALLOW policy matched", "ALLOW policies apply and none matched");
    }
  }

  // policies_check for slot `idx` (authz.h:566-607) and, when the policy has rules, policy_check
  // (authz.h:610-689). Leaves the policy's action in action_, its name in who_ (tracing), the matching rule
  // in rule_.
  Slot CheckSlot(uint8_t idx) {
    uint32_t id = 0;
    std::string slot = trace_ ? "slot " + std::to_string(idx) : "";
    if (idx < ids_.size()) {
      id = ids_[idx];
    } else if (!Has(Defect::kD6) || !Has(Defect::kD35)) {
      return Slot::kEnd;  // the whole list (D6 fixed), or the list ends with its slots (D35 fixed)
    } else {
      // policies->policyIds + policy_index past the value: the memory after it (authz.h:573-574). What is
      // there is the kernel's, not a map's: on the kernels measured here (conformance model_test) the 16
      // bytes after the value are zeros (slots 4-7) and what follows is no policy id.
      if (trace_) {
        slot += idx < kSlackSlots
                    ? " (past km_wlpolicy's 4 slots: the memory after the value, taken as zeros)"
                    : " (past km_wlpolicy's value and its slack: memory taken as no policy id)";
      }
      e_.read_past_slots = true;
      e_.assumed_past_slots = mem_.Policy(0) != nullptr;
      Met("D35");
    }
    if (id == 0 && !Has(Defect::kD35)) return Slot::kEnd;  // an empty slot ends the list
    const auto policy = idx < kSlackSlots || idx < ids_.size() ? mem_.Policy(id) : nullptr;
    if (!policy) {
      if (trace_) {
        std::string text = slot + ": km_authz_policy[" + std::to_string(id) + "]: no entry";
        std::string defect;
        if (idx >= kSlackSlots) {
          text = slot + ": no policy";
        } else if (id == 0) {
          text += idx < kMembers ? " (an empty slot)" : "";
        } else if (StrncpyKey(id) != id && mem_.Policy(StrncpyKey(id))) {
          text += "; a policy is stored under " + std::to_string(StrncpyKey(id)) +
                  ", what strncpy leaves of this id (its zero byte, deserialization_to_bpf_map.c:91-106)";
          defect = "D8";
        } else {
          text += " (listed, but not in km_authz_policy)";
        }
        Step(1, text, "authz.h:573-578", defect);
      }
      return Slot::kEnd;
    }
    const Bytes& a = *policy;
    action_ = U32(a, KM_PB_AUTHZ_ACTION);
    const uint64_t n_rules = U64(a, KM_PB_AUTHZ_N_RULES);
    if (trace_) {
      who_ = DecodePolicy(id, a, mem_).Resource();
      Step(1,
           slot + ": km_authz_policy[" + std::to_string(id) + "] = " + who_ + " (" +
               (action_ == KM_ACTION_DENY ? "DENY" : "ALLOW") + ", " + Plural(n_rules, "rule", "rules") + ")",
           "authz.h:573-577", id == 0 ? "D35" : "");
    }
    const OuterKey rules_key{U64(a, KM_PB_AUTHZ_RULES)};
    const auto rules = Blob(rules_key, InnerMap::k1600);
    if (!rules) {
      if (trace_ && Has(Defect::kD31)) {
        Step(1,
             "its rules pointer finds no array (" +
                 (rules_key.null() ? std::string("NULL: no rules") : rules_key.ToString() + " missing") +
                 "): policies_check returns XDP_PASS, and no later policy is read",
             "authz.h:588-591", "D31");
      }
      return Slot::kNoRules;
    }
    ctx_.n_rules = static_cast<uint8_t>(n_rules);
    ctx_.action = action_;
    if (!Blob(OuterKey{U64(a, KM_PB_AUTHZ_NAME)}, InnerMap::k192)) {
      Step(1, "its name blob is missing: policies_check returns XDP_PASS", "authz.h:595-598");
      e_.tcargs = ctx_;
      End(XdpAction::kPass, trace_ ? who_ + " (name missing)" : "", "policies_check could not read the name");
      return Slot::kStopped;
    }
    if (++tail_calls_ > kMaxTailCalls) {
      Step(1, "the tail call to policy_check is the 34th of the chain: the kernel refuses it, XDP_PASS",
           "authz.h:604-606", "D35");
      e_.tcargs = ctx_;
      End(XdpAction::kPass, "the tail-call limit", "the chain of tail calls hit the kernel's limit of 33");
      return Slot::kStopped;
    }
    // policy_check (authz.h:610-689).
    const uint64_t bound = Has(Defect::kD34) ? std::min<uint64_t>(kMembers, ctx_.n_rules) : n_rules;
    if (trace_ && n_rules > bound) {
      Step(2, "only the first 4 of " + std::to_string(n_rules) + " rules are read", "authz.h:632-635", "D34");
    }
    for (uint32_t i = 0; i < bound; ++i) {
      // rulesPtr[i] on a void *: byte offset i, not entry i (authz.h:643).
      const OuterKey rk{U64(*rules, Has(Defect::kD10) ? i : 8 * i)};
      std::string where, rd;
      if (trace_) {
        where = "rule " + std::to_string(i);
        if (i > 0 && Has(Defect::kD10)) {
          where +=
              " (read at byte offset " + std::to_string(i) + " of the rules array: " + rk.ToString() + ")";
          rd = "D10";
        }
      }
      const auto rule = Blob(rk, InnerMap::k64);
      if (!rule) {
        if (trace_) Step(2, where + ": no Rule there; skipped", "authz.h:643-650", rd);
        continue;
      }
      if (RuleMatches(*rule, where, rd)) {
        rule_ = i;
        return Slot::kMatched;
      }
    }
    return Slot::kUnmatched;
  }

  // rule_match_check, authz.h:511-544: every clause must match.
  bool RuleMatches(const Bytes& rule, const std::string& where, const std::string& rd) {
    const uint64_t n = U64(rule, KM_PB_RULE_N_CLAUSES);
    if (n == 0) {
      if (trace_) Step(2, where + ": no clauses: MATCHED", "authz.h:521-523", rd);
      return true;
    }
    const auto clauses = Blob(OuterKey{U64(rule, KM_PB_RULE_CLAUSES)}, InnerMap::k1600);
    if (!clauses) {
      if (trace_) Step(2, where + ": its clauses array is missing: UNMATCHED", "authz.h:525-528", rd);
      return false;
    }
    if (trace_)
      Step(2, where + ": " + Plural(n, "clause", "clauses") + ", all must match", "authz.h:530-543", rd);
    const uint64_t bound = Has(Defect::kD34) ? std::min<uint64_t>(n, kMembers) : n;
    if (trace_ && n > bound) Step(3, "only the first 4 clauses are read", "authz.h:530-533", "D34");
    for (uint32_t i = 0; i < bound; ++i) {
      const auto clause = Blob(OuterKey{U64(*clauses, 8 * i)}, InnerMap::k64);
      if (!clause) {
        if (trace_) Step(3, "clause " + std::to_string(i) + ": missing, skipped", "authz.h:534-538");
        continue;
      }
      if (!ClauseMatches(*clause, i)) {
        if (trace_) Step(2, where + ": UNMATCHED (clause " + std::to_string(i) + ")", "authz.h:539-541");
        return false;
      }
    }
    if (trace_) Step(2, where + ": MATCHED", "authz.h:543");
    return true;
  }

  // clause_match_check, authz.h:470-509: any match.
  bool ClauseMatches(const Bytes& clause, uint32_t ci) {
    const std::string where = trace_ ? "clause " + std::to_string(ci) : "";
    const uint64_t n = U64(clause, KM_PB_CLAUSE_N_MATCHES);
    if (n == 0) {
      if (trace_) Step(3, where + ": no matches: UNMATCHED", "authz.h:480-482");
      return false;
    }
    const auto matches = Blob(OuterKey{U64(clause, KM_PB_CLAUSE_MATCHES)}, InnerMap::k1600);
    if (!matches) {
      if (trace_) Step(3, where + ": its matches array is missing: MATCHED", "authz.h:483-486");
      return true;
    }
    const uint64_t bound = Has(Defect::kD34) ? std::min<uint64_t>(n, kMembers) : n;
    if (trace_ && n > bound) {
      Step(3, where + ": only the first 4 of " + std::to_string(n) + " matches are read", "authz.h:488-491",
           "D34");
    }
    for (uint32_t i = 0; i < bound; ++i) {
      const std::string mw = trace_ ? where + " match " + std::to_string(i) : "";
      const auto match = Blob(OuterKey{U64(*matches, 8 * i)}, InnerMap::k192);
      if (!match) {
        if (trace_) Step(3, mw + ": missing, skipped", "authz.h:493-496");
        continue;
      }
      std::string why;
      std::string* whyp = trace_ ? &why : nullptr;
      const bool user = NeedsUser(*match);
      if (MatchMatches(*match, whyp)) {
        std::string defect;
        if (trace_ && user && !HasXdpFields(*match) && Has(Defect::kD2)) {
          why += "; its namespaces/principals are not read in XDP, so it matches every client";
          defect = "D2";
        }
        if (trace_) Step(3, mw + ": MATCHED (" + why + ")", "authz.h:453-461, 498-500", defect);
        return true;
      }
      if (user && Has(Defect::kD2)) {
        ctx_.need_tailcall_to_userspace = true;
        if (trace_) {
          Step(3,
               mw + ": UNMATCHED (" + why + "); it has namespaces or principals: need_tailcall_to_userspace",
               "authz.h:501-506");
        }
      } else if (trace_) {
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

  // match_check, authz.h:453-461: ports, then source and destination IPs; with D2 fixed, the client's
  // namespace and principal too (Istio's string match).
  bool MatchMatches(const Bytes& m, std::string* why) {
    const bool xdp = Ports(m, why) &&
                     Ips(m, KM_PB_MATCH_N_SOURCE_IPS, KM_PB_MATCH_SOURCE_IPS, KM_PB_MATCH_N_NOT_SOURCE_IPS,
                         KM_PB_MATCH_NOT_SOURCE_IPS, true, why) &&
                     Ips(m, KM_PB_MATCH_N_DESTINATION_IPS, KM_PB_MATCH_DESTINATION_IPS,
                         KM_PB_MATCH_N_NOT_DESTINATION_IPS, KM_PB_MATCH_NOT_DESTINATION_IPS, false, why);
    if (!xdp || Has(Defect::kD2)) return xdp;
    return Strings(m, KM_PB_MATCH_N_NAMESPACES, KM_PB_MATCH_NAMESPACES, model_.client_ns, false) &&
           Strings(m, KM_PB_MATCH_N_NOT_NAMESPACES, KM_PB_MATCH_NOT_NAMESPACES, model_.client_ns, true) &&
           Strings(m, KM_PB_MATCH_N_PRINCIPALS, KM_PB_MATCH_PRINCIPALS, model_.client_principal, false) &&
           Strings(m, KM_PB_MATCH_N_NOT_PRINCIPALS, KM_PB_MATCH_NOT_PRINCIPALS, model_.client_principal,
                   true);
  }

  // A namespaces or principals list against the client's (D2 fixed). A match with no type is istiod's
  // presence, "*", which Kmesh's proto cannot carry.
  bool Strings(const Bytes& m, size_t n_off, size_t list_off, const std::string& value, bool negated) {
    const uint64_t n = U64(m, n_off);
    if (n == 0) return true;
    const auto ptrs = Blob(OuterKey{U64(m, list_off)}, InnerMap::k1600);
    bool any = false;
    for (size_t i = 0; ptrs && i < n && !any; ++i) {
      const auto sm = Blob(OuterKey{U64(*ptrs, 8 * i)}, InnerMap::k64);
      if (!sm) continue;
      std::string pattern;
      if (const auto str = Blob(OuterKey{U64(*sm, KM_PB_STRING_MATCH_STRING)}, InnerMap::k192)) {
        pattern.assign(reinterpret_cast<const char*>(str->data()),
                       strnlen(reinterpret_cast<const char*>(str->data()), str->size()));
      }
      switch (U32(*sm, KM_PB_STRING_MATCH_CASE)) {
        case KM_PB_STRING_MATCH_EXACT:
          any = value == pattern;
          break;
        case KM_PB_STRING_MATCH_PREFIX:
          any = value.compare(0, pattern.size(), pattern) == 0;
          break;
        case KM_PB_STRING_MATCH_SUFFIX:
          any = value.size() >= pattern.size() &&
                value.compare(value.size() - pattern.size(), pattern.size(), pattern) == 0;
          break;
        default:
          any = !value.empty();
      }
    }
    return negated ? !any : any;
  }

  void Why(std::string* why, const std::string& s) {
    if (why) *why += (why->empty() ? "" : "; ") + s;
  }

  // match_dst_ports, authz.h:147-203.
  bool Ports(const Bytes& m, std::string* why) {
    const uint64_t n = U64(m, KM_PB_MATCH_N_DESTINATION_PORTS),
                   nn = U64(m, KM_PB_MATCH_N_NOT_DESTINATION_PORTS);
    if (n == 0 && nn == 0) return true;
    const uint16_t dport = t_.dst.port;
    auto bound = [&](uint64_t k) { return Has(Defect::kD12) ? std::min<uint64_t>(k, kMembers) : k; };
    auto list = [&](const Bytes& b, uint64_t k) {
      if (!why) return std::string();
      std::string s;
      for (uint64_t i = 0; i < bound(k); ++i) s += (i ? "," : "") + std::to_string(U32(b, 4 * i));
      if (k > bound(k)) {
        s += ",... (" + std::to_string(k - kMembers) + " more not read)";
        Met("D12");
      }
      return "[" + s + "]";
    };
    const std::string port = why ? "port " + std::to_string(dport) : "";
    if (nn != 0) {
      const auto ports = Blob(OuterKey{U64(m, KM_PB_MATCH_NOT_DESTINATION_PORTS)}, InnerMap::k1600);
      if (!ports) {
        Why(why, "not_destination_ports array missing");
        return false;
      }
      for (uint64_t i = 0; i < bound(nn); ++i) {
        if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) {
          if (why) Why(why, port + " in not_destination_ports " + list(*ports, nn));
          return false;
        }
      }
      if (why) Why(why, port + " not in not_destination_ports " + list(*ports, nn));
    }
    if (n == 0) return true;
    const auto ports = Blob(OuterKey{U64(m, KM_PB_MATCH_DESTINATION_PORTS)}, InnerMap::k1600);
    if (!ports) {
      Why(why, "destination_ports array missing");
      return false;
    }
    for (uint64_t i = 0; i < bound(n); ++i) {
      if (static_cast<uint16_t>(U32(*ports, 4 * i)) == dport) {
        if (why) Why(why, port + " in destination_ports " + list(*ports, n));
        return true;
      }
    }
    if (why) Why(why, port + " not in destination_ports " + list(*ports, n));
    return false;
  }

  // match_ip_common, authz.h:330-412.
  bool Ips(const Bytes& m, size_t n_off, size_t off, size_t nn_off, size_t not_off, bool source,
           std::string* why) {
    const uint64_t n = U64(m, n_off), nn = U64(m, nn_off);
    if (n == 0 && nn == 0) return true;
    auto bound = [&](uint64_t k) { return Has(Defect::kD34) ? std::min<uint64_t>(k, kMembers) : k; };
    const std::string field = source ? "source_ips" : "destination_ips";
    const std::string who = !why     ? ""
                            : source ? "client " + t_.src.ip.ToString()
                                     : "destination " + t_.dst.ip.ToString();
    if (nn != 0) {
      const auto ptrs = Blob(OuterKey{U64(m, not_off)}, InnerMap::k1600);
      if (!ptrs) {
        Why(why, "not_" + field + " array missing");
        return false;
      }
      for (uint32_t i = 0; i < bound(nn); ++i) {
        std::string rule;
        if (Entry(*ptrs, i, nn, source, &rule)) {
          if (why) Why(why, who + " in not_" + field + " " + rule);
          return false;
        }
      }
      if (nn > bound(nn)) Met("D34");
    }
    if (n != 0) {
      const auto ptrs = Blob(OuterKey{U64(m, off)}, InnerMap::k1600);
      if (!ptrs) {
        Why(why, field + " array missing");
        return false;
      }
      std::string seen;
      for (uint32_t i = 0; i < bound(n); ++i) {
        std::string rule;
        if (Entry(*ptrs, i, n, source, &rule)) {
          if (why) Why(why, who + " in " + field + " " + rule);
          return true;
        }
        if (!rule.empty()) seen += (seen.empty() ? "" : ", ") + rule;
      }
      if (n > bound(n)) Met("D34");
      if (why) {
        Why(why,
            who + " not in " + field + " [" + seen + "]" +
                (n > 1 && Has(Defect::kD5) ? " (" + std::to_string(n) +
                                                 " entries; after the first, entry i is read at byte offset "
                                                 "i, D5)"
                                           : ""));
      }
      return false;
    }
    if (!Has(Defect::kD11)) return true;  // only not-addresses, none matched
    if (why) Why(why, who + " not in not_" + field + ", and there is no " + field + " list: UNMATCHED");
    Met("D11");
    return false;
  }

  // One entry of an address list, as read at byte offset i (&ipPtrs[i] on a void *, authz.h:361, 393).
  bool Entry(const Bytes& ptrs, uint32_t i, uint64_t n, bool source, std::string* rule) {
    const uint64_t addr = U64(ptrs, Has(Defect::kD5) ? i : 8 * i);
    if (i > 0 && n > 1 && Has(Defect::kD5)) Met("D5");
    if (addr == 0) return false;
    const auto a = Blob(OuterKey{addr}, InnerMap::k64);
    if (!a) return false;
    const uint64_t len = U64(*a, KM_PB_ADDRESS_LEN);
    const uint64_t data = U64(*a, KM_PB_ADDRESS_DATA);
    const uint32_t prefix = U32(*a, KM_PB_ADDRESS_LENGTH);
    const Bytes* bytes = data != 0 ? Blob(OuterKey{data}, InnerMap::k64) : nullptr;
    if (len == 4) {
      uint32_t rule_ip = 0;  // convert_ipv4_to_u32 returns 0 when the bytes are not found (authz.h:208-227)
      if (bytes) {
        rule_ip = uint32_t{(*bytes)[0]} << 24 | uint32_t{(*bytes)[1]} << 16 | uint32_t{(*bytes)[2]} << 8 |
                  (*bytes)[3];
      }
      if (trace_) {
        const uint8_t be[4] = {static_cast<uint8_t>(rule_ip >> 24), static_cast<uint8_t>(rule_ip >> 16),
                               static_cast<uint8_t>(rule_ip >> 8), static_cast<uint8_t>(rule_ip)};
        *rule = IpAddr::V4(be).ToString() + "/" + std::to_string(prefix);
        if (!t_.src.ip.is_v4() && Has(Defect::kD32)) Met("D32");
      }
      return Ipv4Matches(rule_ip, prefix, source);
    }
    if (len == 16) {
      if (!bytes) return false;
      if (trace_) *rule = IpAddr::V6(bytes->data()).ToString() + "/" + std::to_string(prefix);
      if (Has(Defect::kD33)) Met("D33");
      return Ipv6Matches(*bytes, prefix, source);
    }
    return false;
  }

  // match_ipv4_rule, authz.h:265-279: the tuple's ipv4 fields, whatever the packet's family (D32). With
  // D32 fixed, no IPv6 client is in an IPv4 block, and an IPv4-mapped one by its IPv4 address.
  bool Ipv4Matches(uint32_t rule_ip, uint32_t prefix, bool source) {
    if (prefix > 32) return false;
    size_t at = source ? 0 : 4;
    if (!Has(Defect::kD32) && !t_.src.ip.is_v4()) {
      if (!t_.src.ip.v4_mapped()) return false;
      at = source ? 12 : 28;  // the IPv4 address inside ::ffff:a.b.c.d
    }
    const uint32_t target =
        uint32_t{key_[at]} << 24 | uint32_t{key_[at + 1]} << 16 | uint32_t{key_[at + 2]} << 8 | key_[at + 3];
    // mask = 0xFFFFFFFF << (32 - prefix) in a 64-bit register: prefix 0 masks everything away.
    const uint32_t mask = static_cast<uint32_t>(0xFFFFFFFFull << (32 - prefix));
    return (rule_ip & mask) == (target & mask);
  }

  // convert_ipv6_to_ip6addr + match_ipv6_rule, authz.h:229-249, 281-293, as the object is compiled (clang
  // 19 -O2): word k of the rule is the OR of its 4 bytes shifted by 8k, word 1 all ones (D33), so an IPv6
  // block practically never matches; the rule words are compared unmasked with the masked target. With D33
  // fixed, a proper prefix match, and only on an IPv6 (not mapped) packet.
  bool Ipv6Matches(const Bytes& b, uint32_t prefix, bool source) {
    if (prefix > 128) return false;
    const bool fixed = !Has(Defect::kD33);
    if (fixed && (t_.src.ip.is_v4() || t_.src.ip.v4_mapped())) return false;
    auto or4 = [&](int k) { return uint32_t(b[4 * k] | b[4 * k + 1] | b[4 * k + 2] | b[4 * k + 3]); };
    const uint32_t rule[4] = {or4(0), 0xffffffffu, or4(2) << 16, or4(3) << 24};
    const size_t at = source ? 0 : 16;
    for (int k = 0; k < 4; ++k) {
      uint32_t w, r = rule[k];
      const uint32_t mask = MaskWord(static_cast<int>(prefix), k);
      std::memcpy(&w, key_.data() + at + 4 * k, 4);
      if (fixed) {
        std::memcpy(&r, b.data() + 4 * k, 4);
        r &= mask;
      }
      if (r != (w & mask)) return false;
    }
    return true;
  }

  // KMESH_GET_PTR_VAL: the low 32 bits as an outer key, looked up only in `want` (bpf_common.h:195-233).
  const Bytes* Blob(OuterKey k, InnerMap want) {
    if (k.type() != static_cast<uint32_t>(want)) return nullptr;
    return mem_.Blob(want, k.index());
  }

  void End(XdpAction action, std::string_view decided_by, std::string_view why) {
    e_.action = action;
    if (!trace_) return;
    e_.decided_by = decided_by;
    e_.why = why;
  }

  const Tuple t_;
  XdpMaps& maps_;
  PolicyMemory& mem_;
  const XdpModel& model_;
  const DefectSet d_;
  const bool trace_;
  const TupleKey key_;
  std::vector<uint32_t> ids_;
  TcArgs ctx_;
  int tail_calls_ = 0;
  uint32_t action_ = 0;  // of the policy CheckSlot read last
  uint32_t rule_ = 0;    // the rule that matched
  std::string who_;      // the policy's ns/name (tracing only)
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
  auto it = frontend_cache_.find(key);
  if (it == frontend_cache_.end()) {
    std::optional<uint32_t> out;
    if (auto v = frontend_.Lookup(ByteView(key.data(), key.size())))
      std::memcpy(&out.emplace(), v->data(), 4);
    it = frontend_cache_.emplace(key, out).first;
  }
  return it->second;
}

std::optional<std::vector<uint32_t>> LiveXdpMaps::WorkloadPolicies(uint32_t workload) {
  auto v = wlpolicy_.Lookup(ByteView(reinterpret_cast<const uint8_t*>(&workload), 4));
  if (!v) return std::nullopt;
  std::vector<uint32_t> out(KM_MAX_MEMBER_NUM_PER_POLICY);
  std::memcpy(out.data(), v->data(), 4 * out.size());
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

bool XdpExplanation::Agrees(XdpAction kmesh_action, std::optional<Verdict> auth_res,
                            const std::optional<TcArgs>& kmesh_tcargs) const {
  const std::optional<Verdict> writes = cached ? cached : writes_auth_res;
  if (kmesh_action == action && auth_res == writes && kmesh_tcargs == tcargs) return true;
  if (!assumed_past_slots || !tcargs || !kmesh_tcargs || auth_res != writes) return false;
  TcArgs predicted = *tcargs;
  predicted.policy_index = kmesh_tcargs->policy_index;
  if (kmesh_tcargs->policy_index < KM_MAX_MEMBER_NUM_PER_POLICY || kmesh_tcargs->policy_index > 16 ||
      predicted != *kmesh_tcargs)
    return false;
  return kmesh_action == action || (kmesh_action == XdpAction::kPass && kmesh_tcargs->policy_index == 16);
}

XdpExplanation ExplainXdp(const Tuple& t, XdpMaps& maps, bool sport_known, const XdpModel& model) {
  if (t.src.ip.family() != t.dst.ip.family())
    throw Error("explain: " + t.ToString() + " mixes IPv4 and IPv6");
  XdpExplanation e = Walker(t, maps, model).Run(sport_known);
  e.sport_known = sport_known;
  return e;
}

std::string FormatExplanation(const XdpExplanation& e) {
  const std::string tuple =
      e.sport_known ? e.tuple.ToString() : e.tuple.src.ip.ToUrlHost() + ":* -> " + e.tuple.dst.ToString();
  std::string out = "explain " + tuple +
                    " (the SYN as xdp_authz sees it on the server pod, Kmesh ec501a98, " +
                    (e.authz_offload ? "authz_offload = " + std::to_string(*e.authz_offload)
                                     : std::string("authz_offload not readable, 1 assumed")) +
                    ")\n";
  for (const auto& s : e.steps) {
    std::string line = std::string(2 + 2 * static_cast<size_t>(s.depth), ' ') + s.text;
    std::string tail;
    if (!s.defect.empty()) tail += "[" + s.defect + "] ";
    if (!s.source.empty()) tail += s.source;
    if (!tail.empty()) line += "    # " + tail;
    out += line + "\n";
  }
  out += "verdict: " + e.Outcome() + ", decided by " + e.decided_by + ": " + e.why + "\n";
  if (e.writes_auth_res) out += "writes: km_auth_res[tuple] = " + ToString(*e.writes_auth_res) + "\n";
  if (e.tcargs) out += "leaves: km_tcargs[tuple] = " + e.tcargs->ToString() + "\n";
  if (e.assumed_past_slots) {
    out +=
        "uncertain: past km_wlpolicy's 4 slots Kmesh reads memory this tool cannot see (zeros assumed, and "
        "km_authz_policy holds a policy under key 0): it may meet other ids, or the 33-tail-call limit "
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
        "after the handshake Kmesh's userspace judges the connection too (sockops.c:182-188): a namespace or "
        "principal rule can still deny it\n";
  }
  return out;
}

}  // namespace kmesh::bpf_probe
