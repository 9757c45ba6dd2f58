#include "e2e/policy/evaluate.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "base/error.h"
#include "e2e/policy/support.h"

namespace kmesh::policy {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "host:80" -> "host", "[::1]:80" -> "[::1]", "::1" (bare IPv6, several colons) unchanged.
std::string StripPort(const std::string& host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    return close == std::string::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = host.find(':');
  if (colon == std::string::npos || host.find(':', colon + 1) != std::string::npos) return host;
  return host.substr(0, colon);
}

std::string PathOnly(const std::string& target) {
  return target.substr(0, std::min(target.find('?'), target.find('#')));
}

template <typename T, typename F>
bool Any(const std::vector<T>& list, F&& f) {
  return std::any_of(list.begin(), list.end(), std::forward<F>(f));
}

// A list field matches when empty (not set) or when any entry matches; a not-field when no entry does.
template <typename T, typename F>
bool Field(const std::vector<T>& in, const std::vector<T>& not_in, F&& match) {
  if (!in.empty() && !Any(in, match)) return false;
  if (!not_in.empty() && Any(not_in, match)) return false;
  return true;
}

bool SourceMatches(const Source& s, const Request& r) {
  auto ip = [&](const net::Cidr& c) { return c.Contains(r.source_ip); };
  auto ns = [&](const std::string& p) { return StringMatch(p, r.source_namespace); };
  // Reached only with a principal in the request (Evaluate refuses principals otherwise).
  auto principal = [&](const std::string& p) { return StringMatch(p, r.source_principal.value_or("")); };
  return Field(s.ip_blocks, s.not_ip_blocks, ip) && Field(s.namespaces, s.not_namespaces, ns) &&
         Field(s.principals, s.not_principals, principal);
}

bool HasHttpFields(const Operation& o) {
  return !(o.hosts.empty() && o.not_hosts.empty() && o.paths.empty() && o.not_paths.empty() &&
           o.methods.empty() && o.not_methods.empty());
}

bool OperationMatches(const Operation& o, const Request& r) {
  auto port = [&](uint16_t p) { return p == r.destination_port; };
  if (!Field(o.ports, o.not_ports, port)) return false;
  if (!r.http) return true;  // HTTP-only fields: see Request::http
  auto host = [&](const std::string& p) { return HostMatch(p, r.host); };
  auto path = [&](const std::string& p) { return StringMatch(p, PathOnly(r.path)); };
  auto method = [&](const std::string& p) { return StringMatch(p, r.method); };
  return Field(o.hosts, o.not_hosts, host) && Field(o.paths, o.not_paths, path) &&
         Field(o.methods, o.not_methods, method);
}

bool ConditionMatches(const Condition& c, const Request& r) {
  std::function<bool(const std::string&)> match;
  std::optional<std::string> header;
  switch (c.key.kind) {
    case ConditionKey::Kind::kRequestHeader:
      if (!r.http) return true;  // ignored for TCP (see Request::http)
      header = r.headers.Get(c.key.header);
      // An absent header matches no value, so it satisfies notValues.
      match = [&](const std::string& p) { return header.has_value() && StringMatch(p, *header); };
      break;
    case ConditionKey::Kind::kSourceIp:
      match = [&](const std::string& p) { return net::Cidr::Parse(p)->Contains(r.source_ip); };
      break;
    case ConditionKey::Kind::kDestinationIp:
      if (!r.destination_ip) throw Error("when destination.ip needs the request's destination address");
      match = [&](const std::string& p) { return net::Cidr::Parse(p)->Contains(*r.destination_ip); };
      break;
    case ConditionKey::Kind::kDestinationPort:
      match = [&](const std::string& p) { return std::stoi(p) == r.destination_port; };
      break;
    case ConditionKey::Kind::kSourceNamespace:
      match = [&](const std::string& p) { return StringMatch(p, r.source_namespace); };
      break;
    case ConditionKey::Kind::kSourcePrincipal:
      if (!r.source_principal) throw Error("the lab does not support the condition key " + c.key.text);
      match = [&](const std::string& p) { return StringMatch(p, *r.source_principal); };
      break;
    case ConditionKey::Kind::kOther: throw Error("the lab does not support the condition key " + c.key.text);
  }
  return Field(c.values, c.not_values, match);
}

bool RuleHasHttpFields(const Rule& rule) {
  return Any(rule.to, HasHttpFields) ||
         Any(rule.when, [](const Condition& c) { return c.key.kind == ConditionKey::Kind::kRequestHeader; });
}

// Istio on TCP: an ALLOW rule with HTTP-only fields is dropped (never matches, a smaller allow); in a
// DENY rule the HTTP-only fields are dropped and the rest applies (a wider deny).
bool RuleMatches(const Rule& rule, Action action, const Request& r) {
  if (!r.http && action == Action::kAllow && RuleHasHttpFields(rule)) return false;
  if (!rule.from.empty() && !Any(rule.from, [&](const Source& s) { return SourceMatches(s, r); }))
    return false;
  if (!rule.to.empty() && !Any(rule.to, [&](const Operation& o) { return OperationMatches(o, r); }))
    return false;
  return std::all_of(rule.when.begin(), rule.when.end(),
                     [&](const Condition& c) { return ConditionMatches(c, r); });
}

// What SupportedBy() marks kUnsupported, without building its report; principals are evaluable when the
// request carries one.
bool UsesUnsupported(const AuthorizationPolicy& p, bool have_principal) {
  return Any(p.rules, [&](const Rule& rule) {
    return Any(rule.from,
               [&](const Source& s) {
                 return !have_principal && (!s.principals.empty() || !s.not_principals.empty());
               }) ||
           Any(rule.when, [&](const Condition& c) {
             return (!have_principal && c.key.kind == ConditionKey::Kind::kSourcePrincipal) ||
                    c.key.kind == ConditionKey::Kind::kOther;
           });
  });
}

}  // namespace

