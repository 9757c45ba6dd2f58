#include "e2e/mutation/faults.h"

#include <set>

#include "base/error.h"
#include "e2e/framework/expect.h"

namespace kmesh::mutation {
namespace {

namespace code = e2e::disagreement;

// Cases of the authz suite (e2e/authz/authz_test.cc), by their Catch2 names.
const char* const kIpDenySelected = "authz/ip-deny: selected client";
const char* const kIpDenyOther = "authz/ip-deny: other client";
const char* const kIpAllowSelected = "authz/ip-allow: selected client";
const char* const kIpAllowOther = "authz/ip-allow: other client";
const char* const kPortDenyListed = "authz/port-deny: listed port";
const char* const kCidrOutside = "authz/ip-cidr-deny: client outside the CIDR";
const char* const kExceptNotIp = "authz/ip-blocks-except-deny: client also in notIpBlocks";
const char* const kNotPortsListed = "authz/not-ports-deny: port in notPorts";
const char* const kFourthPolicy = "authz/four-policies: client denied by the 4th";
const char* const kFromAndToOtherPort = "authz/from-and-to-deny: client, other port";
const char* const kFromAndToOtherClient = "authz/from-and-to-deny: port, other client";
const char* const kNamespaceAllowOther = "authz/namespace-allow: other namespace";
const char* const kHeaderDenyPresent = "authz/header-deny: header present";
const char* const kNamespaceAndIpOther = "authz/namespace-and-ip-allow: other namespace and address";
const char* const kDestinationIpDeny = "authz/destination-ip-deny: server's own address";
const char* const kTcArgsAfterMatch =
    "authz/tcargs-after-match: a connection a policy matched leaves nothing in km_tcargs";
const char* const kOffloadOffNamespaceAllow =
    "authz/offload-off-namespace-allow: with authz offload off, a userspace deny resets the connection";
// Cases of the IPsec suite (e2e/ipsec/ipsec_test.cc).
const char* const kIpsecConnectivity = "ipsec: connectivity across nodes is encrypted in Kmesh's layout";
const char* const kIpsecRotation = "ipsec: key rotation under continuous traffic";

using Strings = std::vector<std::string>;

FaultSpec Fault(FaultKind kind, Program program, Suite suite, std::string id, std::string what,
                std::string source, Strings cases, Strings codes, std::string equivalent = "") {
  FaultSpec f;
  f.id = std::move(id);
  f.kind = kind;
  f.program = program;
  f.suite = suite;
  f.what = std::move(what);
  f.kmesh_source = std::move(source);
  f.cases = std::move(cases);
  f.codes = std::move(codes);
  f.equivalent = std::move(equivalent);
  return f;
}
FaultSpec Runtime(std::string id, std::string what, std::string source, Strings cases, Strings codes) {
  return Fault(FaultKind::kRuntime, Program::kXdp, Suite::kAuthz, id, what, source, cases, codes);
}
FaultSpec Source(std::string id, std::string what, std::string source, Strings cases, Strings codes) {
  return Fault(FaultKind::kSource, Program::kXdp, Suite::kAuthz, id, what, source, cases, codes);
}
FaultSpec Sockops(std::string id, std::string what, std::string source, Strings cases, Strings codes) {
  return Fault(FaultKind::kSource, Program::kSockops, Suite::kAuthz, id, what, source, cases, codes);
}
// The IPsec suite's faults: the lab's agent (e2e/lab/ipsec_agent.cc) breaks what Kmesh's IPsec controller
// does, on node2 (the server's node); a mutant of Kmesh's tc_mark_encrypt is loaded by both nodes' agents.
FaultSpec IpsecRuntime(std::string id, std::string what, std::string source, Strings cases, Strings codes) {
  return Fault(FaultKind::kRuntime, Program::kXdp, Suite::kIpsec, id, what, source, cases, codes);
}
FaultSpec TcEncrypt(std::string id, std::string what, std::string source, Strings cases, Strings codes) {
  return Fault(FaultKind::kSource, Program::kTcEncrypt, Suite::kIpsec, id, what, source, cases, codes);
}
// A mutant no case can tell from Kmesh's code; `why` says so with Kmesh file:line.
FaultSpec Equivalent(std::string id, std::string what, std::string source, Strings cases, Strings codes,
                     std::string why) {
  return Fault(FaultKind::kSource, Program::kXdp, Suite::kAuthz, id, what, source, cases, codes, why);
}

// Per Kmesh object a source mutant changes: its stem (a mutant is e2e/mutation/<stem>_<id>.o), Kmesh's
// own object and the variable that makes the lab load the mutant instead.
struct ObjectFiles {
  const char* stem;
  const char* kmesh_object;
  const char* env;
};
ObjectFiles FilesOf(Program p) {
  switch (p) {
    case Program::kXdp:
      return {"xdp", "third_party/kmesh/xdp.o", "KMESH_E2E_LAB_XDP_OBJECT"};
    case Program::kSockops:
      return {"sockops", "third_party/kmesh/sockops.o", "KMESH_E2E_LAB_SOCKOPS_OBJECT"};
    case Program::kTcEncrypt:
      return {"tc_encrypt", "third_party/kmesh/tc_mark_encrypt.o", "KMESH_E2E_LAB_TC_ENCRYPT_OBJECT"};
  }
  throw Error("unknown Program " + std::to_string(static_cast<int>(p)));
}

}  // namespace

const char* ToString(FaultKind k) { return k == FaultKind::kRuntime ? "runtime" : "source"; }

const char* ToString(Suite s) { return s == Suite::kAuthz ? "authz" : "ipsec"; }

Suite ParseSuite(const std::string& name) {
  if (name == "authz" || name.empty()) return Suite::kAuthz;
  if (name == "ipsec") return Suite::kIpsec;
  throw Error("KMESH_E2E_MUTATION_SUITE is \"" + name + "\"; expected authz or ipsec");
}

std::string SuiteBinary(Suite suite) {
  // The IPsec suite's Catch2 binary itself (kmesh_vm_test's guest binary): the mutation test already runs
  // in the guest.
  return suite == Suite::kAuthz ? "e2e/authz/authz_test" : "e2e/ipsec/ipsec_test_guest_binary";
}

std::string FaultSpec::object() const {
  if (kind != FaultKind::kSource) return "";
  return std::string("e2e/mutation/") + FilesOf(program).stem + "_" + id + ".o";
}

std::string FaultSpec::kmesh_object() const {
  return kind == FaultKind::kSource ? FilesOf(program).kmesh_object : "";
}

std::string FaultSpec::inject_env() const {
  if (kind != FaultKind::kSource) return "KMESH_E2E_LAB_FAULTS=" + id;
  return std::string(FilesOf(program).env) + "=" + object();
}

std::vector<FaultSpec> FaultsOf(Suite suite) {
  std::vector<FaultSpec> out;
  for (const auto& f : Faults()) {
    if (f.suite == suite) out.push_back(f);
  }
  return out;
}

const std::vector<FaultSpec>& Faults() {
  static const std::vector<FaultSpec> faults = {
      // The running datapath (lab.h Fault). Paths are Kmesh's at the pinned commit.
      Runtime("xdp-detached", "xdp_authz detached from the server pods' eth0",
              "pkg/cni/plugin/plugin.go:126 (enableXdpAuth)", {kIpDenySelected}, {code::kXdpNotAttached}),
      Runtime("tailcall-policies-check-empty", "km_xdp_tailcall[0] (policies_check) emptied",
              "pkg/bpf/workload/xdp.go:98-103; bpf/kmesh/workload/xdp.c:117", {kIpDenySelected},
              {code::kSynNotDropped}),
      Runtime("tailcall-policy-check-empty", "km_xdp_tailcall[1] (policy_check) emptied",
              "pkg/bpf/workload/xdp.go:105-110; bpf/kmesh/workload/include/authz.h:604", {kIpDenySelected},
              {code::kSynNotDropped}),
      Runtime("authz-offload-off", "authz_offload = 0 (kmeshctl authz disable): XDP decides nothing",
              "pkg/bpf/bpf.go:313; bpf/kmesh/workload/xdp.c:83-86", {kIpDenySelected},
              {code::kSynNotDropped}),
      // The policy-realized barrier (e2e/framework/env.cc WaitInMaps) reads the workload through
      // km_frontend[server ip], as xdp_authz does: it gives up before any probe, naming km_frontend.
      Runtime("km-frontend-missing", "the servers' km_frontend entries removed",
              "pkg/controller/workload/workload_processor.go:653; bpf/kmesh/workload/xdp.c:71-75",
              {kIpDenySelected}, {code::kPolicyNotRealized}),
      Runtime("km-frontend-wrong", "the servers' km_frontend entries name another workload",
              "pkg/controller/workload/workload_processor.go:653; bpf/kmesh/workload/xdp.c:71-77",
              {kPortDenyListed}, {code::kPolicyNotRealized}),
      Runtime("km-wlpolicy-missing", "the servers' km_wlpolicy entries removed",
              "pkg/controller/workload/workload_processor.go:1178-1199", {kIpDenySelected},
              {code::kPolicyNotRealized}),
      Runtime("km-wlpolicy-hole", "the servers' km_wlpolicy entries start with an empty slot",
              "pkg/controller/workload/workload_processor.go:1178-1199; "
              "bpf/kmesh/workload/include/authz.h:572-586",
              {kIpAllowOther}, {code::kSynNotDropped}),
      Runtime("km-authz-policy-missing", "every km_authz_policy entry removed",
              "pkg/cache/v2/maps/authz.go; bpf/kmesh/workload/include/authz.h:577", {kIpDenySelected},
              {code::kPolicyNotRealized}),
      Runtime("km-authz-policy-action-flipped",
              "every km_authz_policy entry's action flipped (ALLOW <-> DENY)",
              "bpf/kmesh/workload/include/authz.h:594, 671-675", {kIpAllowSelected}, {code::kDenyCached}),
      Runtime("km-manage-missing", "the servers' km_manage entries removed: sockops never reports them",
              "bpf/include/bpf_common.h:314-330; bpf/kmesh/workload/sockops.c:182-188",
              {kNamespaceAllowOther}, {code::kNotDeniedAfterHandshake}),
      Runtime("waypoint-bypassed", "traffic to a service with a waypoint goes straight to the pod",
              "(the lab's waypoint stand-in: Envoy's RBAC filter is not Kmesh code)", {kHeaderDenyPresent},
              {code::kWaypointDidNotDeny}),

      // Source mutants of Kmesh's XDP (mutants/<id>.patch; line numbers before the patch).
      Source("verdict-cached-swapped",
             "policy_check caches ALLOW for a DENY match and DENY for an ALLOW match",
             "bpf/kmesh/workload/include/authz.h:671", {kIpDenySelected}, {code::kVerdictEntryMissing}),
      Source("auth-res-write-removed", "policy_check no longer writes km_auth_res on a match",
             "bpf/kmesh/workload/include/authz.h:672-674", {kIpDenySelected}, {code::kVerdictEntryMissing}),
      Source("deny-match-passes", "a matched DENY returns XDP_PASS (and a matched ALLOW XDP_DROP)",
             "bpf/kmesh/workload/include/authz.h:675", {kIpDenySelected}, {code::kSynNotDropped}),
      Source("cached-verdict-inverted", "xdp_authz drops on a cached ALLOW and passes on a cached DENY",
             "bpf/kmesh/workload/xdp.c:120", {kIpAllowSelected},
             // Both: the client is not served, and the cached ALLOW outlives the connection (its FIN is
             // dropped too, so sockops never sees it close).
             {code::kRequestNotServed, code::kAllowEntryNotCleared}),
      Source("unmatched-verdict-flipped",
             "when no policy matches, DENY policies drop and ALLOW policies pass (fall-through inverted)",
             "bpf/kmesh/workload/include/authz.h:677-679", {kIpAllowOther}, {code::kSynNotDropped}),
      Source("prefix-one-bit-short", "an IPv4 CIDR is compared one prefix bit short (/n as /n-1)",
             "bpf/kmesh/workload/include/authz.h:273", {kCidrOutside}, {code::kDenyCached}),
      Source("full-prefix-rejected", "a /32 (a single address) never matches: the prefix bound is off by one",
             "bpf/kmesh/workload/include/authz.h:270", {kIpDenySelected}, {code::kSynNotDropped}),
      Source("not-ips-ignored", "a client in notIpBlocks is no longer excluded",
             "bpf/kmesh/workload/include/authz.h:374-376", {kExceptNotIp}, {code::kDenyCached}),
      Source("not-ports-ignored",
             "the notPorts check is keyed on the wrong count (n_not_destination_ips): a port in notPorts is "
             "no longer excluded",
             "bpf/kmesh/workload/include/authz.h:165", {kNotPortsListed}, {code::kDenyCached}),
      Source("port-byte-order", "destination ports compared in network byte order",
             "bpf/kmesh/workload/include/authz.h:198", {kPortDenyListed}, {code::kSynNotDropped}),
      Source("policy-loop-one-short", "a workload's 4th policy is never evaluated (policy bound off by one)",
             "bpf/kmesh/workload/include/authz.h:572-577", {kFourthPolicy}, {code::kSynNotDropped}),
      Source("rule-loop-one-short", "policy_check stops one rule early: a one-rule policy never matches",
             "bpf/kmesh/workload/include/authz.h:632-635", {kIpDenySelected}, {code::kSynNotDropped}),
      Source("src-or-dst-ip", "source and destination addresses ORed instead of ANDed",
             "bpf/kmesh/workload/include/authz.h:450", {kIpDenyOther}, {code::kDenyCached}),
      Source("ports-or-ips", "a match's ports and addresses ORed instead of ANDed",
             "bpf/kmesh/workload/include/authz.h:459", {kFromAndToOtherPort}, {code::kDenyCached}),
      Source("clauses-ored", "a rule's clauses (from, to) ORed instead of ANDed",
             "bpf/kmesh/workload/include/authz.h:530-543", {kFromAndToOtherClient}, {code::kDenyCached}),
      Source("frontend-by-source", "xdp_authz looks up the workload by the packet's source address",
             "bpf/kmesh/workload/xdp.c:64-65", {kIpDenySelected}, {code::kSynNotDropped}),
      Source("tuple-sport-network-order",
             "the tuple's source port is kept in network order: km_auth_res keys no longer match sockops'",
             "bpf/kmesh/workload/include/authz.h:122", {kIpDenySelected}, {code::kVerdictEntryMissing}),
      Source("dst-ip-compares-source", "destination addresses are compared with the packet's source",
             "bpf/kmesh/workload/include/authz.h:268", {kDestinationIpDeny}, {code::kSynNotDropped}),
      Source("verdict-cache-ignored", "xdp_authz never reads km_auth_res: userspace denies go unenforced",
             "bpf/kmesh/workload/xdp.c:101, 119-121", {kNamespaceAllowOther},
             {code::kNotDeniedAfterHandshake}),
      Source("tcargs-kept-on-match", "policy_check leaves the tail-call context in km_tcargs on a match",
             "bpf/kmesh/workload/include/authz.h:668-670", {kTcArgsAfterMatch}, {code::kMapResidue}),
      Source("userspace-deferral-dropped",
             "a policy whose unmatched source names a namespace is decided in XDP instead of deferred",
             "bpf/kmesh/workload/include/authz.h:582-585", {kNamespaceAndIpOther}, {code::kDecidedInXdp}),
      Equivalent(
          "userspace-tailcall-to-pass",
          "the deferral passes the packet itself instead of tail-calling xdp_shutdown_in_userspace",
          "bpf/kmesh/workload/include/authz.h:582-585", {kNamespaceAndIpOther},
          {code::kNotDeniedAfterHandshake, code::kDecidedInXdp},
          "with authz_offload = 1 (Kmesh's default, pkg/bpf/bpf.go:313) xdp_shutdown_in_userspace is reached "
          "only for a tuple xdp_authz just found no km_auth_res entry for (xdp.c:101-118), so its own "
          "lookup (xdp.c:29) finds none either and it returns XDP_PASS (xdp.c:143), as the mutant does; "
          "they differ only if userspace writes the verdict between the two lookups"),
      // Only authz_offload = 0 (kmeshctl authz disable) runs xdp_shutdown_in_userspace on a denied tuple
      // (xdp.c:83-86, 138-139); with the default, xdp_authz drops it first (xdp.c:119-121). The mutant's
      // flagless segment is dropped by the server, the verdict is gone, and the retransmission is served.
      Source("shutdown-no-rst", "xdp_shutdown_in_userspace clears the segment's flags but no longer sets RST",
             "bpf/kmesh/workload/xdp.c:22", {kOffloadOffNamespaceAllow}, {code::kNotDeniedAfterHandshake}),

      // Source mutants of Kmesh's sockops (the userspace half's input, and the cleanup of cached verdicts).
      Sockops("auth-request-dropped", "sockops no longer reports an accepted connection on km_auth_req",
              "bpf/kmesh/workload/sockops.c:188", {kNamespaceAllowOther}, {code::kNotDeniedAfterHandshake}),
      Sockops("auth-request-not-reversed",
              "sockops reports the connection server-to-client: userspace judges (and keys) the wrong tuple",
              "bpf/kmesh/workload/sockops.c:130", {kNamespaceAllowOther}, {code::kNotDeniedAfterHandshake}),
      Sockops("auth-entry-not-cleaned",
              "sockops no longer deletes the tuple's km_auth_res entry when the connection closes",
              "bpf/kmesh/workload/sockops.c:190-194", {kIpAllowSelected}, {code::kAllowEntryNotCleared}),

      // IPsec (scored in tools/vm's guest: this kernel has no ESP/GCM, and without an ESP state Kmesh's
      // controller never writes km_nodeinfo either, ipsec_controller.go:327-338).
      IpsecRuntime("egress-not-marked", "tc_mark_encrypt not attached to node2's pod veths",
                   "pkg/controller/manage/manage_controller.go:265 (linkTc), 516-544", {kIpsecConnectivity},
                   {code::kTcNotAttached, code::kPlaintextOnWire}),
      IpsecRuntime("nodeinfo-entry-missing", "node2's km_nodeinfo lacks the peer's pod CIDR",
                   "pkg/controller/encryption/ipsec/ipsec_controller.go:334-338 (updateKNIMapCIDR); "
                   "bpf/kmesh/general/include/tc.h:88",
                   {kIpsecConnectivity},
                   {code::kNodeinfoEntryMissing, code::kMarkMissing, code::kPlaintextOnWire}),
      IpsecRuntime("xfrm-state-missing", "node2's ingress xfrm state of the current SPI deleted",
                   "pkg/controller/encryption/ipsec/ipsec_handler.go:197-205 (the ingress createStateRule)",
                   {kIpsecConnectivity}, {code::kXfrmStateMissing}),
      IpsecRuntime("wrong-key", "node2 derives its egress key from a wrong secret",
                   "pkg/controller/encryption/ipsec/ipsec_handler.go:136-147, 239 (generateIPSecKey)",
                   {kIpsecConnectivity}, {code::kKeyFingerprintMismatch}),
      IpsecRuntime("rotation-not-applied", "node2 ignores a new secret (keeps the old SPI and keys)",
                   "pkg/controller/encryption/ipsec/ipsec_controller.go:469-500 (handleIpsecUpdate)",
                   {kIpsecRotation}, {code::kRotationNotApplied}),
      TcEncrypt("encrypt-mark-changed", "tc_mark_encrypt sets mark 0xe1 instead of 0xe0",
                "bpf/kmesh/general/tc_mark_encrypt.c:26", {kIpsecConnectivity},
                {code::kMarkMissing, code::kPlaintextOnWire}),
  };
  return faults;
}

void CheckFaults(const std::vector<FaultSpec>& faults) {
  std::set<std::string> ids;
  for (size_t i = 0; i < faults.size(); ++i) {
    const FaultSpec& f = faults[i];
    const std::string where = "fault #" + std::to_string(i + 1) + " (" + f.id + ") of e2e/mutation/faults.cc";
    if (f.id.empty()) throw Error(where + " has no id");
    if (!ids.insert(f.id).second) throw Error(where + ": the id is used twice");
    if (f.cases.empty()) throw Error(where + " names no case that must catch it");
    if (f.codes.empty()) throw Error(where + " names no disagreement code it must produce");
    if (!f.equivalent.empty() && f.kind != FaultKind::kSource)
      throw Error(where + ": only a mutant is equivalent");
    if (!f.equivalent.empty() && !f.survivor.empty())
      throw Error(where + ": equivalent or a known survivor, not both");
  }
}

}  // namespace kmesh::mutation
