// Test helper: one fixed set of variables per seed template (test-ns1, app httpbin, 10.244.1.5/32,
// ports 8000 and 9090, source namespace test-ns2, header x-kmesh: deny-me, host httpbin.test-ns1).
#pragma once

#include <string>

#include "e2e/policy/template.h"

namespace kmesh::policy::testing {

inline Vars SeedVars(const std::string& name) {
  Vars v;
  v.Set("Namespace", "test-ns1");
  auto is = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  if (is("ip-")) v.Set("App", "httpbin").Set("Ip", "10.244.1.5/32");
  if (is("port-")) v.Set("App", "httpbin").SetList("Ports", {"8000", "9090"});
  if (is("namespace-")) v.Set("App", "httpbin").Set("SourceNamespace", "test-ns2");
  if (is("header-")) v.Set("Service", "httpbin").Set("HeaderName", "x-kmesh").Set("HeaderValue", "deny-me");
  if (is("host-")) v.Set("Service", "httpbin").Set("TargetHost", "httpbin.test-ns1");
  return v;
}

}  // namespace kmesh::policy::testing
