// The manifests the kube env applies, rendered from testdata/apps/ with the strict template renderer
// (e2e/policy/template.h: every variable given is used, every variable used is given). Images come from
// the environment so a CI with a local registry (kind's localhost:5000) can point at its own copies:
//   KMESH_E2E_KUBE_HTTPBIN_IMAGE   default docker.io/mccutchen/go-httpbin:latest
//   KMESH_E2E_KUBE_SLEEP_IMAGE     default docker.io/curlimages/curl:latest
//   KMESH_E2E_KUBE_FORTIO_IMAGE    default docker.io/fortio/fortio:latest
//   KMESH_E2E_KUBE_WAYPOINT_IMAGE  default ghcr.io/kmesh-net/waypoint:latest (Kmesh's e2e default)
// Targets that render need data = ["//testdata/apps"].
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "e2e/framework/ipsec_secret.h"
#include "e2e/policy/template.h"

namespace kmesh::kube {

inline constexpr uint16_t kHttpbinPort = 8080;
inline constexpr uint16_t kHttpbinAltPort = 9090;  // the second pod port, for port policies

struct Images {
  std::string httpbin = "docker.io/mccutchen/go-httpbin:latest";
  std::string sleep = "docker.io/curlimages/curl:latest";
  std::string fortio = "docker.io/fortio/fortio:latest";
  std::string waypoint = "ghcr.io/kmesh-net/waypoint:latest";
  static Images FromEnvironment();
};

policy::Manifest RenderNamespace(const std::string& ns, const std::string& run_id);
policy::Manifest RenderHttpbin(const std::string& name, const std::string& ns, const std::string& node,
                               const std::string& image, const std::string& run_id);
policy::Manifest RenderSleep(const std::string& name, const std::string& ns, const std::string& node,
                             const std::string& image, const std::string& run_id);
policy::Manifest RenderFortio(const std::string& name, const std::string& ns, const std::string& node,
                              const std::string& image, const std::string& run_id);
policy::Manifest RenderWaypoint(const std::string& name, const std::string& ns, const std::string& image,
                                const std::string& run_id);
// Carries the raw key (base64): write it only to a private file, and remove that file after applying.
policy::Manifest RenderIpsecSecret(const ipsec::IpsecSecret& secret);

// What `kmeshctl secret create [--key=HEX]` writes next: SPI 1 when there is no secret, else the current
// SPI + 1; the given key, or 36 random bytes.
ipsec::IpsecSecret NextSecret(const std::optional<ipsec::IpsecSecret>& current,
                              const std::optional<ipsec::KeyMaterial>& key = std::nullopt);

// A Kubernetes name check (RFC 1123 label: lowercase alphanumerics and '-', at most 63, alphanumeric at
// both ends); throws kmesh::Error naming `what` and the rule.
void CheckDnsLabel(const std::string& value, const std::string& what);

}  // namespace kmesh::kube
