// kmesh_abi.h's offsets of Kmesh's protobuf-c policy messages and of struct match_context, checked against
// the header Kmesh generates (api/v2-c/workloadapi/security/authorization.pb-c.h from @kmesh_src): the
// readers in bpf_probe use the offsets, so a Kmesh tree whose layout moved fails to build this test.
#include "bpf_probe/kmesh_abi.h"

#include <catch2/catch.hpp>
#include <cstddef>

#include "external/kmesh_src/api/v2-c/workloadapi/security/authorization.pb-c.h"

using A = Istio__Security__Authorization;
using R = Istio__Security__Rule;
using C = Istio__Security__Clause;
using M = Istio__Security__Match;
using Ad = Istio__Security__Address;
using S = Istio__Security__StringMatch;

static_assert(sizeof(A) == KM_AUTHZ_POLICY_VALUE_SIZE);
static_assert(offsetof(A, name) == KM_PB_AUTHZ_NAME && offsetof(A, namespace_) == KM_PB_AUTHZ_NAMESPACE);
static_assert(offsetof(A, scope) == KM_PB_AUTHZ_SCOPE && offsetof(A, action) == KM_PB_AUTHZ_ACTION);
static_assert(offsetof(A, n_rules) == KM_PB_AUTHZ_N_RULES && offsetof(A, rules) == KM_PB_AUTHZ_RULES);
static_assert(sizeof(R) == KM_PB_RULE_SIZE && offsetof(R, n_clauses) == KM_PB_RULE_N_CLAUSES &&
              offsetof(R, clauses) == KM_PB_RULE_CLAUSES);
static_assert(sizeof(C) == KM_PB_CLAUSE_SIZE && offsetof(C, n_matches) == KM_PB_CLAUSE_N_MATCHES &&
              offsetof(C, matches) == KM_PB_CLAUSE_MATCHES);
static_assert(sizeof(M) == KM_PB_MATCH_SIZE);
static_assert(offsetof(M, n_namespaces) == KM_PB_MATCH_N_NAMESPACES &&
              offsetof(M, namespaces) == KM_PB_MATCH_NAMESPACES);
static_assert(offsetof(M, n_not_namespaces) == KM_PB_MATCH_N_NOT_NAMESPACES &&
              offsetof(M, not_namespaces) == KM_PB_MATCH_NOT_NAMESPACES);
static_assert(offsetof(M, n_principals) == KM_PB_MATCH_N_PRINCIPALS &&
              offsetof(M, principals) == KM_PB_MATCH_PRINCIPALS);
static_assert(offsetof(M, n_not_principals) == KM_PB_MATCH_N_NOT_PRINCIPALS &&
              offsetof(M, not_principals) == KM_PB_MATCH_NOT_PRINCIPALS);
static_assert(offsetof(M, n_source_ips) == KM_PB_MATCH_N_SOURCE_IPS &&
              offsetof(M, source_ips) == KM_PB_MATCH_SOURCE_IPS);
static_assert(offsetof(M, n_not_source_ips) == KM_PB_MATCH_N_NOT_SOURCE_IPS &&
              offsetof(M, not_source_ips) == KM_PB_MATCH_NOT_SOURCE_IPS);
static_assert(offsetof(M, n_destination_ips) == KM_PB_MATCH_N_DESTINATION_IPS &&
              offsetof(M, destination_ips) == KM_PB_MATCH_DESTINATION_IPS);
static_assert(offsetof(M, n_not_destination_ips) == KM_PB_MATCH_N_NOT_DESTINATION_IPS &&
              offsetof(M, not_destination_ips) == KM_PB_MATCH_NOT_DESTINATION_IPS);
static_assert(offsetof(M, n_destination_ports) == KM_PB_MATCH_N_DESTINATION_PORTS &&
              offsetof(M, destination_ports) == KM_PB_MATCH_DESTINATION_PORTS);
static_assert(offsetof(M, n_not_destination_ports) == KM_PB_MATCH_N_NOT_DESTINATION_PORTS &&
              offsetof(M, not_destination_ports) == KM_PB_MATCH_NOT_DESTINATION_PORTS);
static_assert(sizeof(Ad) == KM_PB_ADDRESS_SIZE &&
              offsetof(Ad, address) + offsetof(ProtobufCBinaryData, len) == KM_PB_ADDRESS_LEN &&
              offsetof(Ad, address) + offsetof(ProtobufCBinaryData, data) == KM_PB_ADDRESS_DATA &&
              offsetof(Ad, length) == KM_PB_ADDRESS_LENGTH);
static_assert(sizeof(S) == KM_PB_STRING_MATCH_SIZE &&
              offsetof(S, match_type_case) == KM_PB_STRING_MATCH_CASE &&
              offsetof(S, exact) == KM_PB_STRING_MATCH_STRING);
static_assert(ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT == KM_PB_STRING_MATCH_EXACT &&
              ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX == KM_PB_STRING_MATCH_PREFIX &&
              ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX == KM_PB_STRING_MATCH_SUFFIX);
static_assert(ISTIO__SECURITY__ACTION__DENY == KM_ACTION_DENY &&
              ISTIO__SECURITY__ACTION__ALLOW == KM_ACTION_ALLOW);

TEST_CASE("kmesh_abi.h: protobuf-c offsets equal Kmesh's generated header (checked at compile time)") {
  // Which inner map each message lands in, by Kmesh's rule (smallest that fits, bpf_common.h:225-232).
  CHECK(sizeof(R) <= 64);
  CHECK(sizeof(C) <= 64);
  CHECK(sizeof(Ad) <= 64);
  CHECK(sizeof(S) <= 64);
  CHECK((sizeof(M) > 64 && sizeof(M) <= 192));
}
