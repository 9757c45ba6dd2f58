#include "e2e/conformance/generator.h"

#include <algorithm>
#include <functional>
#include <set>

#include "base/error.h"
#include "e2e/policy/evaluate.h"

namespace kmesh::conformance {

namespace pol = kmesh::policy;

uint64_t Random::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Random::Below(uint64_t n) { return Next() % n; }

int Random::Between(int lo, int hi) {
  return lo + static_cast<int>(Below(static_cast<uint64_t>(hi - lo + 1)));
}

bool Random::Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

uint64_t CaseSeed(uint64_t run_seed, uint64_t index) {
  Random r(run_seed ^ (index * 0xd1342543de82ef95ULL));
  return r.Next();
}

const char* ToString(Family f) {
  switch (f) {
    case Family::kIPv4:
      return "ipv4";
    case Family::kIPv6:
      return "ipv6";
    case Family::kIPv4MappedIPv6:
      return "ipv4-mapped-ipv6";
  }
  return "?";
}

Family Connection::family() const {
  if (tuple.src.ip.is_v4()) return Family::kIPv4;
  return tuple.src.ip.v4_mapped() ? Family::kIPv4MappedIPv6 : Family::kIPv6;
}

std::vector<pol::AuthorizationPolicy> ApplyingPolicies(const Case& c) {
  std::vector<pol::AuthorizationPolicy> out;
  for (const auto& p : c.policies) {
    if (pol::AppliesToWorkload(p, c.workload.ns, c.workload.labels, kRootNamespace)) out.push_back(p);
  }
  return out;
}

const std::vector<std::string>& NamespaceWords() {
  static const std::vector<std::string> v = {"ns-a", "ns-b", "test-a", "test-b"};
  return v;
}

const std::vector<std::string>& ServiceAccountWords() {
  static const std::vector<std::string> v = {"sa-1", "sa-2"};
  return v;
}

std::string PrincipalOf(const std::string& ns, const std::string& sa) {
  return "cluster.local/ns/" + ns + "/sa/" + sa;
}

namespace {

// Clients. The IPv6 pool's a00:1::1 and c0a8:709::1 begin with the bytes of 10.0.0.1 and 192.168.7.9.
const std::vector<std::string> kV4Clients = {"10.0.0.1", "10.0.0.2", "10.0.0.3",    "10.0.0.6",  "10.0.1.1",
                                             "10.0.1.4", "10.1.0.9", "192.168.7.9", "172.16.0.5"};
const std::vector<std::string> kV6Clients = {"fd00::1",       "fd00::2",       "fd00::3",
                                             "fd00:0:0:1::1", "fd00:0:0:1::4", "2001:db8::5",
                                             "a00:1::1",      "c0a8:709::1",   "::a00:1"};
// Destination addresses for `when: destination.ip` besides the workload's own.
const std::vector<std::string> kV4Destinations = {"10.244.2.7", "10.244.2.8", "10.244.0.0/16", "10.0.0.0/8"};
const std::vector<std::string> kV6Destinations = {"fd00:10:244:2::7", "fd00:10:244:2::8", "fd00:10:244::/48"};
const std::vector<uint16_t> kPorts = {8000, 80, 443, 9090, 15008, 8080};

class CaseBuilder {
 public:
  CaseBuilder(uint64_t seed, const GeneratorOptions& o) : r_(seed), o_(o) {}

  Case Build(uint64_t seed) {
    Case c;
    c.seed = seed;
    c.workload.ns = "ns-a";
    c.workload.labels = {{"app", "httpbin"}, {"version", "v1"}};
    c.workload.uid = "Kubernetes//Pod/ns-a/httpbin-0";
    c.workload.ipv4 = *net::IpAddr::Parse("10.244.2.7");
    c.workload.ipv6 = *net::IpAddr::Parse("fd00:10:244:2::7");
    file_ = "case-" + std::to_string(seed) + ".yaml";

    const int applying = r_.Between(1, o_.max_applying_policies);
    const int others = r_.Chance(0.3) ? r_.Between(0, o_.max_other_policies) : 0;
    for (int i = 0; i < applying + others; ++i) c.policies.push_back(Policy(c, i >= applying));
    // Shuffle, so the applying ones are not always first.
    for (size_t i = c.policies.size(); i > 1; --i) std::swap(c.policies[i - 1], c.policies[r_.Below(i)]);
    for (size_t i = 0; i < c.policies.size(); ++i) c.policies[i].origin.line = static_cast<int>(i + 1);

    std::set<uint16_t> used_ports;
    for (int i = 0; i < o_.connections; ++i) c.connections.push_back(Conn(c.workload, used_ports));
    return c;
  }

