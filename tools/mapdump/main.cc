// kmesh-mapdump: Kmesh's XDP authorization maps and attachments for people. See Usage() in format.cc.
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tools/mapdump/commands.h"

namespace {

// `watch` runs until interrupted: stop after the current read, so the last line printed is whole.
void OnStop(int) { kmesh::mapdump::RequestStop(); }

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  return kmesh::mapdump::Run(args, STDOUT_FILENO, STDERR_FILENO);
}
