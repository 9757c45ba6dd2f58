#include "e2e/conformance/oracle.h"

#include <algorithm>

#include "e2e/conformance/generator.h"

namespace kmesh::conformance {

namespace pol = kmesh::policy;

const char* ToString(Expected e) {
  switch (e) {
    case Expected::kDrop:
      return "drop";
    case Expected::kPass:
      return "pass";
    case Expected::kDefer:
      return "defer";
  }
  return "?";
}

bool CacheRule::Allows(std::optional<bpf_probe::Verdict> v) const {
  if (!v) return none_ok;
  return *v == bpf_probe::Verdict::kDeny ? deny_ok : *v == bpf_probe::Verdict::kAllow ? allow_ok : false;
}

std::string CacheRule::ToString() const {
  std::vector<std::string> ok;
  if (deny_ok) ok.push_back("DENY");
  if (allow_ok) ok.push_back("ALLOW");
  if (none_ok) ok.push_back("no entry");
  std::string out;
  for (size_t i = 0; i < ok.size(); ++i) out += (i == 0 ? "" : i + 1 == ok.size() ? " or " : ", ") + ok[i];
  return out;
}

std::string Identity::ToString() const { return ns.empty() ? "no identity" : principal; }

const std::vector<Identity>& IdentityDomain() {
  static const std::vector<Identity> domain = [] {
    // Every namespace word, and one unknown word for each prefix/suffix combination the generator's
    // patterns use ("ns-*", "*-a", ...), so each combination of pattern outcomes has a witness.
    std::vector<std::string> namespaces = NamespaceWords();
    for (const char* p : {"", "ns-", "test-"}) {
      for (const char* s : {"", "-a", "-b"}) namespaces.push_back(std::string(p) + "x" + s);
    }
    std::vector<std::string> accounts = ServiceAccountWords();
    accounts.push_back("sa-x");
    std::vector<Identity> out = {Identity{"", ""}};
    for (const auto& ns : namespaces) {
      for (const auto& sa : accounts) out.push_back(Identity{ns, PrincipalOf(ns, sa)});
    }
    return out;
  }();
  return domain;
}

pol::Request ToRequest(const Connection& conn, const Identity& id) {
  pol::Request r;
  r.http = false;
  // ::ffff:a.b.c.d folds to IPv4, as Istio matches a dual-stack peer.
  r.source_ip = conn.tuple.src.ip.Unmapped();
  r.destination_ip = conn.tuple.dst.ip.Unmapped();
  r.destination_port = conn.tuple.dst.port;
  r.source_namespace = id.ns;
  r.source_principal = id.principal;
  return r;
}

std::vector<Identity> Representatives(const std::vector<pol::AuthorizationPolicy>& policies) {
  using K = pol::ConditionKey::Kind;
  std::vector<std::string> ns_patterns, principal_patterns;
  auto add = [](std::vector<std::string>& to, const std::vector<std::string>& from) {
    to.insert(to.end(), from.begin(), from.end());
  };
  for (const auto& p : policies) {
    for (const auto& rule : p.rules) {
      for (const auto& s : rule.from) {
        add(ns_patterns, s.namespaces);
        add(ns_patterns, s.not_namespaces);
        add(principal_patterns, s.principals);
        add(principal_patterns, s.not_principals);
      }
      for (const auto& c : rule.when) {
        if (c.key.kind == K::kSourceNamespace) {
          add(ns_patterns, c.values);
          add(ns_patterns, c.not_values);
        } else if (c.key.kind == K::kSourcePrincipal) {
          add(principal_patterns, c.values);
          add(principal_patterns, c.not_values);
        }
      }
    }
  }
  const auto& domain = IdentityDomain();
  if (ns_patterns.empty() && principal_patterns.empty()) return {domain.front()};
  std::vector<Identity> out;
  std::vector<std::vector<bool>> seen;
  for (const auto& id : domain) {
    std::vector<bool> signature;
    for (const auto& p : ns_patterns) signature.push_back(pol::StringMatch(p, id.ns));
    for (const auto& p : principal_patterns) signature.push_back(pol::StringMatch(p, id.principal));
    if (std::find(seen.begin(), seen.end(), signature) != seen.end()) continue;
    seen.push_back(std::move(signature));
    out.push_back(id);
  }
  return out;
}

Oracle::Oracle(const Case& c) : applying_(ApplyingPolicies(c)), identities_(Representatives(applying_)) {}

IstioAnswer Oracle::Judge(const Connection& conn) const {
  const auto key = std::make_tuple(conn.tuple.src.ip, conn.tuple.dst.ip, conn.tuple.dst.port);
  if (auto it = answers_.find(key); it != answers_.end()) return it->second;
  IstioAnswer& a = answers_[key];
  int deny_matched = 0;  // identities denied because a DENY policy matched
  for (const Identity& id : identities_) {
    const pol::Decision d = pol::Evaluate(applying_, ToRequest(conn, id));
    ++a.identities;
    if (d.allowed()) {
      if (!a.an_allow) {
        a.an_allow = d;
        a.allow_identity = id.ToString();
      }
      continue;
    }
    ++a.denied;
    if (!d.policy.empty()) ++deny_matched;
    if (!a.a_deny) {
      a.a_deny = d;
      a.deny_identity = id.ToString();
    }
  }
  if (a.denied == a.identities) {
    a.expected = Expected::kDrop;
    a.cache.deny_ok = deny_matched > 0;
    a.cache.none_ok = deny_matched < a.identities;
  } else if (a.denied == 0) {
    a.expected = Expected::kPass;
    a.cache.allow_ok = true;
    a.cache.none_ok = true;
  } else {
    a.expected = Expected::kDefer;
    a.cache.none_ok = true;
  }
  return a;
}

std::string IstioAnswer::Describe() const {
  const std::string asked =
      std::to_string(identities) + (identities == 1 ? " identity class" : " identity classes");
  switch (expected) {
    case Expected::kDrop:
      return "Istio denies for every source identity (" + asked + " asked): " + a_deny->reason;
    case Expected::kPass:
      return "Istio allows for every source identity (" + asked + " asked): " + an_allow->reason;
    case Expected::kDefer:
      return "Istio's verdict depends on the source identity, which only userspace knows (" +
             std::to_string(denied) + " of " + asked + " denied): deny for " + deny_identity + " (" +
             a_deny->reason + "), allow for " + allow_identity + " (" + an_allow->reason + ")";
  }
  return "";
}

}  // namespace kmesh::conformance
