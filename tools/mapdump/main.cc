// kmesh-mapdump: Kmesh's XDP authorization maps and attachments for people. See Usage() in format.cc.
#include <unistd.h>

#include <string>
#include <vector>

#include "tools/mapdump/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return kmesh::mapdump::Run(args, STDOUT_FILENO, STDERR_FILENO);
}
