#include "e2e/mutation/score.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "e2e/framework/case_output.h"
#include "e2e/framework/evidence_schema.h"

namespace kmesh::mutation {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// The last `n` lines of `s` (a trailing newline ends the last line, it does not start another).
std::string LastLines(const std::string& s, int n) {
  size_t end = s.size();
  if (end > 0 && s[end - 1] == '\n') --end;
  size_t pos = end;
  while (n-- > 0) {
    if (pos == 0) return s.substr(0, end);
    pos = s.rfind('\n', pos - 1);
    if (pos == std::string::npos) return s.substr(0, end);
  }
  return s.substr(pos + 1, end - pos - 1);
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string Describe(const CatchingCase& c) { return c.case_name + " [" + Join(c.codes, ", ") + "]"; }

}  // namespace

const char* ToString(FaultStatus s) {
  switch (s) {
    case FaultStatus::kKilled:
      return "killed";
    case FaultStatus::kSurvived:
      return "SURVIVED";
    case FaultStatus::kNotLoaded:
      return "NOT LOADED";
    case FaultStatus::kSameObject:
      return "SAME OBJECT";
    case FaultStatus::kNoResult:
      return "NO RESULT";
    case FaultStatus::kNotScored:
      return "not scored";
    case FaultStatus::kEquivalent:
      return "equivalent";
    case FaultStatus::kNotEquivalent:
      return "NOT EQUIVALENT";
    case FaultStatus::kKnownSurvivor:
      return "survived (known)";
    case FaultStatus::kSurvivorKilled:
      return "KILLED (was a known survivor)";
  }
  return "?";
}

const CaseResult* SuiteRun::Find(const std::string& name) const {
  for (const auto& c : cases) {
    if (c.name == name) return &c;
  }
  for (const auto& c : cases) {
    if (name.rfind(c.name + ": ", 0) == 0) return &c;
  }
  const std::string folder = e2e::CaseFolderName(name);
  const CaseResult* found = nullptr;
  for (const auto& c : cases) {
    if (c.folder != folder) continue;
    if (found) return nullptr;  // several rows: the name must say which
    found = &c;
  }
  return found;
}

CaseResult ParseBundle(const json& j) {
  CaseResult c;
  c.name = j.value("suite", std::string("?")) + "/" + j.value("title", std::string("?"));
  c.passed = j.value("passed", false);
  if (j.contains("disagreements") && j["disagreements"].is_array()) {
    for (const auto& code : j["disagreements"]) {
      if (code.is_string()) c.codes.push_back(code.get<std::string>());
    }
  }
  if (j.contains("failures") && j["failures"].is_array() && !j["failures"].empty() &&
      j["failures"][0].is_string()) {
    c.first_failure = FirstLine(j["failures"][0].get<std::string>());
  } else if (j.contains("catch2_failures") && j["catch2_failures"].is_array() &&
             !j["catch2_failures"].empty()) {
    c.first_failure = FirstLine(j["catch2_failures"][0].value("text", std::string()));
  }
  if (j.contains("datapath") && j["datapath"].is_object()) {
    c.datapath_object = j["datapath"].value("object", std::string());
    c.object_sha256 = j["datapath"].value("object_sha256", std::string());
    c.sockops_object = j["datapath"].value("sockops_object", std::string());
    if (j["datapath"].contains("nodes") && j["datapath"]["nodes"].is_object()) {
      for (const auto& [node, n] : j["datapath"]["nodes"].items()) {
        if (!n.contains("programs") || !n["programs"].is_array()) continue;
        for (const auto& p : n["programs"]) {
          if (p.value("name", std::string()) == "policy_check") {
            c.policy_check_insns = std::max(c.policy_check_insns, p.value("verified_insns", 0u));
          }
        }
      }
    }
    if (j["datapath"].contains("patches") && j["datapath"]["patches"].is_array()) {
      for (const auto& p : j["datapath"]["patches"]) {
        if (p.is_string()) c.patches.push_back(p.get<std::string>());
      }
    }
  }
  c.fault_run = j.value("fault_run", std::string());
  if (j.contains("marking") && j["marking"].is_array()) {
    for (const auto& m : j["marking"]) {
      if (!m.is_object() || !m.contains("marking") || !m["marking"].is_object()) continue;
      const auto& loaded = m["marking"].value("loaded", json::array());
      for (const auto& p : loaded) {
        if (p.is_object() && p.value("name", std::string()) == "tc_mark_encrypt" &&
            c.tc_encrypt_sha256.empty())
          c.tc_encrypt_sha256 = p.value("object_sha256", std::string());
      }
    }
  }
  return c;
}

std::vector<CaseResult> ReadBundles(const std::string& dir) {
  std::vector<CaseResult> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().filename() != "evidence.json") continue;
    std::ifstream f(it->path());
    json j = json::parse(f, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    out.push_back(ParseBundle(j));
    std::error_code rel_ec;
    const fs::path rel = fs::relative(it->path(), dir, rel_ec);
    if (!rel_ec && !rel.empty()) out.back().folder = rel.begin()->string();
  }
  std::sort(out.begin(), out.end(), [](const CaseResult& a, const CaseResult& b) { return a.name < b.name; });
  return out;
}

