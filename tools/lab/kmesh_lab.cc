// kmesh-lab: bring the embedded lab up for a person to explore, show it, tear it down.
//
//   kmesh-lab up [--ipsec]   start the lab in the background (httpbin on node2 behind a waypoint, two
//                            sleep clients on node1), print how to enter every pod and node
//   kmesh-lab status [--json] what runs: the datapath (Kmesh commit, object, programs), each node's pin
//                            folder and how to read it with kmesh-mapdump, how to enter every pod and node
//   kmesh-lab down           stop it; every namespace, program, map and process goes with it
//
// One lab at a time per machine; its description lives in /run/kmesh-e2e/lab.json. `up` first removes
// what dead runs left behind (namespaces and work folders of processes that no longer exist).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/privileges.h"
#include "bpf_probe/kmesh_abi.h"
#include "e2e/lab/lab.h"
#include "ipsec/ipsec_secret.h"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kStateDir = "/run/kmesh-e2e";
constexpr const char* kStateFile = "/run/kmesh-e2e/lab.json";

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

kmesh::ipsec::IpsecSecret DemoSecret() {
  kmesh::ipsec::IpsecSecret s;
  s.spi = 1;
  std::vector<uint8_t> key(36);
  std::ifstream("/dev/urandom").read(reinterpret_cast<char*>(key.data()), key.size());
  s.aead_key = kmesh::ipsec::KeyMaterial(key);
  return s;
}

json Describe(kmesh::lab::Lab& lab) {
  json j;
  j["pid"] = getpid();
  j["workdir"] = lab.workdir();
  for (const auto& n : lab.topology().nodes()) {
    j["nodes"].push_back({{"name", n->spec.name},
                          {"netns", n->ns.name()},
                          {"address", n->spec.underlay_ip},
                          {"pod_cidr", n->spec.pod_cidr},
                          {"address6", n->spec.underlay_ip6},
                          {"pod_cidr6", n->spec.pod_cidr6},
                          {"enter", "ip netns exec " + n->ns.name() + " bash"}});
  }
  for (const auto& p : lab.topology().pods()) {
    j["pods"].push_back({{"name", p->name},
                         {"namespace", p->k8s_namespace},
                         {"node", p->node},
                         {"ip", p->ip},
                         {"ip6", p->ip6},
                         {"netns", p->ns.name()},
                         {"enter", "ip netns exec " + p->ns.name() + " bash"}});
  }
  for (const auto& n : lab.topology().nodes()) {
    auto& k = lab.kmesh(n->spec.name);
    // Kmesh's maps are pinned in the node's bpffs, as on a Kmesh node: kmesh-mapdump --pin-dir reads them.
    j["kmesh"].push_back({{"node", n->spec.name},
                          {"xdp_authz", k.xdp->identity().program("xdp_authz").id},
                          {"pin_dir", k.pin_dir()},
                          {"inspect", "bazel run //tools/mapdump:kmesh-mapdump -- --pin-dir " + k.pin_dir() +
                                          " maps|policies|auth|dump MAP"}});
  }
  j["datapath"] = lab.DatapathIdentity();
  j["ipsec"] = lab.ipsec_enabled();
  return j;
}

void SweepStaleFiles() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/tmp", ec)) {
    const std::string name = e.path().filename().string();
    const pid_t owner = kmesh::OwnerPid(name);
    if (owner > 0 && kmesh::ProcessGone(owner)) fs::remove_all(e.path(), ec);
  }
}

std::string Str(const json& j, const char* key) { return j.contains(key) ? j[key].get<std::string>() : "?"; }

// What `up` and `status` print: the datapath, each node's Kmesh and how to read its maps, how to enter
// every node and pod.
void PrintForPerson(const json& j) {
  const json& dp = j.value("datapath", json::object());
  std::cout << "datapath: " << Str(dp, "describe") << "\n"
            << "  userspace: " << Str(dp, "userspace") << "\n"
            << "  waypoint:  " << Str(dp, "waypoint") << "\n\n";
  for (const auto& node : j["nodes"]) {
    std::cout << "node " << Str(node, "name") << "  " << Str(node, "address") << "  pods "
              << Str(node, "pod_cidr");
    if (!node.value("address6", "").empty()) {
      std::cout << "\n    IPv6 " << Str(node, "address6") << "  pods " << Str(node, "pod_cidr6");
    }
    std::cout << "\n    " << Str(node, "enter") << "\n";
    for (const auto& k : j.value("kmesh", json::array())) {
      if (k.value("node", "") != node.value("name", "")) continue;
      // The node's bpffs, laid out like /sys/fs/bpf on a Kmesh node: read it by pin folder, so another lab
      // or a Kmesh on this machine (maps of the same names) is never read by mistake.
      std::cout << "    Kmesh maps: " << Str(k, "pin_dir") << " (xdp_authz prog " << k.value("xdp_authz", 0)
                << ")\n    " << Str(k, "inspect") << "\n";
    }
  }
  for (const auto& pod : j["pods"]) {
    std::cout << "pod " << Str(pod, "name") << " (" << Str(pod, "namespace") << ", " << Str(pod, "node")
              << ")  " << Str(pod, "ip");
    if (!pod.value("ip6", "").empty()) std::cout << "  " << Str(pod, "ip6");
    std::cout << "\n    " << Str(pod, "enter") << "\n";
  }
  std::cout << "\ntry: ip netns exec <sleep-a netns> curl -s http://<httpbin-waypoint ip>/get\n";
}

