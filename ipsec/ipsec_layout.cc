#include "ipsec/ipsec_layout.h"

#include <netinet/in.h>
#include <openssl/evp.h>

#include <algorithm>

#include "base/error.h"
#include "base/disagreement.h"

namespace kmesh::ipsec {
namespace {

namespace code = e2e::disagreement;

using xfrm::Mark;
using xfrm::Mode;
using xfrm::Spi;
using xfrm::XfrmPolicy;
using xfrm::XfrmState;

std::string AllCidr(const std::string& address) {
  return address.find(':') == std::string::npos ? "0.0.0.0/0" : "::/0";
}

std::string OutputMark(const XfrmState& s) { return s.output_mark ? s.output_mark->ToString() : "not set"; }

class Checker {
 public:
  explicit Checker(const SecretHistory& secrets) : secrets_(secrets) {}

  void Add(const char* code, const std::string& node, const std::string& object, const std::string& problem) {
    report.findings.push_back({code, node, object, problem});
  }

  // Expected key of the direction src→dst, whose receiver owns `spi`; empty when the secret is unknown.
  KeyMaterial Expected(uint32_t spi, const NodeInfo& src, const NodeInfo& dst) const {
    const IpsecSecret* s = secrets_.Find(spi);
    if (s == nullptr) return {};
    return DeriveKey(s->aead_key, src.address, dst.address, src.boot_id, dst.boot_id);
  }

  // Fields every Kmesh state shares; `ingress` decides the output-mark rule.
  void CheckState(const std::string& node, const std::string& object, const XfrmState& s,
                  const KeyMaterial& expected_key, uint32_t spi, bool ingress) {
    if (s.reqid != kReqid)
      Add(code::kXfrmStateWrong, node, object, "reqid is " + std::to_string(s.reqid) + ", expected 1");
    if (s.mode != Mode::kTunnel)
      Add(code::kXfrmStateWrong, node, object, "mode is " + xfrm::ToString(s.mode) + ", expected tunnel");
    if (s.aead_name != IpsecSecret::kAeadName) {
      Add(code::kXfrmStateWrong, node, object,
          "aead is " + (s.aead_name.empty() ? std::string("not set") : s.aead_name) + ", expected " +
              IpsecSecret::kAeadName);
    }
    if (s.icv_bits != static_cast<uint32_t>(IpsecSecret::kIcvBits)) {
      Add(code::kXfrmStateWrong, node, object,
          "ICV is " + std::to_string(s.icv_bits) + " bits, expected 128");
    }
    if (s.mark.value != 0 || s.mark.mask != 0) {
      Add(code::kXfrmStateWrong, node, object,
          "carries a lookup mark " + s.mark.ToString() + "; Kmesh's states have none");
    }
    const Mark want{kDecryptedMark, kMarkMask};
    if (ingress && s.output_mark != want) {
      Add(code::kXfrmStateWrong, node, object,
          "output-mark is " + OutputMark(s) + ", expected " + want.ToString());
    }
    if (!ingress && s.output_mark && (s.output_mark->value | s.output_mark->mask) != 0) {
      Add(code::kXfrmStateWrong, node, object,
          "output-mark is " + OutputMark(s) + ", expected none (egress states carry no output-mark)");
    }
    if (expected_key.empty()) {
      Add(code::kKeyUnverifiable, node, object,
          "no secret for spi " + std::to_string(spi) +
              " in the secret history, so its key cannot be checked");
    } else if (s.aead_key != expected_key) {
      Add(code::kKeyFingerprintMismatch, node, object,
          "key is " + s.aead_key.ForDisplay() + " (" + std::to_string(s.aead_key.size()) +
              " bytes), expected the derived " + expected_key.ForDisplay());
    }
  }

