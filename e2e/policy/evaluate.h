// Istio's authorization decision over a set of AuthorizationPolicies, as a reference the lab's waypoint
// enforces and the suites derive their expectations from:
//   1. any DENY policy matches  -> deny
//   2. no ALLOW policy at all   -> allow
//   3. any ALLOW policy matches -> allow
//   4. otherwise                -> deny
// (Kmesh's XDP program differs: it evaluates policies in km_wlpolicy order and the first match wins, see
// kmesh-facts.md §1.4. Suites that care about that order say so explicitly; this is Istio's answer.)
//
// The caller passes the policies that apply to the destination (AppliesToWorkload / TargetsService help
// choose them). A policy using something the lab cannot evaluate (request.auth.*, ..., and
// source.principals unless the request carries a principal) makes Evaluate throw, never guess: see
// support.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "e2e/policy/policy.h"
#include "net/ip.h"

namespace kmesh::policy {

// HTTP request headers: names compare case-insensitively; a repeated header reads as its values joined
// by "," (as Envoy presents them to its RBAC filter).
class Headers {
 public:
  Headers() = default;
  Headers(std::initializer_list<std::pair<std::string, std::string>> list);
  void Add(const std::string& name, const std::string& value);
  std::optional<std::string> Get(const std::string& name) const;
  const std::vector<std::pair<std::string, std::string>>& all() const { return list_; }

 private:
  std::vector<std::pair<std::string, std::string>> list_;
};

// One connection or HTTP request as the destination sees it.
struct Request {
  net::IpAddr source_ip;
  std::string source_namespace;  // "" when the source is not a known workload
  // The source's principal as Istio matches it ("cluster.local/ns/a/sa/b", no "spiffe://"; "" when the
  // source has no identity). nullopt: the caller has none to give, and a policy that matches on
  // principals makes Evaluate throw (the lab's probes do not know one; the conformance oracle does).
  std::optional<std::string> source_principal;
  std::optional<net::IpAddr> destination_ip;  // needed only by `when: destination.ip`
  uint16_t destination_port = 0;
  // false for plain TCP (what XDP sees): then, as in Istio, a rule with HTTP-only fields (hosts, paths,
  // methods, request.headers) never matches in an ALLOW policy, and those fields are ignored in a DENY
  // policy (the rest of the rule still applies, which denies more, never less).
  bool http = true;
  std::string host;    // Host / :authority as sent, may end in ":port"
  std::string method;  // "GET"
  std::string path;    // request target; a query string or fragment is not part of the match
  Headers headers;
};

enum class Verdict { kAllow, kDeny };
const char* VerdictName(Verdict v);  // "allow" / "deny"

struct Decision {
  Verdict verdict = Verdict::kAllow;
  std::string policy;  // IdKey() of the policy that decided; "" when no policy matched
  int rule = -1;       // index of the matching rule in that policy
  std::string reason;  // one sentence for logs and failure messages
  bool allowed() const { return verdict == Verdict::kAllow; }
};

// Istio's decision (see top). Throws kmesh::Error naming the policy and field when a policy uses
// something the lab cannot evaluate.
Decision Evaluate(const std::vector<AuthorizationPolicy>& policies, const Request& request);

// Whether one policy matches the request; `rule` receives the first matching rule's index.
bool Matches(const AuthorizationPolicy& policy, const Request& request, int* rule = nullptr);

// Istio string match: "*" = present (non-empty), "abc*" = prefix, "*abc" = suffix, else exact.
bool StringMatch(const std::string& pattern, const std::string& value);
// Host match: case-insensitive StringMatch; the request host's ":port" is ignored unless the pattern
// itself names a port ("httpbin:8000", "httpbin:*").
bool HostMatch(const std::string& pattern, const std::string& request_host);

// Istio attachment: a policy without targetRefs applies to a workload in its namespace whose labels
// include every selector label (no selector: every workload of the namespace; a policy in the root
// namespace applies mesh-wide).
bool AppliesToWorkload(const AuthorizationPolicy& policy, const std::string& workload_namespace,
                       const std::map<std::string, std::string>& workload_labels,
                       const std::string& root_namespace = "istio-system");
// A policy with targetRefs applies at the waypoint of the Services it names.
bool TargetsService(const AuthorizationPolicy& policy, const std::string& service_namespace,
                    const std::string& service_name);

}  // namespace kmesh::policy
