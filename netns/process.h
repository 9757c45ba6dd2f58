// Child processes the harness runs (ip, curl, gunicorn, tcpdump for cross-checks), optionally inside a
// network namespace. Every wait is bounded (defaults.h); a Process object that dies takes its whole
// process group with it (SIGTERM, then SIGKILL), and children get SIGKILL if the harness itself dies
// (PR_SET_PDEATHSIG), so a crashed run leaves no servers behind.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "base/defaults.h"
#include "netns/netns.h"

namespace kmesh::netns {

struct ProcessOptions {
  std::optional<NetnsRef> netns;         // run inside this namespace (else the caller's)
  std::vector<std::string> env;          // "KEY=VALUE" entries set on top of the caller's environment
  std::string cwd;                       // working directory (else the caller's)
  enum class Output { kCapture, kFile, kInherit, kDiscard } output = Output::kCapture;
  std::string output_file;               // for kFile: stdout and stderr both go here (appended)
  // An open "cgroup.procs" of a cgroup v2 (lab::NodeCgroup): the child writes "0" to it before exec, so
  // the program runs in that cgroup from its first instruction. The caller keeps it open until Start returns.
  int join_cgroup_procs_fd = -1;
};

struct ProcessResult {
  std::vector<std::string> argv;
  int exit_code = -1;       // -1 when killed by a signal or timed out
  int signal = 0;           // the signal that ended it, if any
  bool timed_out = false;   // the bound ran out and the harness killed it
  std::string out;          // captured stdout (kCapture)
  std::string err;          // captured stderr (kCapture)
  std::chrono::milliseconds elapsed{0};

  bool ok() const { return exit_code == 0 && !timed_out; }
  // "ip link add ... exited 2: <stderr>" for error messages.
  std::string Describe() const;
};

class Process {
 public:
  static Process Start(const std::vector<std::string>& argv, const ProcessOptions& opts = {});
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Waits at most `bound`; on expiry kills the process group and reports timed_out.
  ProcessResult Wait(std::chrono::milliseconds bound = defaults::Command());
  // SIGTERM the group, wait up to `grace`, then SIGKILL. Idempotent.
  ProcessResult Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

 private:
  Process() = default;
  void Collect(std::chrono::steady_clock::time_point deadline, ProcessResult& r);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::vector<std::string> argv_;
  std::chrono::steady_clock::time_point started_;
  std::optional<ProcessResult> done_;
};

// Runs to completion within `bound`.
ProcessResult Run(const std::vector<std::string>& argv, const ProcessOptions& opts = {},
                  std::chrono::milliseconds bound = defaults::Command());

// Runs and throws kmesh::Error (with the command, exit code and stderr) unless it exits 0.
ProcessResult RunChecked(const std::vector<std::string>& argv, const ProcessOptions& opts = {},
                         std::chrono::milliseconds bound = defaults::Command());

// Shorthand: RunChecked inside a namespace.
ProcessResult RunIn(const NetnsRef& ns, const std::vector<std::string>& argv);

}  // namespace kmesh::netns
