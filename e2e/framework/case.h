// Case: the evidence bundle of one test case. Everything a case learns — the policy it applied, each
// probe with outcome, timings and tuple, the map entries for those tuples, XDP attachments, xfrm
// snapshots and their diff, xfrm_stat deltas, captures — goes into one JSON document written to
// <case evidence folder>/evidence.json when the Case ends, pass or fail. tools/report turns a run's
// bundles into one HTML page.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kmesh::e2e {

class Case {
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

  bool failed() const { return !failures_.empty(); }
  const std::string& title() const { return title_; }
  // Where the bundle goes (the Catch2 case's evidence folder); pcaps are saved beside it.
  const std::string& dir() const { return dir_; }
  nlohmann::json ToJson() const;

 private:
  std::string suite_, title_, env_, dir_;
  nlohmann::json doc_;
  std::vector<std::string> failures_;
  std::vector<std::string> notes_;
};

}  // namespace kmesh::e2e
