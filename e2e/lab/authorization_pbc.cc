#include "e2e/lab/authorization_pbc.h"

#include "base/error.h"

namespace kmesh::lab {

namespace wa = workloadapi;

UnpackedAuthorization UnpackedAuthorization::Unpack(const std::string& wire) {
  if (wire.empty()) {
    throw Error(
        "workload API Authorization: empty encoding (Kmesh's authorizationToClang returns no message "
        "for it, pkg/cache/v2/maps/authz.go:52-54)");
  }
  auto* m = istio__security__authorization__unpack(nullptr, wire.size(),
                                                   reinterpret_cast<const uint8_t*>(wire.data()));
  if (m == nullptr) {
    throw Error("protobuf-c could not unpack " + std::to_string(wire.size()) +
                " bytes as istio.security.Authorization (malformed wire encoding)");
  }
  return UnpackedAuthorization(m);
}

UnpackedAuthorization::~UnpackedAuthorization() {
  if (msg_ != nullptr) istio__security__authorization__free_unpacked(msg_, nullptr);
}

std::vector<uint8_t> ReadBytesInPlace(const ProtobufCBinaryData& b) {
  if (b.len == 0) return {};
  return std::vector<uint8_t>(b.data, b.data + b.len);
}

namespace {

std::string Str(const char* s) { return s == nullptr ? std::string() : std::string(s); }

std::vector<wa::StringMatch> Strings(size_t n, Istio__Security__StringMatch* const* v) {
  std::vector<wa::StringMatch> out;
  for (size_t i = 0; i < n; ++i) {
    wa::StringMatch s;
    switch (v[i]->match_type_case) {
      case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT:
        s = {wa::StringMatch::Kind::kExact, Str(v[i]->exact)};
        break;
      case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX:
        s = {wa::StringMatch::Kind::kPrefix, Str(v[i]->prefix)};
        break;
      case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX:
        s = {wa::StringMatch::Kind::kSuffix, Str(v[i]->suffix)};
        break;
      default:
        break;  // no match type (istiod's presence is unknown to Kmesh's proto)
    }
    out.push_back(s);
  }
  return out;
}

std::vector<wa::Address> Addresses(size_t n, Istio__Security__Address* const* v, const BytesReader& read) {
  std::vector<wa::Address> out;
  for (size_t i = 0; i < n; ++i) out.push_back(wa::Address{read(v[i]->address), v[i]->length});
  return out;
}

std::vector<uint32_t> Ports(size_t n, const uint32_t* v) { return std::vector<uint32_t>(v, v + n); }

}  // namespace

wa::Authorization FromProtobufC(const Istio__Security__Authorization& m, const BytesReader& read_bytes) {
  wa::Authorization a;
  a.name = Str(m.name);
  a.ns = Str(m.namespace_);
  a.scope = static_cast<wa::Scope>(m.scope);
  a.action = static_cast<wa::Action>(m.action);
  for (size_t r = 0; r < m.n_rules; ++r) {
    wa::Rule rule;
    const auto* rp = m.rules[r];
    for (size_t c = 0; c < rp->n_clauses; ++c) {
      wa::Clause clause;
      const auto* cp = rp->clauses[c];
      for (size_t i = 0; i < cp->n_matches; ++i) {
        const auto* mp = cp->matches[i];
        wa::Match x;
        x.namespaces = Strings(mp->n_namespaces, mp->namespaces);
        x.not_namespaces = Strings(mp->n_not_namespaces, mp->not_namespaces);
        x.principals = Strings(mp->n_principals, mp->principals);
        x.not_principals = Strings(mp->n_not_principals, mp->not_principals);
        x.source_ips = Addresses(mp->n_source_ips, mp->source_ips, read_bytes);
        x.not_source_ips = Addresses(mp->n_not_source_ips, mp->not_source_ips, read_bytes);
        x.destination_ips = Addresses(mp->n_destination_ips, mp->destination_ips, read_bytes);
        x.not_destination_ips = Addresses(mp->n_not_destination_ips, mp->not_destination_ips, read_bytes);
        x.destination_ports = Ports(mp->n_destination_ports, mp->destination_ports);
        x.not_destination_ports = Ports(mp->n_not_destination_ports, mp->not_destination_ports);
        clause.matches.push_back(std::move(x));
      }
      rule.clauses.push_back(std::move(clause));
    }
    a.rules.push_back(std::move(rule));
  }
  return a;
}

}  // namespace kmesh::lab