  void CheckPolicy(const std::string& node, const xfrm::XfrmSnapshot& snap, xfrm::Dir dir,
                   const std::string& all, const std::string& cidr, const Mark& mark,
                   const std::string& tmpl_src, const std::string& tmpl_dst, Spi tmpl_spi) {
    const std::string object = "policy dir " + xfrm::ToString(dir) + " src " + all + " dst " + cidr;
    const XfrmPolicy* found = nullptr;
    for (const auto& p : snap.policies) {
      if (p.dir != dir || p.selector.dst != cidr) continue;
      // Several peers may share the selector; prefer the one whose template points at this peer.
      if (found == nullptr || (!p.templates.empty() && p.templates[0].src == tmpl_src)) found = &p;
    }
    const std::string tmpl_text = "tmpl src " + tmpl_src + " dst " + tmpl_dst + " proto esp" +
                                  (tmpl_spi.value ? " spi " + tmpl_spi.ToString() : "") +
                                  " reqid 1 mode tunnel";
    if (found == nullptr) {
      Add(code::kXfrmPolicyMissing, node, object,
          "missing (expected mark " + mark.ToString() + ", " + tmpl_text + ")");
      return;
    }
    const XfrmPolicy& p = *found;
    if (p.selector.src != all)
      Add(code::kXfrmPolicyWrong, node, object, "selector src is " + p.selector.src + ", expected " + all);
    if (p.mark != mark)
      Add(code::kXfrmPolicyWrong, node, object,
          "mark is " + p.mark.ToString() + ", expected " + mark.ToString());
    if (p.action != xfrm::Action::kAllow)
      Add(code::kXfrmPolicyWrong, node, object, "action is block, expected allow");
    if (p.templates.size() != 1) {
      Add(code::kXfrmPolicyWrong, node, object,
          std::to_string(p.templates.size()) + " templates, expected one: " + tmpl_text);
      return;
    }
    const auto& t = p.templates[0];
    if (t.src != tmpl_src || t.dst != tmpl_dst) {
      Add(code::kXfrmPolicyWrong, node, object,
          "template goes src " + t.src + " dst " + t.dst + ", expected src " + tmpl_src + " dst " + tmpl_dst);
    }
    if (t.proto != IPPROTO_ESP)
      Add(code::kXfrmPolicyWrong, node, object,
          "template proto is " + xfrm::ProtoName(t.proto) + ", expected esp");
    if (t.spi != tmpl_spi) {
      Add(code::kXfrmPolicyWrong, node, object,
          "template spi is " + (t.spi.value ? t.spi.ToString() : std::string("any")) + ", expected " +
              (tmpl_spi.value ? tmpl_spi.ToString() : std::string("any (none set)")));
    }
    if (t.reqid != kReqid)
      Add(code::kXfrmPolicyWrong, node, object,
          "template reqid is " + std::to_string(t.reqid) + ", expected 1");
    if (t.mode != Mode::kTunnel)
      Add(code::kXfrmPolicyWrong, node, object,
          "template mode is " + xfrm::ToString(t.mode) + ", expected tunnel");
  }

  const XfrmState* FindState(const xfrm::XfrmSnapshot& snap, const std::string& src, const std::string& dst,
                             Spi spi) {
    for (const auto& s : snap.states) {
      if (s.proto == IPPROTO_ESP && s.spi == spi && s.src == src && s.dst == dst) return &s;
    }
    return nullptr;
  }

