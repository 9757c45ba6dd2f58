#include "e2e/kube/kubectl.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <sstream>

#include "e2e/kube/dry_run.h"

namespace kmesh::kube {
namespace {

bool Executable(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

KubectlConfig KubectlConfig::FromEnvironment() {
  KubectlConfig c;
  auto get = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (std::string b = get("KMESH_E2E_KUBECTL"); !b.empty()) c.binary = b;
  c.kubeconfig = get("KUBECONFIG");
  if (c.kubeconfig.empty() && !get("HOME").empty()) c.home_kubeconfig = get("HOME") + "/.kube/config";
  c.context = get("KMESH_E2E_KUBE_CONTEXT");
  const std::string dry = get("KMESH_E2E_KUBE_DRY_RUN");
  c.dry_run = dry == "1" || dry == "true" || dry == "yes";
  return c;
}

std::string KubectlConfig::Describe() const {
  if (!kubeconfig.empty()) return "KUBECONFIG=" + kubeconfig;
  if (!home_kubeconfig.empty()) return "~/.kube/config (" + home_kubeconfig + "; KUBECONFIG is not set)";
  return "no kubeconfig (neither KUBECONFIG nor HOME is set)";
}

std::string FindExecutable(const std::string& name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return Executable(name) ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string p = (dir.empty() ? "." : dir) + "/" + name;
    if (Executable(p)) return p;
  }
  return "";
}

netns::Process CommandRunner::Start(const CommandSpec& cmd) { return netns::Process::Start(cmd.argv); }

netns::ProcessResult ProcessRunner::Run(const CommandSpec& cmd) {
  return netns::Run(cmd.argv, {}, cmd.bound);
}

bool KubectlError::NotFound() const {
  return result_.err.find("(NotFound)") != std::string::npos ||
         result_.err.find(" not found") != std::string::npos;
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    bool plain = !a.empty();
    for (char c : a) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) ||
            std::string("-_./:=,@%+").find(c) != std::string::npos))
        plain = false;
    }
    std::string q = a;
    if (!plain) {
      q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      q += "'";
    }
    s += (s.empty() ? "" : " ") + q;
  }
  return s;
}

std::string DescribeResult(const netns::ProcessResult& r, bool sensitive_output) {
  std::string s = "`" + ShellJoin(r.argv) + "`";
  if (r.timed_out) {
    s += " timed out after " + std::to_string(r.elapsed.count()) + " ms";
  } else if (r.signal != 0) {
    s += " was killed by signal " + std::to_string(r.signal);
  } else {
    s += " exited " + std::to_string(r.exit_code);
  }
  std::string detail = Trim(r.err);
  if (detail.empty() && !sensitive_output) detail = Trim(r.out);
  if (detail.size() > 2000) detail = detail.substr(0, 2000) + " ...";
  if (!detail.empty()) s += ": " + detail;
  if (sensitive_output) s += " (stdout withheld: it carries key material)";
  return s;
}

Kubectl::Kubectl(KubectlConfig config, std::unique_ptr<CommandRunner> runner)
    : config_(std::move(config)), runner_(std::move(runner)) {}

std::unique_ptr<Kubectl> Kubectl::FromEnvironment() {
  KubectlConfig c = KubectlConfig::FromEnvironment();
  std::unique_ptr<CommandRunner> runner;
  if (c.dry_run) {
    runner = std::make_unique<DryRunRunner>();
  } else {
    runner = std::make_unique<ProcessRunner>();
  }
  auto k = std::make_unique<Kubectl>(c, std::move(runner));
  if (c.dry_run) k->EchoTo(&std::cerr);
  return k;
}

std::vector<std::string> Kubectl::Argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {config_.binary};
  // kubectl's --kubeconfig takes one file; a list stays in KUBECONFIG, which kubectl inherits.
  if (!config_.kubeconfig.empty() && config_.kubeconfig.find(':') == std::string::npos)
    argv.insert(argv.end(), {"--kubeconfig", config_.kubeconfig});
  if (!config_.context.empty()) argv.insert(argv.end(), {"--context", config_.context});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

