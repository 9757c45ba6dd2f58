// kmesh-mapdump's commands: parse the command line, gather data from the kernel with bpf_probe, print it
// with format.h. Run() is main() minus the process: it returns the exit code and writes to the given fds,
// so tests can drive it too.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "net/tuple.h"
#include "tools/mapdump/format.h"

namespace kmesh::mapdump {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the kernel side: map not found, missing privilege, ...
inline constexpr int kExitUsage = 2;  // the command line is wrong

struct Options {
  std::string command;
  std::vector<std::string> args;  // positional arguments after the command

  std::string pin_dir;            // "" = default
  bool pin_dir_given = false;
  bool by_name = false;
  std::optional<uint32_t> prog;
  std::string netns;              // name or path
  std::optional<int> pid;
  std::string dev;

  net::PortOrder port_order = net::PortOrder::kHost;
  bool json = false;
  bool btf = true;
  bool help = false;

  AuthFilter filter;
  std::vector<std::string> names;  // --name ns/name

  // residue
  std::string baseline;       // --baseline FILE: compare entry counts with it
  std::string save_baseline;  // --save-baseline FILE: write entry counts to it
  bool connections = true;    // --no-connections: do not look for km_auth_res entries' connections
  size_t limit = 5;           // --limit N: examples per kind

  // watch
  std::vector<std::string> watch_maps;  // --map NAME (repeatable; default km_auth_res)
  std::optional<uint64_t> count;        // --count N: stop after N changes
  std::optional<uint64_t> duration_ms;  // --duration MS: stop after MS milliseconds
  std::optional<uint64_t> interval_ms;  // --interval MS: between reads (default base/defaults.h)
};

// Asks a running `watch` to stop after its current read (main's SIGINT/SIGTERM handler calls it).
void RequestStop();

// Parses argv (without argv[0]). Throws kmesh::Error naming the bad argument.
Options ParseArgs(const std::vector<std::string>& argv);

// Runs the command; writes results to out_fd and diagnostics to err_fd; returns the exit code.
int Run(const std::vector<std::string>& argv, int out_fd, int err_fd);

}  // namespace kmesh::mapdump
