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
  std::string explanation;  // empty when ok
  nlohmann::json evidence;
};

// One new connection from `client` to `server` (spec as for Env::Probe), then the kernel evidence for
// that tuple and the server's XDP attachment; judged against `want` and recorded in the case as a probe.
Judgement ProbeAndJudge(Env& env, Case& c, const App& client, const App& server, ProbeSpec spec,
                        const AuthzExpect& want, const std::string& label);

}  // namespace kmesh::e2e