  // Everything on `local` that is not Kmesh's: extra, stale and duplicate states and policies, and the
  // kept states of earlier SPIs (present, well formed, keyed from their own SPI's secret).
  void CheckExtras(const NodeEvidence& local, const NodeEvidence& remote,
                   const std::set<uint32_t>& retained) {
    const NodeInfo& L = local.info;
    const NodeInfo& R = remote.info;
    const std::string& node = L.name;
    const auto known = secrets_.Spis();
    const uint32_t oldest = known.empty() ? 0 : known.front();
    const bool egress_now = R.spi <= L.spi;
    for (const auto& s : local.snapshot.states) {
      const bool in = s.src == R.address && s.dst == L.address;
      const bool out = s.src == L.address && s.dst == R.address;
      const std::string obj = std::string(in    ? "ingress "
                                          : out ? "egress "
                                                : "") +
                              "state src " + s.src + " dst " + s.dst + " " + xfrm::ProtoName(s.proto) +
                              " spi " + s.spi.ToString();
      if (s.proto != IPPROTO_ESP || (!in && !out)) {
        Add(code::kXfrmStateExtra, node, obj,
            "extra: Kmesh programs only ESP states between the node's and its peers' KmeshNodeInfo addresses "
            "(" +
                L.address + ", " + R.address + ")");
        continue;
      }
      const uint32_t spi = s.spi.value;
      if ((in && spi == L.spi) || (out && spi == R.spi && egress_now)) continue;  // current: checked above
      if (retained.count(spi)) {
        CheckState(node, obj + " (kept from an earlier SPI)", s,
                   in ? Expected(spi, R, L) : Expected(spi, L, R), spi, in);
        continue;
      }
      if (secrets_.Find(spi) == nullptr && (oldest == 0 || spi < oldest)) {
        report.notes.push_back("node " + node + ": " + obj + " predates this run's secrets; not judged");
        continue;
      }
      if (spi > std::max(L.spi, R.spi)) {
        Add(code::kXfrmStateExtra, node, obj,
            "extra: spi " + std::to_string(spi) + " is newer than any KmeshNodeInfo reports (" + L.name +
                " " + std::to_string(L.spi) + ", " + R.name + " " + std::to_string(R.spi) + ")");
      } else if (out && spi == R.spi) {
        Add(code::kXfrmStateExtra, node, obj,
            "extra: Kmesh programs egress with the peer's SPI only once the local SPI is not older (local " +
                std::to_string(L.spi) + ")");
      } else {
        Add(code::kXfrmStateExtra, node, obj,
            "stale: Kmesh keeps an earlier SPI's states only until a flush (the stop of a daemon that "
            "started "
            "Normal) or a Clean (the peer's KmeshNodeInfo deleted); spi " +
                std::to_string(spi) + "'s should be gone");
      }
    }
    for (const uint32_t spi : retained) {
      if (spi != L.spi && FindState(local.snapshot, R.address, L.address, Spi{spi}) == nullptr) {
        Add(code::kXfrmStateMissing, node,
            "ingress state src " + R.address + " dst " + L.address + " spi " + Spi{spi}.ToString(),
            "missing: Kmesh keeps every earlier SPI's states until a flush or a Clean");
      }
      if (!(spi == R.spi && egress_now) &&
          FindState(local.snapshot, L.address, R.address, Spi{spi}) == nullptr) {
        Add(code::kXfrmStateMissing, node,
            "egress state src " + L.address + " dst " + R.address + " spi " + Spi{spi}.ToString(),
            "missing: Kmesh keeps every earlier SPI's states until a flush or a Clean");
      }
    }
    // Policies: exactly one per (direction, pod CIDR) Kmesh programs, all with selector source ALL_CIDR.
    const std::string all = AllCidr(L.address);
    std::map<std::string, std::vector<const XfrmPolicy*>> by_key;
    std::set<std::string> expected;
    for (const auto& c : L.pod_cidrs) {
      expected.insert("in " + c);
      expected.insert("fwd " + c);
    }
    for (const auto& c : R.pod_cidrs) expected.insert("out " + c);
    for (const auto& p : local.snapshot.policies) {
      const std::string key = xfrm::ToString(p.dir) + " " + p.selector.dst;
      if (p.selector.src != all || !expected.count(key)) {
        Add(code::kXfrmPolicyExtra, node, "policy " + p.Id(),
            "extra: Kmesh's policies are in/fwd " + all + " -> the local pod CIDRs and out " + all +
                " -> the peer's, nothing else");
        continue;
      }
      by_key[key].push_back(&p);
    }
    for (const auto& [key, list] : by_key) {
      if (list.size() < 2) continue;
      std::string ids;
      for (const auto* p : list)
        ids += (ids.empty() ? "" : "; ") + p->Id() + " priority " + std::to_string(p->priority);
      Add(code::kXfrmPolicyExtra, node, "policy dir " + key,
          "duplicate: " + std::to_string(list.size()) + " policies with Kmesh's selector (" + ids +
              "); Kmesh keeps one, updated in place");
    }
  }

