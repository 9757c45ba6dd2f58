// Expectations that pair what the client saw with what the kernel holds. A denied request is not
// "the probe failed": it is the expected mechanism's outcome *and* its kernel evidence for that exact
// tuple. Each judgement carries a paragraph for people: what was expected, what the client saw, what the
// kernel held, and which of them disagree.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/framework/case.h"
#include "base/disagreement.h"
#include "e2e/framework/env.h"

namespace kmesh::e2e {

enum class Want { kAllowed, kDenied };

// Disagreement codes (disagreement.h): what a failed judgement found, machine-readable.

struct AuthzExpect {
  Want want = Want::kAllowed;
  Mechanism mechanism = Mechanism::kXdp;
  // For an XDP denial: true when a DENY policy matched (km_auth_res caches 1); false for an ALLOW
  // policy that matched nothing (Kmesh drops every SYN and caches nothing).
  // For a userspace denial: true with authz offload on (Kmesh's default): the verdict stays in km_auth_res
  // and xdp_authz drops the connection's later packets. false with authz offload off (`kmeshctl authz
  // disable`): xdp_shutdown_in_userspace consumes the verdict (xdp.c:29-45) and turns the client's next
  // segment into a RST (xdp.c:19-25, 138-139), so the client sees a reset and nothing is left.
  bool cached = true;
  // For an allowed request: the status the app itself returns for it (httpbin: 200 for /get, /headers).
  // "Allowed" is that answer, not any status below 400.
  int status = 200;
  // For an allowed request: what km_auth_res holds for the tuple while the connection is open
  // (docs/kmesh-offload-contract.md §2). kAllow: an ALLOW policy matched in XDP, which caches 0, and
  // Kmesh's sockops deletes it when the connection closes. kNone: XDP matched nothing, or deferred to
  // userspace (which writes only denies). Read only where the probe can call back before closing (the
  // lab's in-process probe); on the curl path (kube) the evidence says it could not be read.
  enum class WhileOpen { kNotChecked, kAllow, kNone };
  WhileOpen while_open = WhileOpen::kNotChecked;

  std::string Describe() const;  // "denied by XDP: connect_timeout, km_auth_res = DENY, xdp_authz attached"
};

struct Judgement {
  bool ok = false;
  std::vector<std::string> codes;  // disagreement codes, empty when ok
  std::string explanation;         // empty when ok
  nlohmann::json evidence;
  // From the probe's start until every piece of evidence was in: the time to this verdict.
  std::chrono::microseconds verdict_time{0};
};

struct JudgeOptions {
  // Watch the server pod's veth and let a proven XDP drop end the probe's wait (where the Env can:
  // Env::PodLinkOf). false: the timeout method (the client's bound, then the maps); bench_lab compares.
  bool prove_drops = true;
  // Where the watch's captures are saved ("" = not saved).
  std::string save_dir;
};

// One new connection from `client` to `server` (spec as for Env::Probe), then the kernel evidence for
// that tuple (km_auth_res after, and while open for an allowed one; the proof of an XDP drop for a
// denied one) and the server's XDP attachment, judged against `want`. Nothing is recorded.
Judgement JudgeProbe(Env& env, const App& client, const App& server, ProbeSpec spec, const AuthzExpect& want,
                     const std::string& label, const JudgeOptions& options);

// JudgeProbe, recorded in the case as a probe (its captures saved beside the case's evidence); a
// disagreement fails the case with the pairing paragraph.
Judgement ProbeAndJudge(Env& env, Case& c, const App& client, const App& server, ProbeSpec spec,
                        const AuthzExpect& want, const std::string& label);

}  // namespace kmesh::e2e
