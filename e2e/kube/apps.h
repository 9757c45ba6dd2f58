// The manifests the kube env applies, rendered from testdata/apps/ with the strict template renderer
// (e2e/policy/template.h: every variable given is used, every variable used is given).
//
// Images are Kmesh's own e2e images wherever Kmesh's e2e has one, so a node that pulled them for Kmesh's
// Go e2e does not pull them again (imagePullPolicy IfNotPresent, as there):
//   KMESH_E2E_KUBE_SERVER_IMAGE    gcr.io/istio-testing/app:latest   (test/e2e/ipsec_test.go:392, the echo
//   app) KMESH_E2E_KUBE_SLEEP_IMAGE     docker.io/curlimages/curl:latest  (test/e2e/ipsec_test.go:386,
//                                                                     "curlimages/curl")
//   KMESH_E2E_KUBE_WAYPOINT_IMAGE  ghcr.io/kmesh-net/waypoint:latest (test/e2e/run_test.sh:17)
//   KMESH_E2E_KUBE_FORTIO_IMAGE    docker.io/fortio/fortio:latest    (Kmesh's e2e has no load generator)
// Kmesh's e2e names all four by tag, never by digest (its only digest is the kind node image,
// run_test.sh:10), and no registry can be reached from where this project is built, so no digest can be
// named and checked here. What pins a run instead: each app pod's image digest as the node resolved it
// (containerStatuses[].imageID) is recorded in the run's evidence (KubeEnv::DatapathIdentity), and any of
// the variables above takes a digest reference (NAME@sha256:...) to repeat a run exactly.
// Targets that render need data = ["//testdata/apps"].
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ipsec/ipsec_secret.h"
#include "e2e/policy/template.h"

namespace kmesh::kube {

inline constexpr uint16_t kServerPort = 8080;     // as Kmesh's e2e echo-1 (--port=8080)
inline constexpr uint16_t kServerAltPort = 9090;  // the second pod port, for port policies

struct Images {
  std::string server = "gcr.io/istio-testing/app:latest";
  std::string sleep = "docker.io/curlimages/curl:latest";
  std::string fortio = "docker.io/fortio/fortio:latest";
  std::string waypoint = "ghcr.io/kmesh-net/waypoint:latest";
  static Images FromEnvironment();
};

policy::Manifest RenderNamespace(const std::string& ns, const std::string& run_id);
policy::Manifest RenderServer(const std::string& name, const std::string& ns, const std::string& node,
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
