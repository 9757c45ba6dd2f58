// The evidence schema, in one place: the sections of an evidence bundle (evidence.json, written by Case and
// the suites) and of e2e/mutation's score (mutation.json), with the fields the report reads in each, and
// the disagreement codes (disagreement.h). The writers use these names; tools/report reads the same table
// as e2e/framework/evidence_schema.json, which //e2e/framework:evidence_schema prints from this header and
// tools/report's test checks against it (so the report reads the schema instead of guessing).
#pragma once

#include <string>

namespace kmesh::e2e::evidence {

// Top-level fields of a bundle that Case itself writes.
inline constexpr const char* kSuite = "suite";
inline constexpr const char* kTitle = "title";
inline constexpr const char* kEnv = "env";
inline constexpr const char* kPassed = "passed";
inline constexpr const char* kStarted = "started";
inline constexpr const char* kFinished = "finished";
inline constexpr const char* kFailures = "failures";
inline constexpr const char* kCatch2Failures = "catch2_failures";
inline constexpr const char* kNotes = "notes";
inline constexpr const char* kDisagreements = "disagreements";
inline constexpr const char* kFaultRun = "fault_run";
inline constexpr const char* kLabFaults = "lab_faults";

// The fields that name a bundle: one without them cannot be shown as a case (the report says why).
inline constexpr const char* kIdentity[] = {kSuite, kTitle, kPassed};

// One section of a document: its name, its JSON shape, whether every document has it, who writes it, what
// it holds, and the fields of each entry (of an object, or of each element of a list) the report reads
// ("" ends the list).
struct Section {
  const char* name;
  const char* shape;  // "string", "bool", "int", "object", "list of objects", "list of strings", "any"
  bool required;
  const char* written_by;
  const char* what;
  const char* fields[24];
};

inline constexpr Section kBundle[] = {
    {kSuite, "string", true, "Case", "the suite (authz, ipsec, mutation, ...)", {}},
    {kTitle, "string", true, "Case", "the case's title (the Catch2 case, or its table row)", {}},
    {kEnv, "string", true, "Case", "the Env it ran on: lab, kube", {}},
    {kPassed, "bool", true, "Case", "no Fail() and no Catch2 failure while the bundle was open", {}},
    {kStarted, "int", true, "Case", "ms since the epoch", {}},
    {kFinished, "int", true, "Case", "ms since the epoch", {}},
    {kFailures, "list of strings", true, "Case::Fail", "the failure paragraphs", {}},
    {kCatch2Failures,
     "list of objects",
     true,
     "Case (Catch2 listener)",
     "what Catch2 reported",
     {"kind", "where", "text"}},
    {kNotes, "list of strings", true, "Case::Note", "lines for people", {}},
    {kDisagreements,
     "list of strings",
     false,
     "Case::AddDisagreement",
     "disagreement codes (disagreement.h), each once",
     {}},
    {kFaultRun,
     "string",
     false,
     "Case (KMESH_E2E_FAULT_RUN)",
     "the e2e/mutation run it was written under: a fault's id, or control",
     {}},
    {kLabFaults, "string", false, "Case (KMESH_E2E_LAB_FAULTS)", "lab faults injected on purpose", {}},
    {"datapath",
     "object",
     false,
     "Env::DatapathIdentity",
     "the Kmesh build and each node's programs",
     {"datapath", "kmesh_commit", "pinned_commit", "tree", "tree_found_by", "tree_digest", "object",
      "object_sha256", "clang", "patches", "userspace", "waypoint", "nodes", "describe", "sockops_object"}},
    {"family", "string", false, "e2e/authz", "ipv4 or ipv6", {}},
    {"mechanism", "string", false, "e2e/authz", "who must decide: XDP, Kmesh userspace, waypoint", {}},
    {"kmesh_defect",
     "object",
     false,
     "the suites",
     "the Kmesh defect the case reproduces",
     {"code", "what", "kmesh_source"}},
    {"policies",
     "list of objects",
     false,
     "e2e/authz",
     "each policy applied and its realized evidence",
     {"id_key", "policy_id", "mechanism", "origin", "realized", "waited_ms", "manifest"}},
    {"probes",
     "list of objects",
     false,
     "expect.cc, ipsec_expect.cc",
     "each probe: client outcome paired with the kernel's evidence",
     {"label", "client", "server", "expected", "outcome", "tuple", "km_auth_res_after", "xdp", "passed",
      "disagree", "userspace", "disagreement_codes", "sanity", "underlay"}},
    {"residue", "object", false, "e2e/authz", "map -> {baseline, after} entry counts that differ", {}},
    {"km_wlpolicy_after_removal", "any", false, "e2e/authz", "what km_wlpolicy still holds", {}},
    {"secrets", "list of objects", false, "e2e/ipsec", "each secret applied, as a fingerprint", {}},
    {"layouts",
     "list of objects",
     false,
     "ipsec_expect.cc",
     "both nodes' xfrm against Kmesh's layout",
     {"label", "spi", "waited_ms", "report", "nodes"}},
    {"layout",
     "object",
     false,
     "(older bundles)",
     "one layout",
     {"label", "spi", "waited_ms", "report", "nodes"}},
    {"marking",
     "list of objects",
     false,
     "ipsec_expect.cc",
     "Kmesh's tc marking per node",
     {"label", "node", "marking", "mark_runs", "problems"}},
    {"xfrm_diffs",
     "list of objects",
     false,
     "ipsec_expect.cc",
     "xfrm changes per node",
     {"label", "node", "diff"}},
    {"xfrm_diff", "object", false, "(older bundles)", "one xfrm diff", {}},
    {"xfrm_stat_delta", "object", false, "(older bundles)", "xfrm_stat counters before -> after", {}},
    {"captures", "list of objects", false, "e2e/ipsec", "capture summaries", {}},
    {"load",
     "object",
     false,
     "e2e/ipsec",
     "continuous load: totals and one record per request",
     {"requests", "failures", "longest_failure_streak", "elapsed_ms", "max_lag_ms", "records"}},
    {"rotation_ms", "int", false, "e2e/ipsec", "secret applied -> layout converged", {}},
    {"mutation", "object", false, "e2e/mutation", "the score document (mutation.json)", {}},
};

// e2e/mutation's score (its README, "mutation.json").
inline constexpr const char* kMutationKind = "kmesh-e2e mutation score";
inline constexpr Section kMutation[] = {
    {"kind", "string", true, "e2e/mutation", "\"kmesh-e2e mutation score\"", {}},
    {"version", "int", true, "e2e/mutation", "1", {}},
    {"control",
     "object",
     true,
     "e2e/mutation",
     "the run with no fault",
     {"passed", "problems", "exit_code", "seconds", "cases", "outputs"}},
    {"faults",
     "list of objects",
     true,
     "e2e/mutation",
     "one row per fault",
     {"id",
      "kind",
      "suite",
      "what",
      "kmesh_source",
      "inject",
      "cases",
      "expected_codes",
      "status",
      "killed",
      "caught_by",
      "other_failures",
      "detail",
      "equivalent",
      "survivor",
      "seconds",
      "exit_code",
      "outputs",
      "patch",
      "object",
      "object_sha256",
      "policy_check_verified_insns"}},
    {"score",
     "object",
     true,
     "e2e/mutation",
     "killed / total, equivalents and survivors apart",
     {"scored", "killed", "total", "equivalent", "known_survivors", "text"}},
    {"elapsed_seconds", "float", true, "e2e/mutation", "the whole test", {}},
};

// The schema as JSON (what e2e/framework/evidence_schema.json holds).
std::string SchemaJson();

}  // namespace kmesh::e2e::evidence
