// kmesh-lab-daemon: the lab's stand-in for one node's Kmesh daemon (kmesh_daemon.h). Started by
// KmeshPolicyWriter with the node's map ids; reads requests on stdin, answers on fd 3, exits 0 at the end
// of its input. stdout and stderr carry Kmesh's deserializer log lines and its own.
//
//   kmesh-lab-daemon --node NAME --state-dir DIR [--pin-dir DIR] --map km_authz_policy=ID --map
//   kmesh_map64=ID ...
// With --pin-dir it also runs Kmesh's userspace authorizer on that node's km_auth_req / km_auth_res.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "e2e/lab/kmesh_daemon.h"
#include "e2e/lab/kmesh_daemon_protocol.h"

namespace {

void Reply(FILE* out, const nlohmann::json& j) {
  const std::string line = j.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

int Usage(const std::string& why) {
  std::cerr << "kmesh-lab-daemon: " << why
            << "\nusage: kmesh-lab-daemon --node NAME --state-dir DIR [--pin-dir DIR] --map NAME=ID [--map "
               "NAME=ID ...]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  kmesh::lab::NodeDaemonConfig config;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--node") {
      config.node_name = v;
    } else if (a == "--state-dir") {
      config.state_dir = v;
    } else if (a == "--pin-dir") {
      config.pin_dir = v;
    } else if (a == "--map") {
      const auto eq = v.find('=');
      if (eq == std::string::npos) return Usage("--map " + v + ": expected NAME=ID");
      char* end = nullptr;
      const unsigned long id = std::strtoul(v.c_str() + eq + 1, &end, 10);
      if (*end != '\0' || eq + 1 == v.size()) return Usage("--map " + v + ": the id is not a number");
      config.map_ids[v.substr(0, eq)] = static_cast<uint32_t>(id);
    } else {
      return Usage("unknown argument " + a);
    }
  }
  if (config.node_name.empty()) return Usage("--node is required");

  FILE* replies = fdopen(kmesh::lab::daemon_protocol::kReplyFd, "w");
  if (replies == nullptr) {
    std::cerr << "kmesh-lab-daemon: fd " << kmesh::lab::daemon_protocol::kReplyFd
              << " (the reply pipe) is not open: " << std::strerror(errno) << "\n";
    return 2;
  }
  std::unique_ptr<kmesh::lab::NodeDaemon> daemon;
  try {
    daemon = std::make_unique<kmesh::lab::NodeDaemon>(config);
  } catch (const std::exception& e) {
    std::cerr << "kmesh-lab-daemon: " << e.what() << "\n";
    Reply(replies, {{"ok", false}, {"error", e.what()}});
    return 1;
  }
  std::cerr << "kmesh-lab-daemon: node " << config.node_name << " ready (pid " << getpid() << ")\n";
  Reply(replies, {{"ok", true}, {"ready", true}, {"pid", getpid()}});

  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    nlohmann::json reply;
    try {
      reply = daemon->Handle(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      reply = {{"ok", false}, {"error", std::string("request is not JSON: ") + e.what()}};
    }
    Reply(replies, reply);
  }
  daemon.reset();
  std::cerr << "kmesh-lab-daemon: node " << config.node_name << ": input closed, exiting\n";
  return 0;
}