ControlVerdict JudgeControl(const SuiteRun& control, const std::vector<std::string>& selected) {
  ControlVerdict v;
  if (control.timed_out) v.problems.push_back("the control run timed out");
  if (control.exit_code != 0) {
    v.problems.push_back("the control run exited " + std::to_string(control.exit_code) + ": " +
                         FirstLine(LastLines(control.log, 3)));
  }
  for (const auto& name : selected) {
    const CaseResult* c = control.Find(name);
    if (!c) {
      v.problems.push_back(name + ": no evidence bundle (the case did not run)");
    } else if (!c->passed) {
      v.problems.push_back(name + ": failed without any fault [" + Join(c->codes, ", ") + "] " +
                           c->first_failure);
    }
  }
  v.passed = v.problems.empty();
  return v;
}

FaultScore ScoreFault(const FaultSpec& fault, const SuiteRun& run, bool control_passed,
                      const std::string& mutant_sha256, const std::string& kmesh_sha256) {
  FaultScore s;
  s.fault = &fault;
  if (!control_passed) {
    s.status = FaultStatus::kNotScored;
    s.detail = "the control run did not pass, so no failure can be credited to the fault";
    return s;
  }
  s.object_sha256 = mutant_sha256;
  if (fault.kind == FaultKind::kSource && !mutant_sha256.empty() && mutant_sha256 == kmesh_sha256) {
    s.status = FaultStatus::kSameObject;
    s.detail = "mutants/" + fault.id + ".patch compiles to Kmesh's own object (" + fault.kmesh_object() +
               ", sha256 " + kmesh_sha256 + "): it changes nothing the datapath runs";
    return s;
  }
  std::vector<const CaseResult*> selected;
  std::vector<std::string> absent;
  for (const auto& name : fault.cases) {
    const CaseResult* c = run.Find(name);
    if (c) {
      selected.push_back(c);
    } else {
      absent.push_back(name);
    }
  }
  if (fault.kind == FaultKind::kSource && selected.empty() && !run.timed_out) {
    s.status = FaultStatus::kNotLoaded;
    s.detail = "the lab did not come up with " + fault.object() +
               " (it did with Kmesh's own object in the control run); the run's last lines:\n" +
               LastLines(run.log, 12);
    return s;
  }
  if (run.timed_out || !absent.empty()) {
    s.status = FaultStatus::kNoResult;
    s.detail = run.timed_out ? "the run timed out"
                             : "no evidence bundle for " + Join(absent, ", ") + " (exit code " +
                                   std::to_string(run.exit_code) + ")";
    return s;
  }
  // The bundles must come from this fault's run (and, for a mutant, the lab must have loaded it).
  for (const CaseResult* c : selected) {
    if (c->fault_run != fault.id) {
      s.status = FaultStatus::kNoResult;
      s.detail = c->name + " was written under fault run \"" + c->fault_run + "\", not " + fault.id;
      return s;
    }
    if (fault.kind == FaultKind::kSource && fault.program == Program::kTcEncrypt) {
      // The agents load the object; the bundle names what the kernel holds by its build record's digest.
      if (c->tc_encrypt_sha256.empty() || c->tc_encrypt_sha256 != mutant_sha256) {
        s.status = FaultStatus::kNoResult;
        s.detail = c->name + " ran tc_mark_encrypt with object sha256 \"" + c->tc_encrypt_sha256 +
                   "\", not the mutant " + fault.object() + " (sha256 " + mutant_sha256 + ")";
        return s;
      }
      continue;
    }
    const std::string& loaded = fault.program == Program::kXdp ? c->datapath_object : c->sockops_object;
    if (fault.kind == FaultKind::kSource && loaded != fault.object()) {
      s.status = FaultStatus::kNoResult;
      s.detail = c->name + " ran the object \"" + loaded + "\", not the mutant " + fault.object();
      return s;
    }
  }
  for (const CaseResult* c : selected) {
    if (c->passed) continue;
    CatchingCase k{c->name, {}};
    for (const auto& code : c->codes) {
      if (Contains(fault.codes, code)) k.codes.push_back(code);
    }
    if (k.codes.empty()) {
      s.other_failures.push_back({c->name, c->codes});
    } else {
      s.caught_by.push_back(k);
    }
  }
  for (const auto& code : fault.codes) {
    bool seen = false;
    for (const auto& k : s.caught_by) seen |= Contains(k.codes, code);
    if (!seen) s.missing_codes.push_back(code);
  }
  if (!fault.equivalent.empty()) {
    // Equivalent: no selected case may fail at all (any failure refutes the claim).
    const bool survived = s.caught_by.empty() && s.other_failures.empty();
    s.status = survived ? FaultStatus::kEquivalent : FaultStatus::kNotEquivalent;
    s.detail = survived ? "equivalent: " + fault.equivalent
                        : "claimed equivalent, yet a selected case failed: it is a mutant the suite catches; "
                          "move it to the scored faults";
    return s;
  }
  if (!fault.survivor.empty()) {
    const bool killed = s.missing_codes.empty();
    s.status = killed ? FaultStatus::kSurvivorKilled : FaultStatus::kKnownSurvivor;
    s.detail = killed ? "a case now kills this known survivor: make it an ordinary fault (drop `survivor`)"
                      : "known survivor: " + fault.survivor;
    return s;
  }
  if (s.missing_codes.empty()) {
    s.status = FaultStatus::kKilled;
    return s;
  }
  s.status = FaultStatus::kSurvived;
  std::vector<std::string> others;
  for (const auto& o : s.other_failures) others.push_back(Describe(o));
  s.detail =
      "no selected case failed with " + Join(s.missing_codes, ", ") +
      (others.empty() ? "; every selected case passed" : "; failed with other codes: " + Join(others, "; "));
  return s;
}

