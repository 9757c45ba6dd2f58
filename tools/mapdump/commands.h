// kmesh-mapdump's commands: parse the command line, gather data from the kernel with bpf_probe, print it
// with format.h. Run() is main() minus the process: it returns the exit code and writes to the given fds,
// so tests can drive it too.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/tuple.h"
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

  bpf_probe::PortOrder port_order = bpf_probe::PortOrder::kHost;
  bool json = false;
  bool btf = true;
  bool help = false;

  AuthFilter filter;
  std::vector<std::string> names;  // --name ns/name
};

// Parses argv (without argv[0]). Throws kmesh::Error naming the bad argument.
Options ParseArgs(const std::vector<std::string>& argv);

// Runs the command; writes results to out_fd and diagnostics to err_fd; returns the exit code.
int Run(const std::vector<std::string>& argv, int out_fd, int err_fd);

}  // namespace kmesh::mapdump
