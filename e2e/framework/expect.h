// Expectations that pair what the client saw with what the kernel holds. A denied request is not
// "the probe failed": it is the expected mechanism's outcome *and* its kernel evidence for that exact
// tuple. Each judgement carries a paragraph for people: what was expected, what the client saw, what the
// kernel held, and which of them disagree.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/framework/case.h"
#include "e2e/framework/env.h"

namespace kmesh::e2e {

enum class Want { kAllowed, kDenied };

// Disagreement codes: what a failed authz judgement found, machine-readable (evidence field
// "disagreement_codes" of a probe, "disagreements" of a case). Scoring (sensitivity, mutants) matches
// these, never the sentences beside them.
namespace disagreement {
inline constexpr const char* kRequestNotServed = "request_not_served";  // allowed, but no app answer
inline constexpr const char* kDenyCached = "deny_cached";               // allowed, yet km_auth_res = DENY
inline constexpr const char* kXdpNotAttached = "xdp_not_attached";      // no xdp_authz on the server pod
inline constexpr const char* kSynNotDropped = "syn_not_dropped";        // XDP should have dropped the SYN
inline constexpr const char* kVerdictEntryMissing = "verdict_entry_missing";  // km_auth_res lacks DENY
inline constexpr const char* kVerdictUnexpectedlyCached = "verdict_unexpectedly_cached";
inline constexpr const char* kDecidedInXdp = "decided_in_xdp";  // userspace's to decide, XDP dropped the SYN
inline constexpr const char* kNotDeniedAfterHandshake = "not_denied_after_handshake";
inline constexpr const char* kWaypointDidNotDeny = "waypoint_did_not_deny";
inline constexpr const char* kXdpDecidedL7 = "xdp_decided_l7";
}  // namespace disagreement

struct AuthzExpect {
  Want want = Want::kAllowed;
  Mechanism mechanism = Mechanism::kXdp;
  // For an XDP denial: true when a DENY policy matched (km_auth_res caches 1); false for an ALLOW
  // policy that matched nothing (Kmesh drops every SYN and caches nothing).
  bool cached = true;
  // For an allowed request: the status the app itself returns for it (httpbin: 200 for /get, /headers).
  // "Allowed" is that answer, not any status below 400.
  int status = 200;

  std::string Describe() const;  // "denied by XDP: connect_timeout, km_auth_res = DENY, xdp_authz attached"
};

struct Judgement {
  bool ok = false;
  std::vector<std::string> codes;  // disagreement codes, empty when ok
  std::string explanation;         // empty when ok
  nlohmann::json evidence;
};

// One new connection from `client` to `server` (spec as for Env::Probe), then the kernel evidence for
// that tuple and the server's XDP attachment; judged against `want` and recorded in the case as a probe.
Judgement ProbeAndJudge(Env& env, Case& c, const App& client, const App& server, ProbeSpec spec,
                        const AuthzExpect& want, const std::string& label);

}  // namespace kmesh::e2e
