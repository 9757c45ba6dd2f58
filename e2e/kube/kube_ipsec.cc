// IPsec on a cluster: the secret written as kmeshctl writes it (and the original restored at the end), the
// run's first SPI, KmeshNodeInfo.
#include <unistd.h>

#include <iostream>

#include "base/error.h"
#include "e2e/kube/kube_env.h"

namespace kmesh::kube {

void KubeEnv::RequireIpsecOnce() {
  if (ipsec_checked_) return;
  RequireIpsec(facts_);
  ipsec_checked_ = true;
}

std::optional<ipsec::IpsecSecret> KubeEnv::CurrentSecret() {
  const auto j = k_->GetJsonIfExists({"get", "secret", "kmesh-ipsec", "-n", opts_.kmesh_namespace},
                                     "read the IPsec secret");
  if (!j) return std::nullopt;
  return ParseIpsecSecret(*j, "secret " + opts_.kmesh_namespace + "/kmesh-ipsec");
}

void KubeEnv::WriteSecret(const ipsec::IpsecSecret& secret, const std::string& what) {
  const std::string path = WriteManifest(RenderIpsecSecret(secret), "ipsec-secret.yaml", true);
  struct Unlink {
    std::string p;
    ~Unlink() { unlink(p.c_str()); }
  } guard{path};  // the file holds the key
  // kmeshctl creates the secret when there is none and updates (replaces) it otherwise
  // (ctl/secret/secret.go:154-198); so do these. A secret created or deleted behind the run's back is
  // met by the other verb. Neither writes the last-applied-configuration annotation `kubectl apply` would
  // (with the key in it), and neither prints the key.
  const std::string first = secret_exists_ ? "replace" : "create";
  auto r = k_->Try({first, "-f", path});
  const bool gone = r.err.find("(NotFound)") != std::string::npos;
  const bool there = r.err.find("(AlreadyExists)") != std::string::npos;
  if (!r.ok() && (first == "replace" ? gone : there)) {
    r = k_->Try({first == "replace" ? "create" : "replace", "-f", path});
  }
  if (!r.ok()) throw KubectlError(what + ": " + DescribeResult(r), r);
  secret_exists_ = true;
}

void KubeEnv::RememberOriginalSecret() {
  if (original_secret_known_) return;
  original_secret_ = CurrentSecret();
  original_secret_known_ = true;
  secret_exists_ = original_secret_.has_value();
  if (original_secret_) history_.Add(*original_secret_);  // the daemons know it (they keep old keys)
  // Kmesh accepts only rising SPIs (kmeshctl always writes SPI + 1), so "restoring" the original means
  // re-applying its key with the next SPI; a secret that did not exist is deleted (kmeshctl secret delete).
  cleanup_.Push("secret/kmesh-ipsec", "restore the IPsec secret", [this] {
    if (!original_secret_) {
      k_->Run({"delete", "secret", "kmesh-ipsec", "-n", opts_.kmesh_namespace, "--ignore-not-found"},
              "delete the IPsec secret");
      return;
    }
    ipsec::IpsecSecret restore = *original_secret_;
    restore.spi = (last_secret_ ? last_secret_->spi : original_secret_->spi) + 1;
    WriteSecret(restore, "restore the original IPsec key (as SPI " + std::to_string(restore.spi) + ")");
  });
}

uint32_t KubeEnv::FirstSpi() {
  if (first_spi_) return *first_spi_;
  RequireIpsecOnce();
  uint32_t highest = 0;
  std::string why = "no secret and no KmeshNodeInfo";
  if (const auto current = CurrentSecret()) {
    highest = current->spi;
    why = "secret " + opts_.kmesh_namespace + "/kmesh-ipsec has SPI " + std::to_string(current->spi);
  }
  const auto infos = ParseKmeshNodeInfos(
      k_->GetJson({"get", "kmeshnodeinfos.kmesh.net", "-n", opts_.kmesh_namespace}, "read KmeshNodeInfo"),
      "KmeshNodeInfo (" + opts_.kmesh_namespace + ")");
  for (const auto& n : infos) {
    if (n.spi > highest) {
      highest = n.spi;
      why = "KmeshNodeInfo " + n.name + " has SPI " + std::to_string(n.spi);
    }
  }
  first_spi_ = highest + 1;
  std::cerr << "kube env: the run's first IPsec secret gets SPI " << *first_spi_ << " (" << why << ")\n";
  return *first_spi_;
}

void KubeEnv::ApplySecret(const ipsec::IpsecSecret& secret) {
  RequireIpsecOnce();
  RememberOriginalSecret();
  if (const uint32_t first = FirstSpi(); secret.spi < first) {
    // Allowed (a case may show the consequence), but said: the nodes keep their states for this SPI.
    std::cerr << "kube env: SPI " << secret.spi << " is below the run's first SPI " << first
              << ": Kmesh keeps the xfrm states it already holds for it (EEXIST ignored, "
                 "pkg/controller/encryption/ipsec/ipsec_handler.go:286-287), with their old key\n";
  }
  WriteSecret(secret, "apply the IPsec secret (SPI " + std::to_string(secret.spi) + ", key " +
                          secret.aead_key.ForDisplay() + ")");
  history_.Add(secret);
  last_secret_ = secret;
}

ipsec::IpsecSecret KubeEnv::RotateSecret(const std::optional<ipsec::KeyMaterial>& key) {
  const auto next = NextSecret(CurrentSecret(), key);
  ApplySecret(next);
  return next;
}

std::vector<ipsec::NodeInfo> KubeEnv::IpsecNodes() {
  RequireIpsecOnce();
  auto nodes = ParseKmeshNodeInfos(
      k_->GetJson({"get", "kmeshnodeinfos.kmesh.net", "-n", opts_.kmesh_namespace}, "read KmeshNodeInfo"),
      "KmeshNodeInfo (" + opts_.kmesh_namespace + ")");
  if (nodes.empty()) {
    throw Error("kube env: no KmeshNodeInfo in " + opts_.kmesh_namespace +
                ": each Kmesh daemon publishes one once IPsec runs and the secret exists (ApplySecret / "
                "kmeshctl secret create)");
  }
  return nodes;
}
}  // namespace kmesh::kube
