#include "e2e/framework/case_output.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "base/error.h"

namespace kmesh::e2e {
namespace {

std::mutex mu;
std::string current_case;  // folder name, empty outside a case

// Catch2 runs test cases on one thread, but a collector may assert from another: keep both lists locked.
std::mutex failures_mu;
std::vector<Catch2FailureSubscriber*> subscribers;
std::vector<std::function<void(const Catch2Failure&)>> awaiting_exception;

std::string BinaryName() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "test";
  buf[n] = '\0';
  return std::filesystem::path(buf).filename().string();
}

void MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create evidence folder " + dir + ": " + ec.message());
}

}  // namespace

std::string RunOutputDir() {
  std::string dir;
  if (const char* v = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR"); v && *v) {
    dir = v;
  } else {
    dir = "/tmp/kmesh-e2e/" + BinaryName() + "-" + std::to_string(getpid());
  }
  MakeDirs(dir);
  return dir;
}

std::string CaseFolderName(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_';
    out += keep ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

std::string CaseOutputDir() {
  std::string folder;
  {
    std::lock_guard<std::mutex> lock(mu);
    folder = current_case;
  }
  const std::string root = RunOutputDir();
  if (folder.empty()) return root;
  const std::string dir = root + "/" + folder;
  MakeDirs(dir);
  return dir;
}

void BeginCaseOutput(const std::string& test_case_name) {
  {
    std::lock_guard<std::mutex> lock(mu);
    current_case = CaseFolderName(test_case_name);
  }
  CaseOutputDir();
}

void EndCaseOutput() {
  std::vector<std::function<void(const Catch2Failure&)>> unanswered;
  {
    std::lock_guard<std::mutex> lock(failures_mu);
    unanswered.swap(awaiting_exception);
  }
  for (auto& fill : unanswered) {
    Catch2Failure f;
    f.kind = Catch2Failure::Kind::kException;
    f.text = "an exception ended the case and the test caught it itself, so Catch2 never reported its message";
    f.ends_case = true;
    fill(f);
  }
  std::string folder;
  {
    std::lock_guard<std::mutex> lock(mu);
    folder = current_case;
    current_case.clear();
  }
  if (folder.empty()) return;
  // A case that left no evidence leaves no empty folder behind.
  std::error_code ec;
  const auto dir = std::filesystem::path(RunOutputDir()) / folder;
  if (std::filesystem::is_empty(dir, ec)) std::filesystem::remove(dir, ec);
}

const char* ToString(Catch2Failure::Kind kind) {
  switch (kind) {
    case Catch2Failure::Kind::kAssertion: return "assertion";
    case Catch2Failure::Kind::kException: return "exception";
    case Catch2Failure::Kind::kCrash: return "crash";
  }
  return "?";
}

void SubscribeToCatch2Failures(Catch2FailureSubscriber* subscriber) {
  std::lock_guard<std::mutex> lock(failures_mu);
  subscribers.push_back(subscriber);
}

void UnsubscribeFromCatch2Failures(Catch2FailureSubscriber* subscriber) {
  std::lock_guard<std::mutex> lock(failures_mu);
  subscribers.erase(std::remove(subscribers.begin(), subscribers.end(), subscriber), subscribers.end());
}

void AwaitEscapedException(std::function<void(const Catch2Failure&)> fill) {
  std::lock_guard<std::mutex> lock(failures_mu);
  awaiting_exception.push_back(std::move(fill));
}

void ReportCatch2Failure(const Catch2Failure& failure) {
  std::vector<Catch2FailureSubscriber*> open;
  std::vector<std::function<void(const Catch2Failure&)>> waiting;
  {
    std::lock_guard<std::mutex> lock(failures_mu);
    open = subscribers;
    if (failure.kind != Catch2Failure::Kind::kAssertion) waiting.swap(awaiting_exception);
  }
  for (auto* s : open) s->OnCatch2Failure(failure);
  for (auto& fill : waiting) fill(failure);
}

}  // namespace kmesh::e2e
