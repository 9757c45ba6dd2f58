// Test-only: a CommandRunner that answers kubectl commands from recorded outputs (testdata/kubectl/), so
// the driver and the env are tested against kubectl's real formats without a cluster. A rule matches a
// command when every one of its words is an argument of the command; answers of a rule are used in
// order, the last one repeating (a pod that is ContainerCreating, then Ready). A command no rule matches
// gets exit 99 and is listed in unmatched(), which a test should check is empty.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/runfiles.h"
#include "e2e/kube/kubectl.h"

namespace kmesh::kube::testing {

struct Answer {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// testdata/kubectl/<name> as stdout (exit 0, or `exit_code`), optionally with a recorded stderr file.
inline std::string Recorded(const std::string& name) {
  std::ifstream in(Runfile("testdata/kubectl/" + name));
  if (!in) throw Error("no recorded output testdata/kubectl/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
inline Answer File(const std::string& name, int exit_code = 0, const std::string& err_file = "") {
  return Answer{exit_code, Recorded(name), err_file.empty() ? "" : Recorded(err_file)};
}
inline Answer Text(const std::string& out, int exit_code = 0, const std::string& err = "") {
  return Answer{exit_code, out, err};
}

// A real curl run (testdata/curl, recorded by its capture.py) as `kubectl exec <pod> -- curl ...` returns
// it: curl's stdout and stderr and exit code, and, when curl failed, the line kubectl adds on stderr. That
// line is kubectl's text written here, not recorded (recording it needs a cluster).
inline Answer CurlThroughExec(const std::string& capture) {
  std::ifstream in(Runfile("testdata/curl/captures.json"));
  const nlohmann::json c = nlohmann::json::parse(in).at("cases").at(capture);
  auto read = [](const std::string& name) {
    std::ifstream f(Runfile("testdata/curl/" + name));
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  };
  const int exit_code = c.at("exit_code").get<int>();
  std::string err = read(c.at("stderr").get<std::string>());
  if (exit_code != 0) err += "command terminated with exit code " + std::to_string(exit_code) + "\n";
  return Answer{exit_code, read(c.at("stdout").get<std::string>()), err};
}

class ReplayRunner : public CommandRunner {
 public:
  // Every command run, shared so a test can read it after the Kubectl (and the env) is gone.
  std::shared_ptr<std::vector<std::string>> journal = std::make_shared<std::vector<std::string>>();

  ReplayRunner& On(std::vector<std::string> words, std::vector<Answer> answers) {
    std::lock_guard<std::mutex> l(mu_);
    rules_.push_back({std::move(words), std::move(answers), 0});
    return *this;
  }
  ReplayRunner& On(std::vector<std::string> words, Answer a) {
    return On(std::move(words), std::vector<Answer>{a});
  }

  netns::ProcessResult Run(const CommandSpec& cmd) override {
    std::lock_guard<std::mutex> l(mu_);
    netns::ProcessResult r;
    r.argv = cmd.argv;
    journal->push_back(ShellJoin(cmd.argv));
    // Keep what was applied (the file is often removed right after: the IPsec secret).
    for (size_t i = 0; i + 1 < cmd.argv.size(); ++i) {
      if (cmd.argv[i] == "-f") {
        std::ifstream in(cmd.argv[i + 1]);
        std::stringstream s;
        s << in.rdbuf();
        applied_.push_back(s.str());
      }
    }
    for (auto& rule : rules_) {
      const bool match = std::all_of(rule.words.begin(), rule.words.end(), [&](const std::string& w) {
        return std::find(cmd.argv.begin(), cmd.argv.end(), w) != cmd.argv.end();
      });
      if (!match) continue;
      const Answer& a = rule.answers[std::min(rule.next, rule.answers.size() - 1)];
      ++rule.next;
      r.exit_code = a.exit_code;
      r.out = a.out;
      r.err = a.err;
      return r;
    }
    unmatched_.push_back(ShellJoin(cmd.argv));
    r.exit_code = 99;
    r.err = "replay: no recorded answer for " + ShellJoin(cmd.argv);
    return r;
  }

  netns::Process Start(const CommandSpec& cmd) override {
    const netns::ProcessResult r = Run(cmd);
    return netns::Process::Start(
        {"sh", "-c", "printf '%s' \"$0\"; exit $1", r.out, std::to_string(r.exit_code)});
  }

  std::vector<std::string> unmatched() const {
    std::lock_guard<std::mutex> l(mu_);
    return unmatched_;
  }
  std::vector<std::string> applied() const {
    std::lock_guard<std::mutex> l(mu_);
    return applied_;
  }

 private:
  struct Rule {
    std::vector<std::string> words;
    std::vector<Answer> answers;
    size_t next;
  };
  mutable std::mutex mu_;
  std::vector<Rule> rules_;
  std::vector<std::string> unmatched_;
  std::vector<std::string> applied_;
};

// Joined commands of a Kubectl, one per line, for CHECKs that a command was (or was not) run.
inline std::string CommandText(const Kubectl& k) {
  std::string s;
  for (const auto& c : k.Commands()) s += c + "\n";
  return s;
}

}  // namespace kmesh::kube::testing
