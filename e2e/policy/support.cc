#include "e2e/policy/support.h"

#include "base/error.h"

namespace kmesh::policy {

const char* EnforcerName(Enforcer e) {
  switch (e) {
    case Enforcer::kXdp: return "xdp";
    case Enforcer::kNamespaceToIps: return "namespace-to-ips";
    case Enforcer::kWaypoint: return "waypoint";
    case Enforcer::kUnsupported: return "unsupported";
  }
  return "?";
}

bool Support::Needs(Enforcer e) const {
  for (const auto& f : fields) {
    if (f.enforcer == e) return true;
  }
  return false;
}

std::vector<FieldUse> Support::Of(Enforcer e) const {
  std::vector<FieldUse> out;
  for (const auto& f : fields) {
    if (f.enforcer == e) out.push_back(f);
  }
  return out;
}

void Support::RequireSupported() const {
  for (const auto& f : fields) {
    if (f.enforcer == Enforcer::kUnsupported) {
      throw Error(origin.ToString() + ": policy " + policy + ": " + f.note + " (" + f.path + ")");
    }
  }
}

Support SupportedBy(const AuthorizationPolicy& p) {
  Support s;
  s.policy = p.IdKey();
  s.origin = p.origin;
  const bool at_waypoint = !p.target_refs.empty();
  auto use = [&](bool present, const std::string& path, Enforcer e) {
    if (!present) return;
    if (at_waypoint && e != Enforcer::kUnsupported) e = Enforcer::kWaypoint;
    s.fields.push_back(FieldUse{path, e, ""});
  };
  auto unsupported = [&](bool present, const std::string& path, const std::string& what) {
    if (present)
      s.fields.push_back(FieldUse{path, Enforcer::kUnsupported, "the lab does not support " + what});
  };
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const Rule& rule = p.rules[r];
    const std::string rp = "spec.rules[" + std::to_string(r) + "]";
    for (size_t i = 0; i < rule.from.size(); ++i) {
      const Source& src = rule.from[i];
      const std::string sp = rp + ".from[" + std::to_string(i) + "].source.";
      use(!src.ip_blocks.empty(), sp + "ipBlocks", Enforcer::kXdp);
      use(!src.not_ip_blocks.empty(), sp + "notIpBlocks", Enforcer::kXdp);
      use(!src.namespaces.empty(), sp + "namespaces", Enforcer::kNamespaceToIps);
      use(!src.not_namespaces.empty(), sp + "notNamespaces", Enforcer::kNamespaceToIps);
      unsupported(!src.principals.empty(), sp + "principals", "source.principals");
      unsupported(!src.not_principals.empty(), sp + "notPrincipals", "source.notPrincipals");
    }
    for (size_t i = 0; i < rule.to.size(); ++i) {
      const Operation& op = rule.to[i];
      const std::string op_path = rp + ".to[" + std::to_string(i) + "].operation.";
      use(!op.ports.empty(), op_path + "ports", Enforcer::kXdp);
      use(!op.not_ports.empty(), op_path + "notPorts", Enforcer::kXdp);
      use(!op.hosts.empty(), op_path + "hosts", Enforcer::kWaypoint);
      use(!op.not_hosts.empty(), op_path + "notHosts", Enforcer::kWaypoint);
      use(!op.paths.empty(), op_path + "paths", Enforcer::kWaypoint);
      use(!op.not_paths.empty(), op_path + "notPaths", Enforcer::kWaypoint);
      use(!op.methods.empty(), op_path + "methods", Enforcer::kWaypoint);
      use(!op.not_methods.empty(), op_path + "notMethods", Enforcer::kWaypoint);
    }
    for (size_t i = 0; i < rule.when.size(); ++i) {
      const ConditionKey& k = rule.when[i].key;
      const std::string wp = rp + ".when[" + std::to_string(i) + "] (" + k.text + ")";
      switch (k.kind) {
        case ConditionKey::Kind::kRequestHeader: use(true, wp, Enforcer::kWaypoint); break;
        case ConditionKey::Kind::kSourceIp:
        case ConditionKey::Kind::kDestinationIp:
        case ConditionKey::Kind::kDestinationPort: use(true, wp, Enforcer::kXdp); break;
        case ConditionKey::Kind::kSourceNamespace: use(true, wp, Enforcer::kNamespaceToIps); break;
        case ConditionKey::Kind::kSourcePrincipal:
        case ConditionKey::Kind::kOther: unsupported(true, wp, "the condition key " + k.text); break;
      }
    }
  }
  return s;
}

}  // namespace kmesh::policy