 private:
  pol::AuthorizationPolicy Policy(const Case& c, bool decoy) {
    pol::AuthorizationPolicy p;
    p.origin.file = file_;
    p.action = r_.Chance(0.5) ? pol::Action::kAllow : pol::Action::kDeny;
    if (decoy) {
      // Applies to nothing here: another namespace, or labels the workload does not have.
      if (r_.Chance(0.5)) {
        p.ns = "ns-b";
        p.has_selector = true;
        p.selector = {{"app", "httpbin"}};
      } else {
        p.ns = c.workload.ns;
        p.has_selector = true;
        p.selector = {{"app", "other"}};
      }
    } else {
      const uint64_t k = r_.Below(100);
      if (k < 60) {  // selector in the workload's namespace: istiod lists it on the workload
        p.ns = c.workload.ns;
        p.has_selector = true;
        p.selector = {{"app", "httpbin"}};
      } else if (k < 70) {
        p.ns = c.workload.ns;
        p.has_selector = true;
        p.selector = {{"app", "httpbin"}, {"version", "v1"}};
      } else if (k < 85) {  // NAMESPACE scope
        p.ns = c.workload.ns;
      } else if (k < 93) {  // selector in the root namespace: listed too
        p.ns = kRootNamespace;
        p.has_selector = true;
        p.selector = {{"app", "httpbin"}};
      } else {  // GLOBAL scope
        p.ns = kRootNamespace;
      }
    }
    p.name = UniqueName(p.ns);
    // Mostly short policies (what people write, and cheap to write into the maps), some up to max_rules.
    const uint64_t k = r_.Below(100);
    const int rules = r_.Chance(o_.zero_rule_chance) ? 0
                      : k < 60                       ? r_.Between(1, std::min(2, o_.max_rules))
                      : k < 90                       ? r_.Between(1, std::min(4, o_.max_rules))
                                                     : r_.Between(1, o_.max_rules);
    for (int i = 0; i < rules; ++i) p.rules.push_back(Rule());
    return p;
  }

  // A random DNS-1123 name, unique per namespace within the case.
  std::string UniqueName(const std::string& ns) {
    static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (;;) {
      std::string n(1, kChars[r_.Below(26)]);
      const int len = r_.Between(0, 10);
      for (int i = 0; i < len; ++i)
        n += (i > 0 && i < len - 1 && r_.Chance(0.1)) ? '-' : kChars[r_.Below(36)];
      if (names_.insert(ns + "/" + n).second) return n;
    }
  }

  // How many entries a list gets: mostly 1, sometimes more than Kmesh's 4.
  int ListSize() {
    const uint64_t k = r_.Below(100);
    if (k < 60) return 1;
    if (k < 80) return 2;
    if (k < 95) return r_.Between(3, 4);
    return r_.Between(5, 6);
  }
  int PartCount() {
    const uint64_t k = r_.Below(100);
    if (k < 70) return 1;
    if (k < 92) return 2;
    return r_.Between(3, 5);
  }

  pol::Rule Rule() {
    pol::Rule rule;
    if (r_.Chance(0.04)) return rule;  // `- {}`: matches everything
    bool any = false;
    while (!any) {
      if (r_.Chance(0.6)) {
        for (int i = PartCount(); i > 0; --i) rule.from.push_back(Source());
        any = true;
      }
      if (r_.Chance(0.5)) {
        for (int i = PartCount(); i > 0; --i) rule.to.push_back(Operation());
        any = true;
      }
      if (r_.Chance(0.35)) {
        for (int i = PartCount(); i > 0; --i) rule.when.push_back(Condition());
        any = true;
      }
    }
    return rule;
  }

  pol::Source Source() {
    pol::Source s;
    bool any = false;
    while (!any) {
      if (r_.Chance(0.5)) any = Fill(s.ip_blocks, [&] { return Cidr(); });
      if (r_.Chance(0.25)) any = Fill(s.not_ip_blocks, [&] { return Cidr(); });
      if (r_.Chance(0.2)) any = Fill(s.namespaces, [&] { return NamespacePattern(); });
      if (r_.Chance(0.1)) any = Fill(s.not_namespaces, [&] { return NamespacePattern(); });
      if (r_.Chance(0.12)) any = Fill(s.principals, [&] { return PrincipalPattern(); });
      if (r_.Chance(0.06)) any = Fill(s.not_principals, [&] { return PrincipalPattern(); });
    }
    return s;
  }

  pol::Operation Operation() {
    pol::Operation o;
    bool any = false;
    while (!any) {
      if (r_.Chance(0.75)) any = Fill(o.ports, [&] { return Port(); });
      if (r_.Chance(0.35)) any = Fill(o.not_ports, [&] { return Port(); });
    }
    return o;
  }

