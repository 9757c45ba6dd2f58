#include "e2e/kube/dry_run.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipsec/ipsec_secret.h"
#include "node/probe_json.h"

namespace kmesh::kube {
namespace {

using nlohmann::json;

const char* kNodes[] = {"kmesh-testing-control-plane", "kmesh-testing-worker"};
const char* kNodeIps[] = {"172.18.0.2", "172.18.0.3"};
const char* kPodCidrs[] = {"10.244.0.0/24", "10.244.1.0/24"};
const char* kBootIds[] = {"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"};

int NodeIndex(const std::string& node) { return node == kNodes[0] ? 0 : 1; }

// The value after `flag` in argv ("" when absent), and "-l app=x" style selectors.
std::string After(const std::vector<std::string>& a, const std::string& flag) {
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    if (a[i] == flag) return a[i + 1];
  }
  return "";
}

bool Has(const std::vector<std::string>& a, const std::string& word) {
  return std::find(a.begin(), a.end(), word) != a.end();
}

// argv without the binary and kubectl's global flags.
std::vector<std::string> Verbs(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "--kubeconfig" || argv[i] == "--context") {
      ++i;
      continue;
    }
    out.push_back(argv[i]);
  }
  return out;
}

json Pod(const std::string& ns, const std::string& name, const std::string& app, const std::string& node,
         const std::string& ip, const std::vector<std::pair<std::string, std::string>>& containers,
         const std::vector<std::string>& args = {}) {
  json specs = json::array(), statuses = json::array();
  for (size_t i = 0; i < containers.size(); ++i) {
    json c = {{"name", containers[i].first}, {"image", containers[i].second}};
    if (i == 0 && !args.empty()) {
      c["command"] = {"/bin/sh", "-c"};
      c["args"] = args;
    }
    specs.push_back(c);
    statuses.push_back({{"name", containers[i].first},
                        {"image", containers[i].second},
                        {"ready", true},
                        {"restartCount", 0},
                        {"started", true},
                        {"state", {{"running", {{"startedAt", "2026-01-01T00:00:00Z"}}}}}});
  }
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"uid", "dry-run-" + ns + "-" + name},
            {"labels", {{"app", app}}}}},
          {"spec", {{"nodeName", node}, {"containers", specs}}},
          {"status",
           {{"phase", "Running"},
            {"podIP", ip},
            {"podIPs", json::array({{{"ip", ip}}})},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}},
                                        {{"type", "PodScheduled"}, {"status", "True"}}})},
            {"containerStatuses", statuses}}}};
}

json List(json items) {
  return {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}, {"metadata", {{"resourceVersion", ""}}}};
}

netns::ProcessResult Ok(const std::string& out) {
  netns::ProcessResult r;
  r.exit_code = 0;
  r.out = out;
  return r;
}

}  // namespace

// Reads an applied (or created, replaced) manifest: where it pins each app (nodeName), so its pod answers
// from that node, and the IPsec secret's data, so `get secret` answers it next.
void DryRunRunner::Remember(const std::string& manifest_path) {
  std::ifstream f(manifest_path);
  std::string line, app, node;
  bool secret = false;
  while (std::getline(f, line)) {
    auto value = [&](const std::string& key) {
      const auto at = line.find(key);
      if (at == std::string::npos) return std::string();
      std::string v = line.substr(at + key.size());
      v.erase(0, v.find_first_not_of(" \""));
      v.erase(v.find_last_not_of(" \"") + 1);
      return v;
    };
    if (std::string v = value("app:"); !v.empty() && app.empty()) app = v;
    if (std::string v = value("nodeName:"); !v.empty()) node = v;
    if (value("name:") == "kmesh-ipsec") secret = true;
    if (std::string v = value("ipSec:"); secret && !v.empty()) {
      const auto bytes = ipsec::Base64Decode(v, "dry run: " + manifest_path);
      secret_spi_ = ipsec::IpsecSecret::Parse(std::string(bytes.begin(), bytes.end()), manifest_path).spi;
      secret_ipsec_ = v;
    }
    if (line == "---") {
      if (!app.empty() && !node.empty()) node_of_app_[app] = node;
      app.clear();
      node.clear();
    }
  }
  if (!app.empty() && !node.empty()) node_of_app_[app] = node;
}

std::string DryRunRunner::PodIp(const std::string& node) {
  return "10.244." + std::to_string(NodeIndex(node)) + "." + std::to_string(next_host_++);
}

