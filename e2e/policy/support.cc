#include "e2e/policy/support.h"

#include "base/error.h"

namespace kmesh::policy {

const char* ToString(Mechanism m) {
  switch (m) {
    case Mechanism::kXdp:
      return "XDP";
    case Mechanism::kUserspace:
      return "Kmesh userspace";
    case Mechanism::kWaypoint:
      return "waypoint";
  }
  return "?";
}

bool Support::Needs(Mechanism m) const { return !Of(m).empty(); }

std::vector<FieldUse> Support::Of(Mechanism m) const {
  std::vector<FieldUse> out;
  for (const auto& f : fields) {
    if (f.mechanism == m) out.push_back(f);
  }
  return out;
}

std::vector<FieldUse> Support::Unsupported() const {
  std::vector<FieldUse> out;
  for (const auto& f : fields) {
    if (!f.mechanism) out.push_back(f);
  }
  return out;
}

void Support::RequireSupported() const {
  for (const auto& f : fields) {
    if (!f.mechanism) {
      throw Error(origin.ToString() + ": policy " + policy + ": " + f.note + " (" + f.path + ")");
    }
  }
}

Support SupportedBy(const AuthorizationPolicy& p) {
  Support s;
  s.policy = p.IdKey();
  s.origin = p.origin;
  const bool at_waypoint = !p.target_refs.empty();
  auto use = [&](bool present, const std::string& path, Mechanism m) {
    if (present) s.fields.push_back(FieldUse{path, at_waypoint ? Mechanism::kWaypoint : m, ""});
  };
  auto unsupported = [&](bool present, const std::string& path, const std::string& what) {
    if (present)
      s.fields.push_back(FieldUse{path, std::nullopt, "the lab does not support " + what});
  };
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const Rule& rule = p.rules[r];
    const std::string rp = "spec.rules[" + std::to_string(r) + "]";
    for (size_t i = 0; i < rule.from.size(); ++i) {
      const Source& src = rule.from[i];
      const std::string sp = rp + ".from[" + std::to_string(i) + "].source.";
      use(!src.ip_blocks.empty(), sp + "ipBlocks", Mechanism::kXdp);
      use(!src.not_ip_blocks.empty(), sp + "notIpBlocks", Mechanism::kXdp);
      use(!src.namespaces.empty(), sp + "namespaces", Mechanism::kUserspace);
      use(!src.not_namespaces.empty(), sp + "notNamespaces", Mechanism::kUserspace);
      unsupported(!src.principals.empty(), sp + "principals", "source.principals");
      unsupported(!src.not_principals.empty(), sp + "notPrincipals", "source.notPrincipals");
    }
    for (size_t i = 0; i < rule.to.size(); ++i) {
      const Operation& op = rule.to[i];
      const std::string op_path = rp + ".to[" + std::to_string(i) + "].operation.";
      use(!op.ports.empty(), op_path + "ports", Mechanism::kXdp);
      use(!op.not_ports.empty(), op_path + "notPorts", Mechanism::kXdp);
      use(!op.hosts.empty(), op_path + "hosts", Mechanism::kWaypoint);
      use(!op.not_hosts.empty(), op_path + "notHosts", Mechanism::kWaypoint);
      use(!op.paths.empty(), op_path + "paths", Mechanism::kWaypoint);
      use(!op.not_paths.empty(), op_path + "notPaths", Mechanism::kWaypoint);
      use(!op.methods.empty(), op_path + "methods", Mechanism::kWaypoint);
      use(!op.not_methods.empty(), op_path + "notMethods", Mechanism::kWaypoint);
    }
    for (size_t i = 0; i < rule.when.size(); ++i) {
      const ConditionKey& k = rule.when[i].key;
      const std::string wp = rp + ".when[" + std::to_string(i) + "] (" + k.text + ")";
      switch (k.kind) {
        case ConditionKey::Kind::kRequestHeader: use(true, wp, Mechanism::kWaypoint); break;
        case ConditionKey::Kind::kSourceIp:
        case ConditionKey::Kind::kDestinationIp:
        case ConditionKey::Kind::kDestinationPort: use(true, wp, Mechanism::kXdp); break;
        case ConditionKey::Kind::kSourceNamespace: use(true, wp, Mechanism::kUserspace); break;
        case ConditionKey::Kind::kSourcePrincipal:
        case ConditionKey::Kind::kOther: unsupported(true, wp, "the condition key " + k.text); break;
      }
    }
  }
  return s;
}

}  // namespace kmesh::policy
