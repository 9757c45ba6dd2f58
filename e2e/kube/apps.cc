#include "e2e/kube/apps.h"

#include <openssl/rand.h>

#include <cctype>
#include <cstdlib>

#include "base/error.h"
#include "base/runfiles.h"

namespace kmesh::kube {
namespace {

policy::Manifest Render(const std::string& file, const policy::Vars& vars) {
  return policy::RenderFile(Runfile("testdata/apps/" + file), vars);
}

}  // namespace

Images Images::FromEnvironment() {
  Images i;
  auto pick = [](const char* var, std::string& field) {
    if (const char* v = std::getenv(var); v && *v) field = v;
  };
  pick("KMESH_E2E_KUBE_SERVER_IMAGE", i.server);
  pick("KMESH_E2E_KUBE_SLEEP_IMAGE", i.sleep);
  pick("KMESH_E2E_KUBE_FORTIO_IMAGE", i.fortio);
  pick("KMESH_E2E_KUBE_WAYPOINT_IMAGE", i.waypoint);
  return i;
}

void CheckDnsLabel(const std::string& v, const std::string& what) {
  bool ok = !v.empty() && v.size() <= 63 && std::isalnum(static_cast<unsigned char>(v.front())) &&
            std::isalnum(static_cast<unsigned char>(v.back()));
  for (char c : v) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    throw Error(what + " \"" + v +
                "\" is not a valid Kubernetes name (lowercase letters, digits and '-', at most 63, "
                "starting and ending with a letter or digit)");
  }
}

policy::Manifest RenderNamespace(const std::string& ns, const std::string& run_id) {
  CheckDnsLabel(ns, "namespace");
  return Render("namespace.yaml", policy::Vars().Set("Namespace", ns).Set("RunId", run_id));
}

policy::Manifest RenderServer(const std::string& name, const std::string& ns, const std::string& node,
                              const std::string& image, const std::string& run_id) {
  CheckDnsLabel(name, "app name");
  return Render("server.yaml", policy::Vars()
                                   .Set("Name", name)
                                   .Set("Namespace", ns)
                                   .Set("Node", node)
                                   .Set("Image", image)
                                   .Set("Port", std::to_string(kServerPort))
                                   .Set("AltPort", std::to_string(kServerAltPort))
                                   .Set("RunId", run_id));
}

policy::Manifest RenderSleep(const std::string& name, const std::string& ns, const std::string& node,
                             const std::string& image, const std::string& run_id) {
  CheckDnsLabel(name, "app name");
  return Render("sleep.yaml", policy::Vars()
                                  .Set("Name", name)
                                  .Set("Namespace", ns)
                                  .Set("Node", node)
                                  .Set("Image", image)
                                  .Set("RunId", run_id));
}

policy::Manifest RenderFortio(const std::string& name, const std::string& ns, const std::string& node,
                              const std::string& image, const std::string& run_id) {
  CheckDnsLabel(name, "app name");
  return Render("fortio.yaml", policy::Vars()
                                   .Set("Name", name)
                                   .Set("Namespace", ns)
                                   .Set("Node", node)
                                   .Set("Image", image)
                                   .Set("RunId", run_id));
}

policy::Manifest RenderWaypoint(const std::string& name, const std::string& ns, const std::string& image,
                                const std::string& run_id) {
  CheckDnsLabel(name, "waypoint name");
  return Render(
      "waypoint.yaml",
      policy::Vars().Set("Name", name).Set("Namespace", ns).Set("Image", image).Set("RunId", run_id));
}

policy::Manifest RenderIpsecSecret(const ipsec::IpsecSecret& secret) {
  const std::string json = secret.Serialize();
  return Render(
      "ipsec-secret.yaml",
      policy::Vars().Set("IpSec", ipsec::Base64Encode(std::vector<uint8_t>(json.begin(), json.end()))));
}

ipsec::IpsecSecret NextSecret(const std::optional<ipsec::IpsecSecret>& current,
                              const std::optional<ipsec::KeyMaterial>& key) {
  ipsec::IpsecSecret s;
  s.spi = current ? current->spi + 1 : 1;
  if (key) {
    if (key->size() != ipsec::IpsecSecret::kKeyBytes) {
      throw Error("IPsec key: expected " + std::to_string(ipsec::IpsecSecret::kKeyBytes) +
                  " bytes (72 hex digits: 32-byte AES key + 4-byte salt), found " +
                  std::to_string(key->size()));
    }
    s.aead_key = *key;
  } else {
    std::vector<uint8_t> bytes(ipsec::IpsecSecret::kKeyBytes);
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
      throw Error("IPsec key: RAND_bytes failed");
    s.aead_key = ipsec::KeyMaterial(std::move(bytes));
  }
  return s;
}

}  // namespace kmesh::kube
