// The kubectl driver: every cluster operation of the kube env is one kubectl (or docker) command run
// through a CommandRunner with a bound. Errors name the command, its exit status and its stderr. A dry
// run (KMESH_E2E_KUBE_DRY_RUN=1) records and prints every command instead of running it (dry_run.h).
// The command log is evidence: each call with its duration and exit status, written to the run's
// evidence folder.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "base/defaults.h"
#include "base/error.h"
#include "netns/process.h"

namespace kmesh::kube {

// How to reach the cluster, from the environment:
//   KUBECONFIG               required (the suites create and delete namespaces and rotate the IPsec
//                            secret: they never fall back to ~/.kube/config by accident)
//   KMESH_E2E_KUBECTL        the kubectl binary (default: `kubectl` on PATH)
//   KMESH_E2E_KUBE_CONTEXT   a context of the kubeconfig (default: its current context)
//   KMESH_E2E_KUBE_DRY_RUN   1: print the commands, run nothing
struct KubectlConfig {
  std::string binary = "kubectl";
  std::string kubeconfig;
  std::string context;
  bool dry_run = false;

  static KubectlConfig FromEnvironment();
};

// Finds `name` (or an explicit path) like execvp would: "" when not found.
std::string FindExecutable(const std::string& name);

// One command and its bound. `sensitive_output`: stdout carries key material (kmesh-probe xfrm
// --include-raw-keys) and is never put into a message or the log.
struct CommandSpec {
  std::vector<std::string> argv;
  std::chrono::milliseconds bound = defaults::Kubectl();
  bool sensitive_output = false;
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual netns::ProcessResult Run(const CommandSpec& cmd) = 0;
  // Starts a long command (a remote capture, a fortio run) in the background.
  virtual netns::Process Start(const CommandSpec& cmd);
};

// Runs for real, through netns::Process (its own process group, killed at the bound).
class ProcessRunner : public CommandRunner {
 public:
  netns::ProcessResult Run(const CommandSpec& cmd) override;
};

// A kubectl (or docker) command that failed. Its message: what was attempted, the command, the exit
// status and stderr, and what to look at next.
class KubectlError : public Error {
 public:
  KubectlError(const std::string& message, netns::ProcessResult result)
      : Error(message), result_(std::move(result)) {}
  const netns::ProcessResult& result() const { return result_; }
  // kubectl's "Error from server (NotFound)" / "not found".
  bool NotFound() const;

 private:
  netns::ProcessResult result_;
};

// `kubectl get pods -n x` as a person would paste it (arguments with spaces or shell characters quoted).
std::string ShellJoin(const std::vector<std::string>& argv);

struct CommandLogEntry {
  std::string command;  // ShellJoin of the argv
  int exit_code = 0;
  bool timed_out = false;
  std::chrono::milliseconds elapsed{0};
};

class Kubectl {
 public:
  Kubectl(KubectlConfig config, std::unique_ptr<CommandRunner> runner);
  // Real or dry-run runner as the config says.
  static std::unique_ptr<Kubectl> FromEnvironment();

  const KubectlConfig& config() const { return config_; }
  bool dry_run() const { return config_.dry_run; }

  // The full argv: kubectl [--kubeconfig F] [--context C] ARGS.
  std::vector<std::string> Argv(const std::vector<std::string>& args) const;

  // Runs kubectl ARGS; throws KubectlError (with `what` as the first words) unless it exits 0.
  netns::ProcessResult Run(const std::vector<std::string>& args, const std::string& what,
                           std::chrono::milliseconds bound = defaults::Kubectl(),
                           bool sensitive_output = false);
  // Runs kubectl ARGS and returns whatever came back (kubectl exec of curl exits with curl's code).
  netns::ProcessResult Try(const std::vector<std::string>& args,
                           std::chrono::milliseconds bound = defaults::Kubectl(),
                           bool sensitive_output = false);
  // Runs another program (docker) through the same runner and log.
  netns::ProcessResult RunOther(const std::vector<std::string>& argv,
                                std::chrono::milliseconds bound = defaults::Kubectl());
  // Starts kubectl ARGS in the background (logged now; its result is the caller's to collect).
  netns::Process Start(const std::vector<std::string>& args, std::chrono::milliseconds bound);

  // `kubectl ARGS -o json` parsed; throws naming the command when the output is not JSON.
  nlohmann::json GetJson(std::vector<std::string> args, const std::string& what,
                         std::chrono::milliseconds bound = defaults::Kubectl());

  // The same with --ignore-not-found: nullopt when the object does not exist.
  std::optional<nlohmann::json> GetJsonIfExists(std::vector<std::string> args, const std::string& what,
                                                std::chrono::milliseconds bound = defaults::Kubectl());

  // Every command so far, in order.
  std::vector<CommandLogEntry> Log() const;
  std::vector<std::string> Commands() const;
  // Where each command is also appended as it runs (and, in a dry run, printed), e.g. std::cerr.
  void EchoTo(std::ostream* out) { echo_ = out; }

 private:
  netns::ProcessResult Execute(const CommandSpec& cmd);
  KubectlConfig config_;
  std::unique_ptr<CommandRunner> runner_;
  mutable std::mutex mu_;
  std::vector<CommandLogEntry> log_;
  std::ostream* echo_ = nullptr;
};

// Human-readable failure of `r` (stdout withheld when sensitive): "`kubectl ...` exited 1: <stderr>".
std::string DescribeResult(const netns::ProcessResult& r, bool sensitive_output = false);

}  // namespace kmesh::kube
