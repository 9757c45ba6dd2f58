#include "e2e/framework/case.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "e2e/framework/case_output.h"

namespace kmesh::e2e {

Case::Case(std::string suite, std::string title, std::string env_name)
    : suite_(std::move(suite)), title_(std::move(title)), env_(std::move(env_name)) {
  dir_ = CaseOutputDir() + "/" + CaseFolderName(title_);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  doc_ = nlohmann::json::object();
  doc_["started"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
}

Case::~Case() {
  std::ofstream out(dir_ + "/evidence.json");
  out << ToJson().dump(2) << "\n";
}

void Case::Add(const std::string& section, nlohmann::json entry) { doc_[section].push_back(std::move(entry)); }

void Case::Set(const std::string& key, nlohmann::json value) { doc_[key] = std::move(value); }

void Case::Fail(const std::string& explanation) { failures_.push_back(explanation); }

void Case::Note(const std::string& line) { notes_.push_back(line); }

nlohmann::json Case::ToJson() const {
  nlohmann::json j = doc_;
  j["suite"] = suite_;
  j["title"] = title_;
  j["env"] = env_;
  j["passed"] = failures_.empty();
  // A run with lab faults injected on purpose (e2e/sensitivity): the report keeps it apart.
  if (const char* faults = std::getenv("KMESH_E2E_LAB_FAULTS"); faults && *faults) j["lab_faults"] = faults;
  j["failures"] = failures_;
  j["notes"] = notes_;
  j["finished"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  return j;
}

}  // namespace kmesh::e2e
