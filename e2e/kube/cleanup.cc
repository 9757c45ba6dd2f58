#include "e2e/kube/cleanup.h"

#include <exception>
#include <iostream>

namespace kmesh::kube {

CleanupStack::~CleanupStack() {
  for (const auto& line : RunAll()) std::cerr << "kube cleanup: " << line << "\n";
}

void CleanupStack::Push(const std::string& key, const std::string& description, std::function<void()> undo) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& s : steps_) {
    if (s.key == key) return;
  }
  steps_.push_back({key, description, std::move(undo)});
}

bool CleanupStack::Has(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& s : steps_) {
    if (s.key == key) return true;
  }
  return false;
}

bool CleanupStack::Cancel(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = steps_.begin(); it != steps_.end(); ++it) {
    if (it->key == key) {
      steps_.erase(it);
      return true;
    }
  }
  return false;
}

std::vector<std::string> CleanupStack::RunAll() {
  std::vector<std::string> failures;
  while (true) {
    Step step;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (steps_.empty()) break;
      step = std::move(steps_.back());
      steps_.pop_back();
    }
    try {
      step.undo();
    } catch (const std::exception& e) {
      failures.push_back(step.description + ": " + e.what());
    } catch (...) {
      failures.push_back(step.description + ": unknown error");
    }
  }
  return failures;
}

std::vector<std::string> CleanupStack::Pending() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) out.push_back(it->description);
  return out;
}

}  // namespace kmesh::kube