  // Everything node `local` should hold for its peer `remote`.
  void CheckNode(const NodeEvidence& local, const NodeEvidence& remote) {
    const NodeInfo& L = local.info;
    const NodeInfo& R = remote.info;
    const std::string& node = L.name;
    const std::string all = AllCidr(L.address);

    // Ingress: R → L with the local SPI, always created.
    const Spi in_spi{L.spi};
    const std::string in_obj =
        "ingress state src " + R.address + " dst " + L.address + " spi " + in_spi.ToString();
    if (const XfrmState* s = FindState(local.snapshot, R.address, L.address, in_spi)) {
      CheckState(node, in_obj, *s, Expected(L.spi, R, L), L.spi, /*ingress=*/true);
    } else {
      Add(code::kXfrmStateMissing, node, in_obj,
          "missing (expected proto esp reqid 1 mode tunnel aead rfc4106(gcm(aes)) ICV 128 output-mark "
          "0xd0/0xffffffff)");
    }
    const Mark decrypted{kDecryptedMark, kMarkMask};
    for (const auto& cidr : L.pod_cidrs) {
      CheckPolicy(node, local.snapshot, xfrm::Dir::kIn, all, cidr, decrypted, R.address, L.address, Spi{0});
      CheckPolicy(node, local.snapshot, xfrm::Dir::kFwd, all, cidr, decrypted, R.address, L.address, Spi{0});
    }

    // Egress: L → R with the remote SPI, created only once remote.spi <= local.spi.
    const Spi out_spi{R.spi};
    const std::string out_obj =
        "egress state src " + L.address + " dst " + R.address + " spi " + out_spi.ToString();
    if (R.spi > L.spi) {
      Add(code::kRotationNotApplied, node, out_obj,
          "not expected yet: Kmesh programs egress only when the peer's SPI (" + std::to_string(R.spi) +
              ") <= the local SPI (" + std::to_string(L.spi) + "); the rotation has not converged");
      return;
    }
    if (const XfrmState* s = FindState(local.snapshot, L.address, R.address, out_spi)) {
      CheckState(node, out_obj, *s, Expected(R.spi, L, R), R.spi, /*ingress=*/false);
    } else {
      Add(code::kXfrmStateMissing, node, out_obj,
          "missing (expected proto esp reqid 1 mode tunnel aead rfc4106(gcm(aes)) ICV 128, no output-mark)");
    }
    const Mark encrypt{kEncryptMark, kMarkMask};
    for (const auto& cidr : R.pod_cidrs) {
      CheckPolicy(node, local.snapshot, xfrm::Dir::kOut, all, cidr, encrypt, L.address, R.address, out_spi);
    }
  }

  void CheckDirection(const NodeEvidence& from, const NodeEvidence& to) {
    DirectionKeys d;
    d.from = from.info.name;
    d.to = to.info.name;
    d.spi = Spi{to.info.spi};
    const KeyMaterial expected = Expected(to.info.spi, from.info, to.info);
    d.expected_fingerprint = expected.Fingerprint();
    const XfrmState* tx = FindState(from.snapshot, from.info.address, to.info.address, d.spi);
    const XfrmState* rx = FindState(to.snapshot, from.info.address, to.info.address, d.spi);
    if (tx) d.sender_fingerprint = tx->aead_key.Fingerprint();
    if (rx) d.receiver_fingerprint = rx->aead_key.Fingerprint();
    d.agree = tx && rx && tx->aead_key == rx->aead_key && !expected.empty() && tx->aead_key == expected;
    if (tx && rx && tx->aead_key != rx->aead_key) {
      Add(code::kKeyFingerprintMismatch, d.from + " -> " + d.to, "direction spi " + d.spi.ToString(),
          "the two ends hold different keys: sender " + tx->aead_key.ForDisplay() + ", receiver " +
              rx->aead_key.ForDisplay() + " (ESP from " + d.from + " cannot be decrypted by " + d.to + ")");
    }
    report.directions.push_back(d);
  }

  LayoutReport report;

