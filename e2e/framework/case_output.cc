#include "e2e/framework/case_output.h"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <unistd.h>

#include "base/error.h"

namespace kmesh::e2e {
namespace {

std::mutex mu;
std::string current_case;  // folder name, empty outside a case

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

}  // namespace kmesh::e2e
