// kmesh-lab-agent: the lab's IPsec agent for one node (see ipsec_agent.h). Started by the lab inside the
// node's namespace; stops (flushing like Kmesh) on SIGTERM.
#include <cstring>
#include <iostream>
#include <string>

#include "e2e/lab/ipsec_agent.h"

int main(int argc, char** argv) {
  kmesh::lab::AgentConfig cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--node")
      cfg.node = value;
    else if (flag == "--address")
      cfg.address = value;
    else if (flag == "--pod-cidr")
      cfg.pod_cidr = value;
    else if (flag == "--boot-id")
      cfg.boot_id = value;
    else if (flag == "--state")
      cfg.state_dir = value;
    else if (flag == "--pin-dir")
      cfg.pin_dir = value;
    else {
      std::cerr << "kmesh-lab-agent: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (cfg.node.empty() || cfg.address.empty() || cfg.pod_cidr.empty() || cfg.boot_id.empty() ||
      cfg.state_dir.empty() || cfg.pin_dir.empty()) {
    std::cerr << "usage: kmesh-lab-agent --node N --address IP --pod-cidr CIDR --boot-id ID --state DIR "
                 "--pin-dir DIR\n";
    return 2;
  }
  return kmesh::lab::RunAgent(cfg);
}
