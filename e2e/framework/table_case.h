// Test cases from table rows: each row of a suite's table becomes its own Catch2 test case (its own
// line in JUnit, its own evidence folder, its own tags), so a row that reproduces a known Kmesh defect can
// carry [!shouldfail] while its neighbours stay ordinary cases.
#pragma once

#include <functional>
#include <string>

namespace kmesh::e2e {

// Registers a Catch2 test case; call during static initialization (a namespace-scope object's
// constructor). `name` must be unique in the binary; `tags` like "[authz][ip][!shouldfail]".
void RegisterTableCase(const std::string& name, const std::string& tags, std::function<void()> body,
                       const char* file, int line);

}  // namespace kmesh::e2e