Headers::Headers(std::initializer_list<std::pair<std::string, std::string>> list) {
  for (const auto& [k, v] : list) Add(k, v);
}

void Headers::Add(const std::string& name, const std::string& value) { list_.emplace_back(name, value); }

std::optional<std::string> Headers::Get(const std::string& name) const {
  std::optional<std::string> out;
  const std::string want = Lower(name);
  for (const auto& [k, v] : list_) {
    if (Lower(k) != want) continue;
    out = out ? *out + "," + v : v;
  }
  return out;
}

const char* VerdictName(Verdict v) { return v == Verdict::kAllow ? "allow" : "deny"; }

bool StringMatch(const std::string& pattern, const std::string& value) {
  if (pattern == "*") return !value.empty();
  if (pattern.size() > 1 && pattern.front() == '*') {
    const std::string suffix = pattern.substr(1);
    return value.size() >= suffix.size() &&
           value.compare(value.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  if (pattern.size() > 1 && pattern.back() == '*') {
    return value.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0 &&
           value.size() >= pattern.size() - 1;
  }
  return pattern == value;
}

bool HostMatch(const std::string& pattern, const std::string& request_host) {
  const std::string p = Lower(pattern);
  const std::string h = Lower(request_host);
  // A pattern naming a port (httpbin:8000, httpbin:*) compares with the port; any other ignores it.
  const bool pattern_has_port = StripPort(p) != p || (p.size() > 2 && p.compare(p.size() - 2, 2, ":*") == 0);
  return StringMatch(p, pattern_has_port ? h : StripPort(h));
}

bool Matches(const AuthorizationPolicy& policy, const Request& request, int* rule) {
  for (size_t i = 0; i < policy.rules.size(); ++i) {
    if (RuleMatches(policy.rules[i], policy.action, request)) {
      if (rule) *rule = static_cast<int>(i);
      return true;
    }
  }
  return false;
}

Decision Evaluate(const std::vector<AuthorizationPolicy>& policies, const Request& request) {
  // Refuse up front, so an unsupported field fails whatever the order or the request. (The quick scan
  // keeps the common case free of SupportedBy's strings; it only builds the message.)
  for (const auto& p : policies) {
    if (!UsesUnsupported(p, request.source_principal.has_value())) continue;
    if (!request.source_principal) SupportedBy(p).RequireSupported();
    // With a principal given, only the other condition keys are left to refuse.
    for (size_t r = 0; r < p.rules.size(); ++r) {
      for (size_t i = 0; i < p.rules[r].when.size(); ++i) {
        const ConditionKey& k = p.rules[r].when[i].key;
        if (k.kind != ConditionKey::Kind::kOther) continue;
        throw Error(p.origin.ToString() + ": policy " + p.IdKey() +
                    ": the lab does not support the condition key " + k.text + " (spec.rules[" +
                    std::to_string(r) + "].when[" + std::to_string(i) + "] (" + k.text + "))");
      }
    }
  }

  int rule = -1;
  for (const auto& p : policies) {
    if (p.action == Action::kDeny && Matches(p, request, &rule)) {
      return Decision{Verdict::kDeny, p.IdKey(), rule,
                      "DENY policy " + p.IdKey() + " matched (rule " + std::to_string(rule) + ")"};
    }
  }
  std::string allow_names;
  for (const auto& p : policies) {
    if (p.action != Action::kAllow) continue;
    allow_names += (allow_names.empty() ? "" : ", ") + p.IdKey();
    if (Matches(p, request, &rule)) {
      return Decision{Verdict::kAllow, p.IdKey(), rule,
                      "ALLOW policy " + p.IdKey() + " matched (rule " + std::to_string(rule) + ")"};
    }
  }
  if (allow_names.empty())
    return Decision{Verdict::kAllow, "", -1, "no DENY matched and no ALLOW policy applies"};
  return Decision{Verdict::kDeny, "", -1, "no ALLOW policy matched (" + allow_names + ")"};
}

bool AppliesToWorkload(const AuthorizationPolicy& policy, const std::string& workload_namespace,
                       const std::map<std::string, std::string>& workload_labels,
                       const std::string& root_namespace) {
  if (!policy.target_refs.empty()) return false;
  if (policy.ns != workload_namespace && policy.ns != root_namespace) return false;
  for (const auto& [k, v] : policy.selector) {
    auto it = workload_labels.find(k);
    if (it == workload_labels.end() || it->second != v) return false;
  }
  return true;
}

bool TargetsService(const AuthorizationPolicy& policy, const std::string& service_namespace,
                    const std::string& service_name) {
  return Any(policy.target_refs, [&](const TargetRef& t) {
    const std::string& ns = t.ns.empty() ? policy.ns : t.ns;
    return t.kind == "Service" && t.group.empty() && t.name == service_name && ns == service_namespace;
  });
}

}  // namespace kmesh::policy