int Up(bool ipsec) {
  if (fs::exists(kStateFile)) {
    json j = json::parse(std::ifstream(kStateFile));
    pid_t pid = j.value("pid", 0);
    if (pid > 0 && !kmesh::ProcessGone(pid)) {
      std::cerr << "kmesh-lab: a lab is already up (pid " << pid << "); `kmesh-lab down` first\n";
      return 1;
    }
    fs::remove(kStateFile);
  }
  SweepStaleFiles();
  fs::create_directories(kStateDir);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) kmesh::ThrowErrno("pipe");
  pid_t child = fork();
  if (child < 0) kmesh::ThrowErrno("fork");
  if (child == 0) {
    close(ready[0]);
    setsid();
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    std::signal(SIGHUP, SIG_IGN);
    std::string status = "ok";
    std::unique_ptr<kmesh::lab::Lab> lab;
    try {
      lab = kmesh::lab::Lab::Up();
      lab->Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, true});
      lab->Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
      lab->Deploy({"sleep-b", kmesh::e2e::AppKind::kClient, 0, "test-ns3", {}, false});
      if (ipsec) lab->ApplySecret(DemoSecret());
      std::ofstream(kStateFile) << Describe(*lab).dump(2) << "\n";
    } catch (const std::exception& e) {
      status = e.what();
    }
    (void)!write(ready[1], status.data(), status.size());
    close(ready[1]);
    if (status != "ok") _exit(1);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    while (!g_stop) pause();
    lab.reset();
    fs::remove(kStateFile);
    _exit(0);
  }
  close(ready[1]);
  std::string status;
  char buf[4096];
  ssize_t n;
  while ((n = read(ready[0], buf, sizeof buf)) > 0) status.append(buf, n);
  close(ready[0]);
  if (status != "ok") {
    waitpid(child, nullptr, 0);
    std::cerr << "kmesh-lab up failed: " << status << "\n";
    return 1;
  }
  json j = json::parse(std::ifstream(kStateFile));
  std::cout << "lab up (pid " << child << ", work folder " << j["workdir"].get<std::string>() << ")\n\n";
  PrintForPerson(j);
  return 0;
}

int Status(bool as_json) {
  if (!fs::exists(kStateFile)) {
    std::cout << "no lab is up\n";
    return 1;
  }
  json j = json::parse(std::ifstream(kStateFile));
  const pid_t pid = j.value("pid", 0);
  const bool alive = pid > 0 && !kmesh::ProcessGone(pid);
  if (as_json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "lab (pid " << pid << ", work folder " << Str(j, "workdir") << ", IPsec "
              << (j.value("ipsec", false) ? "on" : "off") << ")\n";
    PrintForPerson(j);
    std::cout << "(kmesh-lab status --json: the whole description, with each node's program ids and tags)\n";
  }
  std::cout << (alive ? "running" : "STALE: the lab's process is gone (run `kmesh-lab down`)") << "\n";
  return alive ? 0 : 1;
}

int Down() {
  if (!fs::exists(kStateFile)) {
    SweepStaleFiles();
    std::cout << "no lab is up\n";
    return 0;
  }
  json j = json::parse(std::ifstream(kStateFile));
  const pid_t pid = j.value("pid", 0);
  if (pid > 0 && !kmesh::ProcessGone(pid)) {
    kill(pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + kmesh::defaults::Command();
    while (!kmesh::ProcessGone(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(kmesh::defaults::PollInterval());
    }
    if (!kmesh::ProcessGone(pid)) {
      kill(pid, SIGKILL);
      std::cerr << "kmesh-lab: the lab did not stop within " << kmesh::defaults::Command().count()
                << " ms; killed it (its namespaces are swept below)\n";
    }
  }
  fs::remove(kStateFile);
  SweepStaleFiles();
  std::cout << "lab down\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd != "up" && cmd != "status" && cmd != "down") {
    std::cerr << "usage: kmesh-lab up [--ipsec] | status [--json] | down\n";
    return 2;
  }
  if (auto missing = kmesh::MissingKernelPrivileges(); !missing.empty()) {
    std::cerr << "kmesh-lab: " << missing << "\n";
    return 1;
  }
  try {
    if (cmd == "up") return Up(argc > 2 && std::strcmp(argv[2], "--ipsec") == 0);
    if (cmd == "status") return Status(argc > 2 && std::strcmp(argv[2], "--json") == 0);
    return Down();
  } catch (const std::exception& e) {
    std::cerr << "kmesh-lab " << cmd << ": " << e.what() << "\n";
    return 1;
  }
}
