// Case: the evidence bundle of one test case. Everything a case learns — the policy it applied, each
// probe with outcome, timings and tuple, the map entries for those tuples, XDP attachments, xfrm
// snapshots and their diff, xfrm_stat deltas, captures — goes into one JSON document written to
// <case evidence folder>/evidence.json when the Case ends, pass or fail. tools/report turns a run's
// bundles into one HTML page.
// A bundle fails on an explicit Fail(), and on anything Catch2 reports while it is open: a failed
// CHECK/REQUIRE, an exception (also one that unwinds through it), a fatal signal (the bundle is written
// at once, since no destructor will run).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/framework/case_output.h"

namespace kmesh::e2e {

class Case : private Catch2FailureSubscriber {
 public:
  // `title` names the case in the report (usually the Catch2 test case plus the table row).
  Case(std::string suite, std::string title, std::string env_name);
  ~Case();  // writes the bundle
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  // Appends an entry to a list section ("probes", "policies", "captures", ...).
  void Add(const std::string& section, nlohmann::json entry);
  // Sets a named field ("xfrm_before", "layout", ...).
  void Set(const std::string& key, nlohmann::json value);
  // A failed expectation: its explanation paragraph is kept (and printed by the caller).
  void Fail(const std::string& explanation);
  void Note(const std::string& line);
  // The known Kmesh defect this case reproduces (docs/kmesh-offload-contract.md): recorded under
  // "kmesh_defect" for the summary and the report, and announced on stderr before the case runs.
  void KmeshDefect(const std::string& code, const std::string& what, const std::string& kmesh_source);
  // A machine-readable disagreement code (expect.h `disagreement::`, or a suite's own): the bundle lists
  // each once, in order, under "disagreements".
  void AddDisagreement(const std::string& code);

  bool failed() const { return !failures_.empty() || !catch2_failures_.empty(); }
  const std::string& title() const { return title_; }
  // Where the bundle goes (the Catch2 case's evidence folder); pcaps are saved beside it.
  const std::string& dir() const { return dir_; }
  nlohmann::json ToJson() const;

 private:
  void OnCatch2Failure(const Catch2Failure& failure) override;
  void Write(const nlohmann::json& bundle) const;

  std::string suite_, title_, env_, dir_;
  nlohmann::json doc_;
  std::vector<std::string> failures_;
  std::vector<Catch2Failure> catch2_failures_;
  std::vector<std::string> notes_;
  int uncaught_at_start_ = 0;              // std::uncaught_exceptions() when the case began
  bool unwinding_from_assertion_ = false;  // a REQUIRE failed: the unwinding that follows is Catch2's own
  bool written_ = false;  // written early (fatal signal): the destructor leaves the file alone
};

}  // namespace kmesh::e2e
