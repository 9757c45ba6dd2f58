// The one Catch2 main of the project, compiled once and linked into every test.
//  - Bazel's --test_filter (TESTBRIDGE_TEST_ONLY) becomes a Catch2 test spec.
//  - A listener writes JUnit XML to $XML_OUTPUT_FILE (Catch2 2.x runs one reporter; the console one stays
//    for people) and gives each test case its evidence folder under $TEST_UNDECLARED_OUTPUTS_DIR.
//  - Kernel and e2e tiers (KMESH_E2E_TIER, set by the Bazel macros) check privileges first and fail with
//    a message that says root is needed; they never pass silently.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "base/privileges.h"
#include "e2e/framework/case_output.h"

namespace {

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

struct CaseRecord {
  std::string name;
  std::string file;
  double seconds = 0;
  std::vector<std::string> failures;  // one entry per failed assertion or unexpected exception
  // A case tagged [kmesh-defect][Dn][!shouldfail]: it reproduces a known Kmesh defect, so failing is its
  // pass. JUnit shows it without <failure> and with the property kmesh_defect=Dn; if it passes, the defect
  // no longer reproduces and that is the failure.
  std::string defect;  // "D2", or "" for an ordinary case
  bool expected_to_fail = false;
};

// "D2" from the tags [kmesh-defect][D2]; "" when the case carries no kmesh-defect tag.
std::string DefectOf(const Catch::TestCaseInfo& info) {
  bool defect = false;
  std::string code;
  for (const auto& t : info.tags) {
    if (t == "kmesh-defect") defect = true;
    if (t.size() >= 2 && (t[0] == 'D' || t[0] == 'd') &&
        t.find_first_not_of("0123456789", 1) == std::string::npos) {
      code = "D" + t.substr(1);
    }
  }
  return defect ? (code.empty() ? "D?" : code) : "";
}

std::vector<CaseRecord> g_cases;

class KmeshListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    g_cases.push_back(
        CaseRecord{info.name, info.lineInfo.file, 0, {}, DefectOf(info), info.expectedToFail()});
    start_ = std::chrono::steady_clock::now();
    kmesh::e2e::BeginCaseOutput(info.name);
  }

  bool assertionEnded(Catch::AssertionStats const& stats) override {
    const Catch::AssertionResult& r = stats.assertionResult;
    if (r.isOk()) return true;
    kmesh::e2e::Catch2Failure f;
    switch (r.getResultType()) {
      case Catch::ResultWas::ThrewException:
        f.kind = kmesh::e2e::Catch2Failure::Kind::kException;
        break;
      case Catch::ResultWas::FatalErrorCondition:
        f.kind = kmesh::e2e::Catch2Failure::Kind::kCrash;
        break;
      default:
        f.kind = kmesh::e2e::Catch2Failure::Kind::kAssertion;
        break;
    }
    f.where = r.getSourceInfo().file + std::string(":") + std::to_string(r.getSourceInfo().line);
    // An exception outside any assertion carries Catch2's placeholder instead of an expression.
    const bool expression =
        r.hasExpression() && r.getExpression().find("{Unknown expression") == std::string::npos;
    if (expression) f.text = r.getExpressionInMacro() + " with expansion " + r.getExpandedExpression();
    if (r.hasMessage()) f.text += (f.text.empty() ? "" : "; ") + r.getMessage();
    for (const auto& info : stats.infoMessages) {
      // Catch2 copies the result's own message into infoMessages too.
      if (r.hasMessage() && info.message == r.getMessage()) continue;
      f.text += "\n  with " + info.message;
    }
    f.ends_case = f.kind == kmesh::e2e::Catch2Failure::Kind::kCrash ||
                  !Catch::shouldContinueOnFailure(r.m_info.resultDisposition);
    if (!g_cases.empty()) g_cases.back().failures.push_back(f.where + ": " + f.text);
    kmesh::e2e::ReportCatch2Failure(f);
    return true;
  }

  void testCaseEnded(Catch::TestCaseStats const& stats) override {
    if (!g_cases.empty()) {
      g_cases.back().seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    kmesh::e2e::EndCaseOutput();
  }

  void testRunEnded(Catch::TestRunStats const& stats) override { WriteJUnit(stats.runInfo.name); }

 private:
  static void WriteJUnit(const std::string& suite) {
    const char* path = std::getenv("XML_OUTPUT_FILE");
    if (path == nullptr || *path == '\0') return;
    size_t failures = 0;
    double total = 0;
    for (const auto& c : g_cases) {
      failures += c.failures.empty() == c.expected_to_fail ? 1 : 0;
      total += c.seconds;
    }
    std::ofstream out(path);
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
        << "  <testsuite name=\"" << XmlEscape(suite) << "\" tests=\"" << g_cases.size() << "\" failures=\""
        << failures << "\" errors=\"0\" time=\"" << total << "\">\n";
    for (const auto& c : g_cases) {
      out << "    <testcase name=\"" << XmlEscape(c.name) << "\" classname=\"" << XmlEscape(suite)
          << "\" file=\"" << XmlEscape(c.file) << "\" time=\"" << c.seconds << "\"";
      if (c.expected_to_fail) {
        // [!shouldfail]: failing is what it should do (a Kmesh defect reproduced); passing is the failure.
        out << ">\n      <properties>\n";
        if (!c.defect.empty()) {
          out << "        <property name=\"kmesh_defect\" value=\"" << XmlEscape(c.defect) << "\"/>\n";
        }
        out << "        <property name=\"outcome\" value=\""
            << (c.failures.empty() ? "passed although expected to fail" : "failed as expected") << "\"/>\n"
            << "      </properties>\n";
        if (c.failures.empty()) {
          const std::string why =
              c.defect.empty() ? "the case passed although tagged [!shouldfail]"
                               : "Kmesh defect " + c.defect +
                                     " no longer reproduces: the case passed (fixed in Kmesh? then drop its "
                                     "[!shouldfail] tag)";
          out << "      <failure message=\"" << XmlEscape(why) << "\">" << XmlEscape(why) << "</failure>\n";
        } else {
          std::string all;
          for (const auto& f : c.failures) all += f + "\n";
          out << "      <system-out>" << XmlEscape(all) << "</system-out>\n";
        }
        out << "    </testcase>\n";
        continue;
      }
      if (c.failures.empty()) {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      for (const auto& f : c.failures) {
        const std::string first_line = f.substr(0, f.find('\n'));
        out << "      <failure message=\"" << XmlEscape(first_line) << "\">" << XmlEscape(f)
            << "</failure>\n";
      }
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n</testsuites>\n";
  }

  std::chrono::steady_clock::time_point start_;
};

}  // namespace

CATCH_REGISTER_LISTENER(KmeshListener)

int main(int argc, char** argv) {
  const char* tier = std::getenv("KMESH_E2E_TIER");
  if (tier != nullptr && (std::strcmp(tier, "kernel") == 0 || std::strcmp(tier, "e2e") == 0)) {
    if (std::string missing = kmesh::MissingKernelPrivileges(); !missing.empty()) {
      std::cerr << "kmesh-e2e: " << tier << " tier: " << missing << "\n";
      return 1;
    }
  }

  std::vector<char*> args(argv, argv + argc);
  std::string filter;
  if (const char* f = std::getenv("TESTBRIDGE_TEST_ONLY"); f != nullptr && *f != '\0') {
    filter = f;
    args.push_back(filter.data());
  }
  Catch::Session session;
  if (int rc = session.applyCommandLine(static_cast<int>(args.size()), args.data()); rc != 0) return rc;
  if (!session.configData().name.size()) {
    const char* target = std::getenv("TEST_TARGET");
    session.configData().name = target ? target : argv[0];
  }
  return session.run();
}