  pol::Condition Condition() {
    pol::Condition c;
    using K = pol::ConditionKey::Kind;
    std::function<std::string()> value;
    const uint64_t k = r_.Below(100);
    if (k < 30) {
      c.key = {K::kSourceIp, "", "source.ip"};
      value = [&] { return Cidr().ToString(); };
    } else if (k < 50) {
      c.key = {K::kDestinationIp, "", "destination.ip"};
      value = [&] { return DestinationCidr(); };
    } else if (k < 75) {
      c.key = {K::kDestinationPort, "", "destination.port"};
      value = [&] { return std::to_string(Port()); };
    } else if (k < 90) {
      c.key = {K::kSourceNamespace, "", "source.namespace"};
      value = [&] { return NamespacePattern(); };
    } else {
      c.key = {K::kSourcePrincipal, "", "source.principal"};
      value = [&] { return PrincipalPattern(); };
    }
    bool any = false;
    while (!any) {
      if (r_.Chance(0.8)) any = Fill(c.values, value);
      if (r_.Chance(0.35)) any = Fill(c.not_values, value);
    }
    return c;
  }

  template <typename T, typename F>
  bool Fill(std::vector<T>& v, F&& make) {
    for (int i = ListSize(); i > 0; --i) v.push_back(make());
    return true;
  }

  // A block around a pool address, of any prefix length (biased to the usual ones).
  net::Cidr Cidr() {
    if (r_.Chance(0.65)) {
      static const std::vector<int> kLens = {32, 32, 32, 24, 16, 8, 0};
      const int len = r_.Chance(0.2) ? r_.Between(0, 32) : r_.Pick(kLens);
      return MakeCidr(r_.Pick(kV4Clients), len);
    }
    static const std::vector<int> kLens = {128, 128, 128, 64, 48, 120, 96, 32, 16, 8, 0};
    const int len = r_.Chance(0.2) ? r_.Between(0, 128) : r_.Pick(kLens);
    return MakeCidr(r_.Pick(kV6Clients), len);
  }

  std::string DestinationCidr() {
    if (r_.Chance(0.6)) return r_.Pick(kV4Destinations);
    if (r_.Chance(0.8)) return r_.Pick(kV6Destinations);
    return r_.Chance(0.5) ? "0.0.0.0/0" : "::/0";
  }

  static net::Cidr MakeCidr(const std::string& address, int len) {
    return *net::Cidr::Parse(address + "/" + std::to_string(len));
  }

  uint16_t Port() { return r_.Chance(0.85) ? r_.Pick(kPorts) : static_cast<uint16_t>(r_.Between(1, 65535)); }

  std::string NamespacePattern() {
    const uint64_t k = r_.Below(100);
    if (k < 70) return r_.Pick(NamespaceWords());
    if (k < 80) return r_.Chance(0.5) ? "ns-*" : "test-*";
    if (k < 92) return r_.Chance(0.5) ? "*-a" : "*-b";
    return "*";
  }

  std::string PrincipalPattern() {
    const std::string& ns = r_.Pick(NamespaceWords());
    const std::string& sa = r_.Pick(ServiceAccountWords());
    const uint64_t k = r_.Below(100);
    if (k < 60) return PrincipalOf(ns, sa);
    if (k < 75) return "cluster.local/ns/" + ns + "/*";
    if (k < 90) return "*/sa/" + sa;
    return "*";
  }

  Connection Conn(const Workload& w, std::set<uint16_t>& used_ports) {
    uint16_t sport = 0;
    do {
      sport = static_cast<uint16_t>(r_.Between(1024, 65535));
    } while (!used_ports.insert(sport).second);
    const uint16_t dport = r_.Chance(0.85) ? r_.Pick(kPorts) : static_cast<uint16_t>(r_.Between(1, 65535));
    const uint64_t k = r_.Below(100);
    Connection c;
    if (k < 50) {
      c.tuple = {*net::IpAddr::Parse(r_.Pick(kV4Clients)), sport, w.ipv4, dport};
    } else if (k < 80) {
      c.tuple = {*net::IpAddr::Parse(r_.Pick(kV6Clients)), sport, w.ipv6, dport};
    } else {
      c.tuple = {*net::IpAddr::Parse("::ffff:" + r_.Pick(kV4Clients)), sport,
                 *net::IpAddr::Parse("::ffff:" + w.ipv4.ToString()), dport};
    }
    return c;
  }

  Random r_;
  const GeneratorOptions& o_;
  std::string file_;
  std::set<std::string> names_;
};

}  // namespace

Case Generate(uint64_t seed, const GeneratorOptions& options) {
  return CaseBuilder(seed, options).Build(seed);
}

}  // namespace kmesh::conformance
