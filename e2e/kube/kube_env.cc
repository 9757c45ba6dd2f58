// The kube env's lifetime: options from the environment, construction after the preflight, the cleanup of
// everything it created (at destruction, and at exit for an env never destroyed), its nodes. What it does
// is in kube_preflight.cc, kube_deploy.cc, kube_policies.cc, kube_traffic.cc, kube_evidence.cc,
// kube_ipsec.cc and kube_dataplane.cc.
#include "e2e/kube/kube_env.h"

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "base/error.h"
#include "base/runfiles.h"
#include "e2e/framework/case_output.h"
#include "e2e/kube/kube_env_text.h"

namespace kmesh::kube {
namespace {

// Live envs, so that an env the suite never destroys (a static left at exit, an exception in a fixture)
// still removes what it created when the process exits.
std::mutex g_live_mu;
std::set<KubeEnv*>& Live() {
  static auto* s = new std::set<KubeEnv*>();
  return *s;
}

void CleanupLiveAtExit() {
  std::vector<KubeEnv*> envs;
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    envs.assign(Live().begin(), Live().end());
  }
  for (KubeEnv* e : envs) {
    for (const auto& line : e->CleanupNow()) std::cerr << "kube cleanup at exit: " << line << "\n";
  }
}

}  // namespace

// ---- options ----

KubeOptions KubeOptions::FromEnvironment() {
  KubeOptions o;
  o.run_id = "r" + std::to_string(getpid()) + "-" + std::to_string(std::time(nullptr));
  o.cluster_id = EnvOr("KMESH_E2E_KUBE_CLUSTER_ID", "Kubernetes");
  o.images = Images::FromEnvironment();
  o.node_access = NodeAccessOptions::FromEnvironment();
  o.node_access.run_id = o.run_id;
  // Needed only by the probe transport; a missing binary is reported when a copy is needed, after the
  // cluster checks (which say more about a misconfigured run).
  try {
    o.node_access.local_probe = Runfile("tools/probe/kmesh-probe");
  } catch (const Error& e) {
    o.node_access.local_probe_problem = e.what();
  }
  return o;
}

// ---- KubeEnv ----

KubeEnv::KubeEnv(std::unique_ptr<Kubectl> kubectl, KubeOptions options)
    : k_(std::move(kubectl)), opts_(std::move(options)) {
  if (opts_.run_id.empty())
    opts_.run_id = "r" + std::to_string(getpid()) + "-" + std::to_string(std::time(nullptr));
  if (opts_.node_access.run_id.empty()) opts_.node_access.run_id = opts_.run_id;
  opts_.node_access.kmesh_namespace = opts_.kmesh_namespace;
  facts_ = Preflight(*k_, opts_.kmesh_namespace);
  if (opts_.workdir.empty()) opts_.workdir = "/tmp/kmesh-e2e-kube-" + opts_.run_id;
  std::error_code ec;
  std::filesystem::create_directories(opts_.workdir, ec);
  if (ec) throw Error("kube env: cannot create " + opts_.workdir + ": " + ec.message());
  chmod(opts_.workdir.c_str(), 0700);
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    Live().insert(this);
  }
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(CleanupLiveAtExit); });
}

std::unique_ptr<KubeEnv> KubeEnv::FromEnvironment() {
  return std::make_unique<KubeEnv>(Kubectl::FromEnvironment(), KubeOptions::FromEnvironment());
}

KubeEnv::~KubeEnv() {
  for (const auto& line : CleanupNow()) std::cerr << "kube cleanup: " << line << "\n";
  {
    std::lock_guard<std::mutex> l(g_live_mu);
    Live().erase(this);
  }
  std::error_code ec;
  std::filesystem::remove_all(opts_.workdir, ec);
  // The command log is evidence of what the run did to the cluster.
  try {
    std::ofstream log(e2e::RunOutputDir() + "/kube-commands.log", std::ios::app);
    for (const auto& e : k_->Log()) {
      log << e.command << "    # exit " << e.exit_code << (e.timed_out ? " (timed out)" : "") << ", "
          << e.elapsed.count() << " ms\n";
    }
  } catch (const std::exception&) {
  }
  if (k_->dry_run()) {
    std::cerr << "kube env: DRY RUN: " << k_->Log().size()
              << " commands printed, none run; nothing was verified and no probe of this run can pass\n";
  }
}

std::vector<std::string> KubeEnv::CleanupNow() { return cleanup_.RunAll(); }

node::NodeEvidence& KubeEnv::node(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(name);
  if (it != nodes_.end()) return *it->second;
  std::string known;
  bool found = false;
  for (const auto& n : facts_.nodes) {
    found |= n.name == name;
    known += (known.empty() ? "" : ", ") + n.name;
  }
  if (!found) throw Error("kube env: no node named \"" + name + "\" (the cluster has " + known + ")");
  return *(nodes_[name] = MakeNodeAccess(*k_, cleanup_, name, opts_.node_access));
}

std::vector<e2e::Node> KubeEnv::Nodes() {
  std::vector<e2e::Node> out;
  for (const auto& n : facts_.nodes) out.push_back({n.name, *net::IpAddr::Parse(n.internal_ip)});
  return out;
}
}  // namespace kmesh::kube
