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

// How to reach the cluster, from the environment, as kubectl itself does:
//   KUBECONFIG               the kubeconfig file(s), ':'-separated; unset: $HOME/.kube/config, which is
//                            where Kmesh's CI has it (kind writes it there; test/e2e/run_test.sh then runs
//                            `kubectl config use-context kind-kmesh-testing`)
//   KMESH_E2E_KUBECTL        the kubectl binary (default: `kubectl` on PATH)
//   KMESH_E2E_KUBE_CONTEXT   a context of the kubeconfig (default: its current context)
//   KMESH_E2E_KUBE_DRY_RUN   1: print the commands, run nothing
// The run only deletes what it created (a namespace that exists is never used), so the default file is
// as safe as an explicit one; the preflight names the file and context it found.
struct KubectlConfig {
  std::string binary = "kubectl";
  std::string kubeconfig;  // KUBECONFIG as given ("" = unset); a single file is passed as --kubeconfig
  std::string context;
  bool dry_run = false;
  // $HOME/.kube/config when KUBECONFIG is unset ("" when HOME is unset too). kubectl finds it by itself,
  // so it is only checked and named, never passed.
  std::string home_kubeconfig;

  static KubectlConfig FromEnvironment();
  // The file(s) kubectl will read: KUBECONFIG, else the home default.
  std::string Files() const { return kubeconfig.empty() ? home_kubeconfig : kubeconfig; }
  // "KUBECONFIG=/x" or "~/.kube/config (/root/.kube/config; KUBECONFIG is not set)", for messages.
  std::string Describe() const;
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
  // A read or change the harness makes itself, in this process, rather than by running a command (the kind
  // transport reads a node's maps, xfrm and pods from the host). It is logged like a command, as
  // "(in process) " + the kmesh-probe command line that does the same from the host, with its duration and
  // exit status (0, or 1 when `fn` throws; the exception goes on). A dry run logs and prints it and does
  // not call `fn`: the caller then answers with a placeholder.
  void InProcess(const std::vector<std::string>& equivalent, const std::function<void()>& fn);
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
