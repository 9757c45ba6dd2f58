// Where the running test case keeps its evidence: $TEST_UNDECLARED_OUTPUTS_DIR/<test case>/ under Bazel
// (Bazel keeps that folder as the test's outputs), else a folder under /tmp named after the binary.
// Set by the Catch2 listener (catch_main.cc); collectors just take the path it returns.
#pragma once

#include <functional>
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

// A failure Catch2 reported in the running test case. The listener passes each one on, so that the
// evidence bundles open at that moment record it: a failed CHECK fails a bundle, not only Case::Fail.
struct Catch2Failure {
  enum class Kind {
    kAssertion,  // a failed CHECK/REQUIRE/FAIL
    kException,  // an exception escaped an assertion or the test case
    kCrash,      // a fatal signal: the process ends before any destructor runs
  };
  Kind kind = Kind::kAssertion;
  std::string where;       // file:line as Catch2 names it (for an exception: the last assertion before it)
  std::string text;        // the expression and its expansion, or the exception's message
  bool ends_case = false;  // REQUIRE, FAIL, a fatal error: the test case unwinds from here
};
const char* ToString(Catch2Failure::Kind kind);

// Whoever keeps evidence for the running test case (kmesh::e2e::Case) subscribes while it is open.
class Catch2FailureSubscriber {
 public:
  virtual ~Catch2FailureSubscriber() = default;
  virtual void OnCatch2Failure(const Catch2Failure& failure) = 0;
};
void SubscribeToCatch2Failures(Catch2FailureSubscriber* subscriber);
void UnsubscribeFromCatch2Failures(Catch2FailureSubscriber* subscriber);

// Catch2 reports an exception that escapes the test case only after the stack has unwound, when the
// bundles it ended are already written. A bundle ended by an exception leaves `fill` here; the next
// exception Catch2 reports in this test case is passed to it (at the end of the test case, when the test
// caught the exception itself, `fill` gets a failure saying so).
void AwaitEscapedException(std::function<void(const Catch2Failure&)> fill);

// Called by the listener for every failure Catch2 reports.
void ReportCatch2Failure(const Catch2Failure& failure);

}  // namespace kmesh::e2e
