#include "e2e/lab/authorization_pbc.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/lab/workload_authz.h"
#include "e2e/policy/policy.h"

namespace wa = kmesh::lab::workloadapi;
using kmesh::lab::FromProtobufC;
using kmesh::lab::UnpackedAuthorization;

namespace {

wa::Authorization Translated(const std::string& spec) {
  auto v = kmesh::policy::ParseManifests(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: test-ns1}
spec:
  selector: {matchLabels: {app: httpbin}}
)" + spec + "\n",
                                         "inline.yaml");
  REQUIRE(v.size() == 1);
  return wa::Translate(v[0]);
}

std::string PackAgain(const UnpackedAuthorization& u) {
  std::string out(istio__security__authorization__get_packed_size(u.get()), '\0');
  istio__security__authorization__pack(u.get(), reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

}  // namespace

TEST_CASE(
    "Marshal's bytes unpack with Kmesh's protobuf-c code into the same policy, and pack back identical") {
  const char* specs[] = {
      R"(  action: DENY
  rules: [{from: [{source: {ipBlocks: ["10.244.1.5", "10.244.3.0/24", "fd00::/8"], notIpBlocks: ["10.244.3.9"]}}]}])",
      R"(  rules:
  - to: [{operation: {ports: ["8000", "9090", "80", "65535"], notPorts: ["22"]}}]
  - from: [{source: {namespaces: ["test-ns2", "a*", "*b"]}}, {source: {principals: ["cluster.local/ns/x/sa/y"]}}]
    when: [{key: destination.ip, values: ["10.244.2.7"], notValues: ["10.244.2.8"]}])",
      "  action: DENY\n  rules: [{}]",
      "  rules: []",
  };
  for (const char* spec : specs) {
    INFO(spec);
    const wa::Authorization a = Translated(spec);
    const std::string wire = wa::Marshal(a);
    auto u = UnpackedAuthorization::Unpack(wire);
    CHECK(FromProtobufC(*u.get()) == a);
    CHECK(PackAgain(u) == wire);
    CHECK(u.get()->base.n_unknown_fields == 0);
  }
}

TEST_CASE(
    "istiod's presence (\"*\") is a field Kmesh's proto does not know: no match type, kept as unknown") {
  const wa::Authorization a =
      Translated(R"(  rules: [{from: [{source: {principals: ["*"], namespaces: ["ns"]}}]}])");
  auto u = UnpackedAuthorization::Unpack(wa::Marshal(a));
  const auto back = FromProtobufC(*u.get());
  const auto& m = back.rules.at(0).clauses.at(0).matches.at(0);
  REQUIRE(m.principals.size() == 1);
  CHECK(m.principals[0].kind == wa::StringMatch::Kind::kUnset);
  CHECK(m.namespaces[0] == wa::StringMatch::Exact("ns"));
  const auto* sm = u.get()->rules[0]->clauses[0]->matches[0]->principals[0];
  CHECK(sm->match_type_case == ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE__NOT_SET);
  CHECK(sm->base.n_unknown_fields == 1);
}

TEST_CASE("empty or malformed wire bytes are refused with a reason") {
  CHECK_THROWS_WITH(UnpackedAuthorization::Unpack(""), Catch::Contains("empty encoding"));
  CHECK_THROWS_WITH(UnpackedAuthorization::Unpack("\x2a\x10\x0a"),
                    Catch::Contains("could not unpack 3 bytes"));
}
