// Where the running test case keeps its evidence: $TEST_UNDECLARED_OUTPUTS_DIR/<test case>/ under Bazel
// (Bazel keeps that folder as the test's outputs), else a folder under /tmp named after the binary.
// Set by the Catch2 listener (catch_main.cc); collectors just take the path it returns.
#pragma once

#include <string>

namespace kmesh::e2e {

// The folder of the test case now running (created). Outside a test case: the run's root folder.
std::string CaseOutputDir();

// The run's root folder for evidence (created).
std::string RunOutputDir();

// Turns a test case name into a folder name: [A-Za-z0-9._-] kept, anything else becomes '_'.
std::string CaseFolderName(const std::string& test_case_name);

// Called by the listener.
void BeginCaseOutput(const std::string& test_case_name);
void EndCaseOutput();

}  // namespace kmesh::e2e
