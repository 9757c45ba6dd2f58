#include "e2e/conformance/conformance.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

namespace kmesh::conformance {

using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Indent(const std::string& text, const std::string& pad) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) out += pad + line + "\n";
  return out;
}

}  // namespace

std::string RegressionName(const DisagreementClass& k) {
  std::string cause;
  for (char ch : k.shrunk ? k.minimal_cause : k.cause) {
    if (ch == ' ') continue;
    cause += ch == '+'   ? std::string("-")
             : ch == '|' ? std::string("-or-")
                         : std::string(1, static_cast<char>(std::tolower(ch)));
  }
  const Case& c = k.shrunk ? k.minimal.c : k.first_case;
  const Connection& conn = k.shrunk ? c.connections.at(0) : c.connections.at(k.first_connection);
  return cause + "-" + ToString(k.kind) + "-" + ToString(conn.family());
}

std::string DescribeVerdict(const Case& c, const ConnVerdict& v, const std::string& maps) {
  std::ostringstream o;
  o << "policies (" << c.policies.size() << "; workload " << c.workload.ns << "/httpbin-0 labels";
  for (const auto& [k, val] : c.workload.labels) o << " " << k << "=" << val;
  o << "):\n" << Indent(ToYaml(c.policies), "    ");
  o << "  connection: " << v.conn.tuple.ToString() << " (" << ToString(v.conn.family()) << ", SYN)\n";
  o << "  istio:      " << v.istio.Describe() << "\n";
  o << "  expected:   XDP must " << ToString(v.istio.expected)
    << " (km_auth_res: " << v.istio.cache.ToString() << ")\n";
  o << "  kmesh:      " << v.kmesh.ToString() << "\n";
  o << "  model:      " << ModelVerdict(v.model)
    << (v.model_matches ? " (agrees with Kmesh)" : " (MISSES Kmesh)") << "\n";
  if (!v.model.steps.empty()) o << Indent(bpf_probe::FormatExplanation(v.model), "              ");
  if (v.kind) {
    o << "  disagree:   " << ToString(*v.kind) << ": " << Explain(*v.kind) << "\n";
    o << "  cause:      " << v.cause.Codes() << "\n" << Indent(v.cause.Describe(), "              ");
  }
  if (!maps.empty()) o << "  maps:\n" << Indent(maps, "    ");
  return o.str();
}

std::string RunReport::Summary() const {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(0);
  o << "conformance run, seed " << options.seed << ": " << cases << " cases, " << verdicts << " verdicts in "
    << judge_seconds << " s (" << VerdictsPerSecond() << " verdicts/s), shrinking " << shrink_seconds
    << " s\n";
  o << "  judging: " << judge_timings.ToString() << "\n";
  o << "  Istio's answers: ";
  for (const auto& [e, n] : expected_counts) o << e << " " << n << "  ";
  o << "\n  disagreements: " << disagreements << " verdicts in " << classes.size()
    << " distinct classes (kind x cause); model misses: " << model_misses << "\n";
  o.precision(1);
  o << "  node resets: " << resets
    << "; kmesh_map64 blobs leaked per removed case (D9): " << leaked_blobs_per_case << "\n";
  for (const auto& k : classes) {
    o << "  - " << conformance::ToString(k.kind) << " caused by " << k.cause << ": " << k.count
      << " verdicts, first in case " << k.first_case_seed
      << (k.kept() ? ", kept as " + k.regression.name : ", not kept: " + k.not_kept) << "\n";
  }
  return o.str();
}

std::string RunReport::ToString() const {
  std::ostringstream o;
  o << Summary() << "\ndatapath: " << datapath << "\n";
  int n = 0;
  for (const auto& k : classes) {
    o << "\n=== disagreement " << ++n << " of " << classes.size() << ": " << conformance::ToString(k.kind)
      << ", caused by " << k.cause << " (" << k.count << " verdicts)\n";
    o << "first seen: case seed " << k.first_case_seed << ", connection " << k.first_connection
      << " (replay: KMESH_E2E_CONFORMANCE_CASE=" << k.first_case_seed << ")\n";
    if (k.shrunk) {
      o << "minimal case (" << k.minimal.tries << " candidates tried"
        << (k.minimal.reproduced ? ", reproduced on a fresh node" : ", NOT reproduced on a fresh node")
        << "):\n";
      o << DescribeVerdict(k.minimal.c, k.minimal.verdict, k.minimal.maps);
      if (!k.minimal.reproduced) {
        // Typically D5 or D10 on a node with history: their byte-offset reads named a blob an earlier case
        // left (indexes past 255); on a fresh node they name nothing.
        o << "as found, on the node after " << k.first_case_seed << "'s predecessors:\n"
          << DescribeVerdict(k.first_case, k.first, k.first_maps);
      }
      if (k.kept()) o << "kept as: testdata/conformance/" << k.regression.name << ".yaml\n";
      if (!k.kept()) o << "not kept: " << k.not_kept << "\n";
    } else {
      o << "as found (not shrunk: budget spent):\n" << DescribeVerdict(k.first_case, k.first, k.first_maps);
    }
  }
  for (const auto& m : misses) {
    o << "\n=== model miss: case seed " << m.case_seed << ", connection " << m.connection << "\n"
      << ModelMiss(m.verdict) << "\n"
      << DescribeVerdict(m.c, m.verdict, m.maps);
  }
  return o.str();
}