 private:
  const SecretHistory& secrets_;
};

}  // namespace

const IpsecSecret* SecretHistory::Find(uint32_t spi) const {
  auto it = by_spi_.find(spi);
  return it == by_spi_.end() ? nullptr : &it->second;
}

std::vector<uint32_t> SecretHistory::Spis() const {
  std::vector<uint32_t> out;
  for (const auto& [spi, s] : by_spi_) out.push_back(spi);
  return out;
}

KeyMaterial DeriveKey(const KeyMaterial& aead_key, const std::string& src_ip, const std::string& dst_ip,
                      const std::string& src_boot_id, const std::string& dst_boot_id) {
  const std::string sb = src_boot_id.substr(0, 36), db = dst_boot_id.substr(0, 36);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, aead_key.bytes().data(), aead_key.size()) == 1 &&
                  EVP_DigestUpdate(ctx, src_ip.data(), src_ip.size()) == 1 &&
                  EVP_DigestUpdate(ctx, dst_ip.data(), dst_ip.size()) == 1 &&
                  EVP_DigestUpdate(ctx, sb.data(), sb.size()) == 1 &&
                  EVP_DigestUpdate(ctx, db.data(), db.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, digest, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw Error("SHA-512 from libcrypto failed while deriving an IPsec key");
  const size_t n = std::min<size_t>(aead_key.size(), len);
  return KeyMaterial(std::vector<uint8_t>(digest, digest + n));
}

nlohmann::json DirectionKeys::ToJson() const {
  return {{"from", from},
          {"to", to},
          {"spi", spi.ToString()},
          {"expected_key", expected_fingerprint.empty() ? "" : "sha256:" + expected_fingerprint},
          {"sender_key", sender_fingerprint.empty() ? "" : "sha256:" + sender_fingerprint},
          {"receiver_key", receiver_fingerprint.empty() ? "" : "sha256:" + receiver_fingerprint},
          {"agree", agree}};
}

std::string LayoutReport::Describe() const {
  std::string s = ok() ? "Kmesh IPsec layout: as expected"
                       : "Kmesh IPsec layout: " + std::to_string(findings.size()) + " finding(s)";
  for (const auto& f : findings) s += "\n  " + f.ToString();
  for (const auto& n : notes) s += "\n  note: " + n;
  for (const auto& d : directions) {
    s += "\n  direction " + d.from + " -> " + d.to + " spi " + d.spi.ToString() + ": expected " +
         (d.expected_fingerprint.empty() ? "?" : d.expected_fingerprint) + ", sender " +
         (d.sender_fingerprint.empty() ? "missing" : d.sender_fingerprint) + ", receiver " +
         (d.receiver_fingerprint.empty() ? "missing" : d.receiver_fingerprint) +
         (d.agree ? " (agree)" : " (DISAGREE)");
  }
  return s;
}

std::vector<std::string> LayoutReport::Codes() const {
  std::vector<std::string> out;
  for (const auto& f : findings) {
    if (!f.code.empty() && std::find(out.begin(), out.end(), f.code) == out.end()) out.push_back(f.code);
  }
  return out;
}

nlohmann::json LayoutReport::ToJson() const {
  nlohmann::json f = nlohmann::json::array();
  for (const auto& x : findings)
    f.push_back({{"code", x.code},
                 {"node", x.node},
                 {"object", x.object},
                 {"problem", x.problem},
                 {"text", x.ToString()}});
  nlohmann::json d = nlohmann::json::array();
  for (const auto& x : directions) d.push_back(x.ToJson());
  return {{"ok", ok()}, {"findings", f}, {"directions", d}, {"notes", notes}};
}

LayoutReport CheckLayout(const NodeEvidence& a, const NodeEvidence& b, const SecretHistory& secrets,
                         const RetainedSpis& retained) {
  Checker c(secrets);
  c.CheckNode(a, b);
  c.CheckNode(b, a);
  static const std::set<uint32_t> kNone;
  auto kept = [&](const std::string& node) -> const std::set<uint32_t>& {
    auto it = retained.find(node);
    return it == retained.end() ? kNone : it->second;
  };
  c.CheckExtras(a, b, kept(a.info.name));
  c.CheckExtras(b, a, kept(b.info.name));
  c.CheckDirection(a, b);
  c.CheckDirection(b, a);
  return c.report;
}

}  // namespace kmesh::ipsec
