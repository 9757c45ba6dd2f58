// The dry run (KMESH_E2E_KUBE_DRY_RUN=1): every command is recorded and printed, none runs. Each gets a
// placeholder answer in the command's real output format, plausible enough that a suite can be walked to
// the end: a two-node kind cluster (kmesh-testing-control-plane, kmesh-testing-worker) as Kmesh's CI
// leaves it after its Go e2e: Kmesh pods with dual-engine and IPsec flags, the IPsec secret at SPI 2 and
// both KmeshNodeInfo at SPI 2 (test/e2e/ipsec_test.go rotates to SPI 2 and does not clean up), Ready app
// pods with made-up IPs, `docker inspect` of a node giving a made-up pid (kDryRunPids). A secret the run
// creates or replaces is what `get secret` answers next, and the nodes report its SPI at once. Every curl
// answers "dry run: not sent" (exit 1), so no probe of a dry run can pass an expectation: a dry run prints
// what a suite would do and never counts as a pass.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "e2e/kube/kubectl.h"

namespace kmesh::kube {

class DryRunRunner : public CommandRunner {
 public:
  netns::ProcessResult Run(const CommandSpec& cmd) override;
  // A local `printf` of the placeholder, so the caller gets a real process to wait for.
  netns::Process Start(const CommandSpec& cmd) override;

  // The placeholder answer for `argv` (kubectl ... or docker ...), without recording anything.
  netns::ProcessResult Answer(const std::vector<std::string>& argv);

  static constexpr const char* kCurlError = "dry run: the request was printed, not sent";
  // What `docker inspect -f {{.State.Pid}}` answers for kmesh-testing-control-plane and -worker.
  static constexpr int kDryRunPids[2] = {10001, 10002};

 private:
  std::string PodIp(const std::string& node);
  void Remember(const std::string& manifest_path);
  // data.ipSec of the secret kmesh-system/kmesh-ipsec ("" = none) and its SPI; starts as Kmesh's Go e2e
  // leaves it (a placeholder key of zeros).
  std::string secret_ipsec_;
  uint32_t secret_spi_ = 0;
  bool secret_initialized_ = false;
  std::mutex mu_;
  std::map<std::string, std::string> node_of_app_;  // app label -> nodeName, from applied manifests
  std::map<std::string, std::string> pod_ip_;       // ns/app -> IP handed out
  std::map<std::string, std::string> service_ip_;   // ns/name -> cluster IP handed out
  int next_host_ = 10;
};

}  // namespace kmesh::kube