RunReport RunConformance(Differential& diff, const RunOptions& options) {
  RunReport report;
  report.options = options;
  KmeshXdpUnderTest& node = diff.node();
  report.datapath = node.identity().Describe();
  const auto start = Clock::now();
  const auto judge_deadline =
      start + std::chrono::duration_cast<Clock::duration>(options.budget * (1.0 - options.shrink_share));
  const auto deadline = start + options.budget;
  node.Reset();
  const uint64_t resets_before = node.resets();
  uint64_t leaked = 0, leak_cases = 0;

  for (uint64_t index = 0;; ++index) {
    if (!options.only_case_seeds.empty()) {
      if (index >= options.only_case_seeds.size()) break;
    } else if (Clock::now() >= judge_deadline || (options.max_cases != 0 && index >= options.max_cases)) {
      break;
    }
    const uint64_t seed =
        options.only_case_seeds.empty() ? CaseSeed(options.seed, index) : options.only_case_seeds[index];
    const Case c = Generate(seed, options.generator);
    const CaseRun run = diff.Run(c);
    ++report.cases;
    for (size_t i = 0; i < run.verdicts.size(); ++i) {
      const ConnVerdict& v = run.verdicts[i];
      ++report.verdicts;
      ++report.expected_counts[ToString(v.istio.expected)];
      if (!v.model_matches) {
        ++report.model_misses;
        if (report.misses.size() < 5) report.misses.push_back(ModelMissRecord{seed, i, c, v, run.maps});
      }
      if (!v.kind) continue;
      ++report.disagreements;
      const std::string cause = v.cause.Key();
      auto it = std::find_if(report.classes.begin(), report.classes.end(), [&](const DisagreementClass& k) {
        return k.kind == *v.kind && k.cause == cause;
      });
      if (it == report.classes.end()) {
        DisagreementClass k;
        k.kind = *v.kind;
        k.cause = cause;
        k.cause_text = v.cause.Codes() + "\n" + v.cause.Describe();
        k.first_case_seed = seed;
        k.first_connection = i;
        k.first_case = c;
        k.first = v;
        k.first_maps = run.maps;
        report.classes.push_back(std::move(k));
        it = report.classes.end() - 1;
      }
      ++it->count;
    }
    if (node.cases_since_reset() >= options.reset_every) {
      leaked += node.InnerEntries();  // every case removed: what is left is the deserializer's leak
      leak_cases += node.cases_since_reset();
      node.Reset();
    }
  }
  report.judge_seconds = Seconds(Clock::now() - start);
  report.judge_timings = diff.timings();

  // Shrink the simplest causes first: a combined one often shrinks to one of them, and is then a duplicate.
  const auto shrink_start = Clock::now();
  std::vector<DisagreementClass*> order;
  for (auto& k : report.classes) {
    if (k.first.model_matches) order.push_back(&k);
  }
  auto weight = [](const DisagreementClass* k) {
    return k->cause == "unexplained" ? 100
                                     : static_cast<int>(std::count(k->cause.begin(), k->cause.end(), '+'));
  };
  std::stable_sort(order.begin(), order.end(), [&](const DisagreementClass* a, const DisagreementClass* b) {
    return weight(a) < weight(b);
  });
  size_t left = order.size();
  for (DisagreementClass* kp : order) {
    DisagreementClass& k = *kp;
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto share = (deadline - now) / static_cast<long>(std::max<size_t>(left--, 1));
    k.minimal = diff.Shrink(k.first_case, k.first_case.connections.at(k.first_connection), k.kind, k.cause,
                            now + share);
    k.shrunk = true;
    k.minimal_cause = k.minimal.verdict.cause.Codes();
    for (const auto& other : report.classes) {
      if (&other != &k && other.shrunk && !other.duplicate && other.minimal.reproduced &&
          other.kind == k.kind && other.minimal_cause == k.minimal_cause) {
        k.duplicate = true;
      }
    }
  }
  // Which minimal cases to keep (DisagreementClass::keep): for each defect, one case per kind a client sees
  // whose only cause is that defect; a defect that never shows alone (D35 always comes with D8) keeps one
  // case where it is one of the single-defect alternatives; a defect with no visible kind keeps one
  // evidence-only case.
  auto visible = [](Kind kind) {
    return kind == Kind::kPassedDenied || kind == Kind::kDroppedAllowed || kind == Kind::kDroppedDeferred;
  };
  auto eligible = [](const DisagreementClass& k) {
    return k.shrunk && k.minimal.reproduced && !k.duplicate && k.minimal.verdict.cause.explained();
  };
  // The single-defect fixes of a minimal cause ({D5}, or {D8, D35} for "D8 | D35"); empty for combinations.
  auto singles = [](const DisagreementClass& k) {
    std::vector<std::string> codes;
    for (const auto& f : k.minimal.verdict.cause.fixes) {
      if (f.size() != 1) return std::vector<std::string>{};
      codes.push_back(f.Codes());
    }
    return codes;
  };
  std::map<std::string, std::set<Kind>> kept_kinds;  // code -> kinds kept for it
  auto keep = [&](DisagreementClass& k, const std::string& code) {
    k.keep = true;
    k.represents = code;
    kept_kinds[code].insert(k.kind);
  };
  for (auto& k : report.classes) {  // unique cause, a kind a client sees
    const auto codes = singles(k);
    if (eligible(k) && codes.size() == 1 && visible(k.kind) && kept_kinds[codes[0]].count(k.kind) == 0) {
      keep(k, codes[0]);
    }
  }
  // Alternatives, the fewest first ("D8 | D35" before "D8 | D10 | D30 | D35"); visible kinds first, then
  // evidence only.
  std::vector<DisagreementClass*> by_alternatives;
  for (auto& k : report.classes) by_alternatives.push_back(&k);
  std::stable_sort(by_alternatives.begin(), by_alternatives.end(),
                   [&](const DisagreementClass* a, const DisagreementClass* b) {
                     return singles(*a).size() < singles(*b).size();
                   });
  for (int pass = 0; pass < 2; ++pass) {
    for (DisagreementClass* kp : by_alternatives) {
      DisagreementClass& k = *kp;
      if (!eligible(k) || k.keep || (pass == 0 && !visible(k.kind))) continue;
      for (const auto& code : singles(k)) {
        if (kept_kinds[code].empty()) {
          keep(k, code);
          break;
        }
      }
    }
  }
  for (auto& k : report.classes) {
    if (k.keep) {
      RegressionCase& r = k.regression;
      r.name = RegressionName(k);
      r.defect = k.minimal_cause;
      r.kind = ToString(k.kind);
      r.explanation = k.minimal.verdict.istio.Describe() +
                      ". Kmesh's XDP: " + k.minimal.verdict.kmesh.ToString() + ". " + Explain(k.kind) +
                      ". Cause: " + k.minimal.verdict.cause.Describe();
      r.found_seed = k.first_case_seed;
      r.c = k.minimal.c;
      r.istio = ToString(k.minimal.verdict.istio.expected);
      r.kmesh = k.minimal.verdict.kmesh.ToString();
    } else if (!k.shrunk) {
      k.not_kept = "not shrunk (budget spent)";
    } else if (!k.minimal.reproduced) {
      k.not_kept =
          "its minimal case did not disagree the same way on a fresh node (the node's history mattered)";
    } else if (k.duplicate) {
      k.not_kept = "it shrinks to " + k.minimal_cause + ", kept for an earlier class";
    } else if (!k.minimal.verdict.cause.explained()) {
      k.not_kept = "no known defect explains it";
    } else if (singles(k).empty()) {
      k.not_kept = "an interaction of " + k.minimal_cause + ": each is kept alone";
    } else if (singles(k).size() > 1) {
      k.not_kept = "fixing any one of " + k.minimal_cause +
                   " makes it conform: each is kept where it is the only cause";
    } else {
      k.not_kept = k.minimal_cause + " is kept with this kind already, or with a kind a client sees";
    }
  }
  if (leak_cases > 0)
    report.leaked_blobs_per_case = static_cast<double>(leaked) / static_cast<double>(leak_cases);
  report.shrink_seconds = Seconds(Clock::now() - shrink_start);
  report.resets = node.resets() - resets_before;
  return report;
}

}  // namespace kmesh::conformance