std::string FormatTable(const std::vector<FaultScore>& scores) {
  std::ostringstream t;
  char line[1024];
  snprintf(line, sizeof line, "%-32s %-8s %-17s %s\n", "fault", "kind", "status",
           "caught by (case [disagreement codes])");
  t << line;
  for (const auto& s : scores) {
    std::string by;
    for (const auto& k : s.caught_by) by += (by.empty() ? "" : "; ") + Describe(k);
    if (s.status != FaultStatus::kKilled) {
      by = FirstLine(s.detail);
      if (by.size() > 120) by = by.substr(0, 117) + "...";  // the whole reason is in mutation.json
    }
    snprintf(line, sizeof line, "%-32s %-8s %-17s %s\n", s.fault->id.c_str(), ToString(s.fault->kind),
             ToString(s.status), by.c_str());
    t << line;
  }
  return t.str();
}

bool AsExpected(FaultStatus s) {
  return s == FaultStatus::kKilled || s == FaultStatus::kEquivalent || s == FaultStatus::kKnownSurvivor;
}

std::string FormatScore(const std::vector<FaultScore>& scores, bool control_passed) {
  if (!control_passed) return "not scored: the control run (no fault) did not pass";
  int killed = 0, total = 0, equivalent = 0, survivors = 0;
  for (const auto& s : scores) {
    if (s.status == FaultStatus::kEquivalent) {
      ++equivalent;
      continue;
    }
    ++total;
    killed += s.status == FaultStatus::kKilled;
    survivors += s.status == FaultStatus::kKnownSurvivor;
  }
  return "mutation score: killed " + std::to_string(killed) + " / " + std::to_string(total) +
         (survivors ? ", " + std::to_string(survivors) + " known survivor" + (survivors > 1 ? "s" : "")
                    : "") +
         (equivalent ? " (" + std::to_string(equivalent) + " equivalent mutant" +
                           (equivalent > 1 ? "s" : "") + " run, not counted)"
                     : "");
}

