// Disagreement codes: what a failed judgement found, machine-readable. A probe lists its own under
// "disagreement_codes", a case all of its under "disagreements" (Case::AddDisagreement). Scoring
// (e2e/mutation) matches these, never the sentences beside them. One place for every code, so the
// collectors (capture, ipsec_layout, ipsec_marking) and the suites share them without depending on each
// other, and kAll lists them for the report's schema.
#pragma once

namespace kmesh::e2e::disagreement {

// ---- authorization (e2e/framework/expect.h judges a probe) -------------------------------------------
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
// Where the Env can watch the server pod's veth (drop_proof.h), a denial must be proven by the kernel.
inline constexpr const char* kDropNotProven = "drop_not_proven";
// km_auth_res while an allowed connection is open (contract §2) and after it closes.
inline constexpr const char* kAllowEntryMissing = "allow_entry_missing";  // ALLOW matched, nothing cached
inline constexpr const char* kUnexpectedOpenEntry =
    "unexpected_open_entry";  // cached where nothing should be
inline constexpr const char* kAllowEntryNotCleared = "allow_entry_not_cleared";  // still there after close
// The policy-realized barrier gave up: the policy never showed up in the maps Kmesh reads (km_authz_policy,
// km_wlpolicy), so no probe was made.
inline constexpr const char* kPolicyNotRealized = "policy_not_realized";
// A Kmesh map holds more entries than before the case (a residue check of the suite).
inline constexpr const char* kMapResidue = "map_residue";

// ---- IPsec (e2e/ipsec; the collectors below set them on what they find) -------------------------------
// ipsec_marking: Kmesh's tc programs and km_nodeinfo (kmesh-facts.md §3.6).
inline constexpr const char* kTcNotAttached = "tc_not_attached";  // missing, another program, not Kmesh's
inline constexpr const char* kTcFilterWrong = "tc_filter_wrong";  // attached, but not as Kmesh attaches it
inline constexpr const char* kNodeinfoEntryMissing = "nodeinfo_entry_missing";  // a peer pod CIDR absent
inline constexpr const char* kNodeinfoEntryExtra = "nodeinfo_entry_extra";      // a CIDR of no peer
// The attached tc_mark_encrypt, run by the kernel on a packet to a peer pod, did not set Kmesh's 0xe0.
inline constexpr const char* kMarkMissing = "mark_missing";
// ipsec_layout: both nodes' xfrm against Kmesh's layout (kmesh-facts.md §3.3-3.4).
inline constexpr const char* kXfrmStateMissing = "xfrm_state_missing";
inline constexpr const char* kXfrmStateExtra = "xfrm_state_extra";  // extra or stale (an SPI Kmesh dropped)
inline constexpr const char* kXfrmStateWrong = "xfrm_state_wrong";  // a field Kmesh sets otherwise
inline constexpr const char* kXfrmPolicyMissing = "xfrm_policy_missing";
inline constexpr const char* kXfrmPolicyExtra = "xfrm_policy_extra";  // extra or duplicate
inline constexpr const char* kXfrmPolicyWrong = "xfrm_policy_wrong";
// A key is not the one derived from the secret, or the two ends of a direction hold different keys.
inline constexpr const char* kKeyFingerprintMismatch = "key_fingerprint_mismatch";
inline constexpr const char* kKeyUnverifiable = "key_unverifiable";  // a state of an SPI with no secret
// The nodes did not reach the new SPI after a secret change (KmeshNodeInfo or the egress state).
inline constexpr const char* kRotationNotApplied = "rotation_not_applied";
// capture: the probe's own connection on the underlay.
inline constexpr const char* kPlaintextOnWire = "plaintext_on_wire";  // its packets or marker in clear
inline constexpr const char* kEspNotSeen = "esp_not_seen";  // no ESP with the receiver's SPI carrying it
inline constexpr const char* kEspAuthFailed = "esp_auth_failed";  // ESP that the derived key cannot open
inline constexpr const char* kSanityCaptureBlind = "sanity_capture_blind";  // the leak filter saw nothing
// xfrm_stat error counters rose; continuous traffic had failures.
inline constexpr const char* kXfrmErrorsRaised = "xfrm_errors_raised";
inline constexpr const char* kContinuityBroken = "continuity_broken";

// Every code above, for the evidence schema (tools/report reads it) and the tests that check it.
inline constexpr const char* kAll[] = {
    kRequestNotServed,     kDenyCached,
    kXdpNotAttached,       kSynNotDropped,
    kVerdictEntryMissing,  kVerdictUnexpectedlyCached,
    kDecidedInXdp,         kNotDeniedAfterHandshake,
    kWaypointDidNotDeny,   kXdpDecidedL7,
    kDropNotProven,        kAllowEntryMissing,
    kUnexpectedOpenEntry,  kAllowEntryNotCleared,
    kPolicyNotRealized,    kMapResidue,
    kTcNotAttached,        kTcFilterWrong,
    kNodeinfoEntryMissing, kNodeinfoEntryExtra,
    kMarkMissing,          kXfrmStateMissing,
    kXfrmStateExtra,       kXfrmStateWrong,
    kXfrmPolicyMissing,    kXfrmPolicyExtra,
    kXfrmPolicyWrong,      kKeyFingerprintMismatch,
    kKeyUnverifiable,      kRotationNotApplied,
    kPlaintextOnWire,      kEspNotSeen,
    kEspAuthFailed,        kSanityCaptureBlind,
    kXfrmErrorsRaised,     kContinuityBroken,
};

}  // namespace kmesh::e2e::disagreement
