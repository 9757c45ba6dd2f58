#include "e2e/framework/case.h"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "e2e/framework/case_output.h"
#include "e2e/framework/evidence_schema.h"

namespace kmesh::e2e {

Case::Case(std::string suite, std::string title, std::string env_name)
    : suite_(std::move(suite)), title_(std::move(title)), env_(std::move(env_name)) {
  dir_ = CaseOutputDir() + "/" + CaseFolderName(title_);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  doc_ = nlohmann::json::object();
  doc_[evidence::kStarted] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  uncaught_at_start_ = std::uncaught_exceptions();
  SubscribeToCatch2Failures(this);
}

Case::~Case() {
  UnsubscribeFromCatch2Failures(this);
  if (written_) return;
  if (std::uncaught_exceptions() > uncaught_at_start_ && !unwinding_from_assertion_) {
    // An exception is unwinding through the case. Its message reaches the listener only after the
    // unwinding, so the bundle is written now and written again once Catch2 names the exception.
    Catch2Failure f;
    f.kind = Catch2Failure::Kind::kException;
    f.text = "an exception ended the case before it finished (its message follows once Catch2 reports it)";
    f.ends_case = true;
    catch2_failures_.push_back(f);
    nlohmann::json bundle = ToJson();
    Write(bundle);
    AwaitEscapedException([bundle, path = dir_ + "/evidence.json"](const Catch2Failure& reported) mutable {
      nlohmann::json& last = bundle["catch2_failures"].back();
      last["where"] = reported.where;
      last["text"] = reported.text;
      std::ofstream(path) << bundle.dump(2) << "\n";
    });
    return;
  }
  Write(ToJson());
}

void Case::Write(const nlohmann::json& bundle) const {
  std::ofstream out(dir_ + "/evidence.json");
  out << bundle.dump(2) << "\n";
}

void Case::OnCatch2Failure(const Catch2Failure& failure) {
  catch2_failures_.push_back(failure);
  unwinding_from_assertion_ = failure.ends_case;
  if (failure.kind == Catch2Failure::Kind::kCrash && !written_) {
    // Catch2's signal handler: the process dies right after, so this is the bundle's only chance.
    Write(ToJson());
    written_ = true;
  }
}

void Case::Add(const std::string& section, nlohmann::json entry) {
  doc_[section].push_back(std::move(entry));
}

void Case::Set(const std::string& key, nlohmann::json value) { doc_[key] = std::move(value); }

void Case::Fail(const std::string& explanation) { failures_.push_back(explanation); }

void Case::Note(const std::string& line) { notes_.push_back(line); }

void Case::KmeshDefect(const std::string& code, const std::string& what, const std::string& kmesh_source) {
  Set("kmesh_defect", {{"code", code}, {"what", what}, {"kmesh_source", kmesh_source}});
  std::cerr << "[kmesh defect " << code << " expected] " << what << " (" << kmesh_source << ")\n";
}

void Case::AddDisagreement(const std::string& code) {
  auto& list = doc_[evidence::kDisagreements];
  if (!list.is_array()) list = nlohmann::json::array();
  for (const auto& c : list) {
    if (c == code) return;
  }
  list.push_back(code);
}

nlohmann::json Case::ToJson() const {
  nlohmann::json j = doc_;
  j[evidence::kSuite] = suite_;
  j[evidence::kTitle] = title_;
  j[evidence::kEnv] = env_;
  j[evidence::kPassed] = !failed();
  // A run with lab faults injected on purpose (e2e/mutation): the report keeps it apart. KMESH_E2E_FAULT_RUN
  // names the run of e2e/mutation (a fault's id, or "control"); a source mutant's run has no lab fault.
  if (const char* faults = std::getenv("KMESH_E2E_LAB_FAULTS"); faults && *faults)
    j[evidence::kLabFaults] = faults;
  if (const char* run = std::getenv("KMESH_E2E_FAULT_RUN"); run && *run) {
    j[evidence::kFaultRun] = run;
    if (!j.contains(evidence::kLabFaults)) j[evidence::kLabFaults] = run;
  }
  j[evidence::kFailures] = failures_;  // the explanations of Fail()
  // What Catch2 reported while the case was open, in order (kind: assertion, exception or crash).
  j[evidence::kCatch2Failures] = nlohmann::json::array();
  for (const auto& f : catch2_failures_) {
    j[evidence::kCatch2Failures].push_back(
        {{"kind", ToString(f.kind)}, {"where", f.where}, {"text", f.text}});
  }
  j[evidence::kNotes] = notes_;
  j[evidence::kFinished] = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  return j;
}

}  // namespace kmesh::e2e