json ToJson(const SuiteRun& control, const ControlVerdict& cv, const std::vector<SuiteRun>& runs,
            const std::vector<FaultScore>& scores, double total_seconds) {
  json faults = json::array();
  int killed = 0, equivalent = 0, survivors = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const FaultScore& s = scores[i];
    const FaultSpec& f = *s.fault;
    killed += s.status == FaultStatus::kKilled;
    equivalent += s.status == FaultStatus::kEquivalent;
    survivors += s.status == FaultStatus::kKnownSurvivor;
    json caught = json::array(), other = json::array();
    for (const auto& k : s.caught_by) caught.push_back({{"case", k.case_name}, {"codes", k.codes}});
    for (const auto& k : s.other_failures) other.push_back({{"case", k.case_name}, {"codes", k.codes}});
    json row{{"id", f.id},
             {"kind", ToString(f.kind)},
             {"suite", ToString(f.suite)},
             {"what", f.what},
             {"kmesh_source", f.kmesh_source},
             {"inject", f.inject_env()},
             {"cases", f.cases},
             {"expected_codes", f.codes},
             {"status", ToString(s.status)},
             {"killed", s.status == FaultStatus::kKilled},
             {"caught_by", caught},
             {"other_failures", other},
             {"detail", s.detail},
             {"equivalent", f.equivalent},
             {"survivor", f.survivor}};
    if (f.kind == FaultKind::kSource) {
      row["patch"] = "e2e/mutation/mutants/" + f.id + ".patch";
      row["object"] = f.object();
      row["object_sha256"] = s.object_sha256;
    }
    if (i < runs.size()) {
      for (const auto& c : runs[i].cases) {
        if (f.kind == FaultKind::kSource && f.program == Program::kXdp && c.datapath_object == f.object()) {
          row["policy_check_verified_insns"] = c.policy_check_insns;
          break;
        }
      }
      row["seconds"] = runs[i].seconds;
      row["exit_code"] = runs[i].exit_code;
      row["outputs"] = "mutation/" + runs[i].id;
    }
    faults.push_back(row);
  }
  json control_cases = json::array();
  for (const auto& c : control.cases) {
    control_cases.push_back({{"case", c.name}, {"passed", c.passed}, {"codes", c.codes}});
  }
  return {{"kind", e2e::evidence::kMutationKind},
          {"version", 1},
          {"control",
           {{"passed", cv.passed},
            {"problems", cv.problems},
            {"exit_code", control.exit_code},
            {"seconds", control.seconds},
            {"cases", control_cases},
            {"outputs", "mutation/control"}}},
          {"faults", faults},
          {"score",
           {{"scored", cv.passed},
            {"killed", cv.passed ? killed : 0},
            {"total", static_cast<int>(scores.size()) - equivalent},
            {"equivalent", equivalent},
            {"known_survivors", survivors},
            {"text", FormatScore(scores, cv.passed)}}},
          {"elapsed_seconds", total_seconds}};
}

}  // namespace kmesh::mutation