netns::ProcessResult DryRunRunner::Answer(const std::vector<std::string>& argv) {
  std::lock_guard<std::mutex> l(mu_);
  const auto a = Verbs(argv);
  if (argv.empty() || a.empty()) return Ok("");
  if (!secret_initialized_) {
    ipsec::IpsecSecret left;  // what Kmesh's Go e2e leaves: SPI 2 (the key is a placeholder)
    left.spi = 2;
    left.aead_key = ipsec::KeyMaterial(std::vector<uint8_t>(ipsec::IpsecSecret::kKeyBytes, 0));
    const std::string json = left.Serialize();
    secret_ipsec_ = ipsec::Base64Encode(std::vector<uint8_t>(json.begin(), json.end()));
    secret_spi_ = left.spi;
    secret_initialized_ = true;
  }
  if (argv[0].find("docker") != std::string::npos) {
    // docker inspect -f {{.State.Pid}} NODE: the kind transport's only docker command.
    if (a[0] == "inspect" && a.size() > 1) return Ok(std::to_string(kDryRunPids[NodeIndex(a.back())]) + "\n");
    netns::ProcessResult r;
    r.exit_code = 1;
    r.err = "dry run: no placeholder for this docker command";
    return r;
  }
  const std::string& verb = a[0];
  const std::string ns = After(a, "-n");
  if (verb == "version") {
    return Ok(json({{"clientVersion", {{"gitVersion", "v0.0.0-dry-run"}}},
                    {"serverVersion", {{"gitVersion", "v1.30.0-dry-run"}}}})
                  .dump());
  }
  if (verb == "apply" || verb == "create" || verb == "replace") {
    Remember(After(a, "-f"));
    std::ifstream f(After(a, "-f"));
    std::string out;
    for (std::string line; std::getline(f, line);) {
      if (line.rfind("kind:", 0) == 0) out += line.substr(6) + " " + verb + "d (dry run)\n";
    }
    return Ok(out);
  }
  if (verb == "get" && a.size() > 1) {
    const std::string& kind = a[1];
    const std::string selector = After(a, "-l");
    if (kind == "nodes") {
      json items = json::array();
      for (int i = 0; i < 2; ++i) {
        items.push_back({{"metadata", {{"name", kNodes[i]}}},
                         {"spec", {{"podCIDR", kPodCidrs[i]}, {"podCIDRs", {kPodCidrs[i]}}}},
                         {"status",
                          {{"addresses", json::array({{{"type", "InternalIP"}, {"address", kNodeIps[i]}},
                                                      {{"type", "Hostname"}, {"address", kNodes[i]}}})},
                           {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
                           {"nodeInfo", {{"bootID", kBootIds[i]}}}}}});
      }
      return Ok(List(items).dump());
    }
    if (kind == "pods" && ns == "kmesh-system") {
      const std::string field = After(a, "--field-selector");
      json items = json::array();
      for (int i = 0; i < 2; ++i) {
        if (!field.empty() && field != std::string("spec.nodeName=") + kNodes[i]) continue;
        items.push_back(Pod("kmesh-system", std::string("kmesh-dryrun") + std::to_string(i), "kmesh",
                            kNodes[i], "10.244." + std::to_string(i) + ".2",
                            {{"kmesh", "localhost:5000/kmesh:latest"}},
                            {"./start_kmesh.sh --mode=dual-engine --enable-bypass=false --monitoring=true "
                             "--enable-ipsec=true"}));
      }
      return Ok(List(items).dump());
    }
    if (kind == "pods") {
      std::string app = selector.rfind("app=", 0) == 0 ? selector.substr(4) : "";
      if (selector.rfind("gateway.networking.k8s.io/gateway-name=", 0) == 0) app = selector.substr(39);
      if (app.empty()) return Ok(List(json::array()).dump());
      const std::string node = node_of_app_.count(app) ? node_of_app_[app] : kNodes[1];
      std::string& ip = pod_ip_[ns + "/" + app];
      if (ip.empty()) ip = PodIp(node);
      std::vector<std::pair<std::string, std::string>> containers = {{app, "dry-run/" + app}};
      if (app.find("sleep") != std::string::npos) containers = {{"sleep", "curlimages/curl"}};
      if (app.find("fortio") != std::string::npos) containers = {{"fortio", "fortio/fortio"}};
      return Ok(List(json::array({Pod(ns, app + "-dryrun", app, node, ip, containers)})).dump());
    }
    if (kind == "service" || kind == "services") {
      std::string& ip = service_ip_[ns + "/" + a[2]];
      if (ip.empty()) ip = "10.96.0." + std::to_string(next_host_++);
      return Ok(
          json({{"metadata", {{"name", a[2]}, {"namespace", ns}}}, {"spec", {{"clusterIP", ip}}}}).dump());
    }
    if (kind.find("gateway") != std::string::npos) {
      return Ok(
          json({{"metadata", {{"name", a.size() > 2 ? a[2] : ""}}},
                {"status", {{"conditions", json::array({{{"type", "Programmed"}, {"status", "True"}}})}}}})
              .dump());
    }
    if ((kind == "secret" || kind == "secrets") && a.size() > 2 && a[2] == "kmesh-ipsec") {
      if (secret_ipsec_.empty()) {
        if (Has(a, "--ignore-not-found")) return Ok("");
        netns::ProcessResult r;
        r.exit_code = 1;
        r.err = "Error from server (NotFound): secrets \"kmesh-ipsec\" not found";
        return r;
      }
      return Ok(json({{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"metadata", {{"name", "kmesh-ipsec"}, {"namespace", "kmesh-system"}}},
                      {"type", "Opaque"},
                      {"data", {{"ipSec", secret_ipsec_}}}})
                    .dump());
    }
    if (kind.find("kmeshnodeinfo") != std::string::npos) {
      json items = json::array();
      for (int i = 0; i < 2; ++i) {
        items.push_back({{"metadata", {{"name", kNodes[i]}, {"namespace", "kmesh-system"}}},
                         {"spec",
                          {{"spi", secret_spi_},
                           {"addresses", {kNodeIps[i]}},
                           {"bootID", kBootIds[i]},
                           {"podCIDRS", {kPodCidrs[i]}}}}});
      }
      return Ok(List(items).dump());
    }
    // namespaces, secrets, policies: absent in a dry run (nothing was created).
    if (Has(a, "--ignore-not-found")) return Ok("");
    netns::ProcessResult r;
    r.exit_code = 1;
    r.err = "Error from server (NotFound): dry run: " + kind + " not found";
    return r;
  }
  if (verb == "exec") {
    const auto dash = std::find(a.begin(), a.end(), "--");
    const std::vector<std::string> remote(dash == a.end() ? a.end() : dash + 1, a.end());
    if (!remote.empty() && remote[0] == "curl") {
      netns::ProcessResult r;
      r.exit_code = 1;
      r.out = json({{"http_code", 0},
                    {"exitcode", 1},
                    {"errormsg", kCurlError},
                    {"local_ip", ""},
                    {"local_port", 0},
                    {"remote_ip", ""},
                    {"remote_port", 0},
                    {"time_connect", 0},
                    {"time_total", 0}})
                  .dump();
      r.err = std::string("curl: (1) ") + kCurlError + "\ncommand terminated with exit code 1\n";
      return r;
    }
    if (!remote.empty() && remote[0].find("kmesh-probe") != std::string::npos) {
      // The probe's command: the first word that is neither an option nor an option's value.
      auto cmd = remote.end();
      for (auto it = remote.begin() + 1; it != remote.end(); ++it) {
        if (*it == "--proc" || *it == "--maps" || *it == "--port-order") {
          ++it;
          if (it == remote.end()) break;
          continue;
        }
        if (it->rfind("--", 0) != 0) {
          cmd = it;
          break;
        }
      }
      const std::string c = cmd == remote.end() ? "" : *cmd;
      json body;
      if (c == "maps") {
        body = {{"source", "dry run"}, {"maps", json::array()}, {"policy_ids", json::array()}};
        if (!After(remote, "--workload-ip").empty()) {
          body["workload"] = {
              {"ip", After(remote, "--workload-ip")}, {"id", nullptr}, {"policy_ids", nullptr}};
        }
      } else if (c == "auth") {
        body = {{"map", "dry run"},
                {"tuple", After(remote, "--tuple")},
                {"port_order", "host"},
                {"verdict", nullptr},
                {"verdict_value", nullptr}};
      } else if (c == "xdp") {
        body = {{"netns", "dry run"},
                {"ifname", "eth0"},
                {"ifindex", 0},
                {"mode", "none"},
                {"programs", json::array()}};
      } else if (c == "xfrm") {
        body = {{"snapshot",
                 {{"netns", "dry run"},
                  {"states", json::array()},
                  {"policies", json::array()},
                  {"xfrm_stat", json::object()}}},
                {"raw_keys", false}};
      } else if (c == "xfrm-delete-state") {
        body = {{"deleted", "esp spi " + After(remote, "--spi") + " src " + After(remote, "--src") + " dst " +
                                After(remote, "--dst")},
                {"netns", "dry run"}};
      } else if (c == "capture") {
        capture::CaptureSummary none;  // nothing captured
        none.netns = "dry run";
        none.interface = After(remote, "--iface");
        none.filter = After(remote, "--filter");
        body = node::CaptureReportBody(none);
      } else {
        return Ok(node::ErrorReport(c, "dry run: not run").dump());
      }
      return Ok(node::Envelope(c, body).dump());
    }
    return Ok("");
  }
  if (verb == "delete") {
    if (a.size() > 2 && (a[1] == "secret" || a[1] == "secrets") && a[2] == "kmesh-ipsec")
      secret_ipsec_.clear();
    return Ok("deleted (dry run)\n");
  }
  return Ok("");
}

netns::ProcessResult DryRunRunner::Run(const CommandSpec& cmd) {
  netns::ProcessResult r = Answer(cmd.argv);
  r.argv = cmd.argv;
  return r;
}

netns::Process DryRunRunner::Start(const CommandSpec& cmd) {
  const netns::ProcessResult r = Answer(cmd.argv);
  return netns::Process::Start({"printf", "%s", r.out});
}

}  // namespace kmesh::kube