netns::ProcessResult Kubectl::Execute(const CommandSpec& cmd) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (echo_ != nullptr)
      *echo_ << (config_.dry_run ? "[dry run] " : "[kube] ") << ShellJoin(cmd.argv) << "\n";
  }
  netns::ProcessResult r;
  try {
    r = runner_->Run(cmd);
  } catch (const Error& e) {
    // exec failed (no such binary): say which binary and how to point at another.
    throw Error(std::string(e.what()) + " (set KMESH_E2E_KUBECTL to the kubectl binary, or put it on PATH)");
  }
  r.argv = cmd.argv;
  std::lock_guard<std::mutex> l(mu_);
  log_.push_back({ShellJoin(cmd.argv), r.exit_code, r.timed_out, r.elapsed});
  return r;
}

netns::ProcessResult Kubectl::Run(const std::vector<std::string>& args, const std::string& what,
                                  std::chrono::milliseconds bound, bool sensitive_output) {
  netns::ProcessResult r = Execute({Argv(args), bound, sensitive_output});
  if (!r.ok()) {
    std::string msg = what + ": " + DescribeResult(r, sensitive_output);
    if (r.timed_out) msg += " (the bound is KMESH_E2E_KUBECTL_MS or the wait's own tunable)";
    throw KubectlError(msg, r);
  }
  return r;
}

netns::ProcessResult Kubectl::Try(const std::vector<std::string>& args, std::chrono::milliseconds bound,
                                  bool sensitive_output) {
  return Execute({Argv(args), bound, sensitive_output});
}

netns::ProcessResult Kubectl::RunOther(const std::vector<std::string>& argv,
                                       std::chrono::milliseconds bound) {
  return Execute({argv, bound, false});
}

void Kubectl::InProcess(const std::vector<std::string>& equivalent, const std::function<void()>& fn) {
  const std::string text = "(in process) " + ShellJoin(equivalent);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (echo_ != nullptr) *echo_ << (config_.dry_run ? "[dry run] " : "[kube] ") << text << "\n";
  }
  CommandLogEntry e{text, 0, false, std::chrono::milliseconds(0)};
  const auto start = std::chrono::steady_clock::now();
  auto done = [&] {
    e.elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    std::lock_guard<std::mutex> l(mu_);
    log_.push_back(e);
  };
  if (config_.dry_run) return done();
  try {
    fn();
  } catch (...) {
    e.exit_code = 1;
    done();
    throw;
  }
  done();
}

netns::Process Kubectl::Start(const std::vector<std::string>& args, std::chrono::milliseconds bound) {
  CommandSpec cmd{Argv(args), bound, false};
  {
    std::lock_guard<std::mutex> l(mu_);
    if (echo_ != nullptr)
      *echo_ << (config_.dry_run ? "[dry run] " : "[kube] ") << ShellJoin(cmd.argv) << " &\n";
    log_.push_back({ShellJoin(cmd.argv) + " &", 0, false, std::chrono::milliseconds(0)});
  }
  return runner_->Start(cmd);
}

nlohmann::json Kubectl::GetJson(std::vector<std::string> args, const std::string& what,
                                std::chrono::milliseconds bound) {
  args.insert(args.end(), {"-o", "json"});
  const auto r = Run(args, what, bound);
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) {
    throw Error(what + ": `" + ShellJoin(r.argv) + "` did not print JSON: found \"" + r.out.substr(0, 200) +
                "\"");
  }
  return j;
}

std::optional<nlohmann::json> Kubectl::GetJsonIfExists(std::vector<std::string> args, const std::string& what,
                                                       std::chrono::milliseconds bound) {
  args.insert(args.end(), {"--ignore-not-found", "-o", "json"});
  const auto r = Run(args, what, bound);
  if (Trim(r.out).empty()) return std::nullopt;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) {
    throw Error(what + ": `" + ShellJoin(r.argv) + "` did not print JSON: found \"" + r.out.substr(0, 200) +
                "\"");
  }
  return j;
}

std::vector<CommandLogEntry> Kubectl::Log() const {
  std::lock_guard<std::mutex> l(mu_);
  return log_;
}

std::vector<std::string> Kubectl::Commands() const {
  std::vector<std::string> out;
  for (const auto& e : Log()) out.push_back(e.command);
  return out;
}

}  // namespace kmesh::kube
