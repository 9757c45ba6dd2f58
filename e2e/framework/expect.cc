#include "e2e/framework/expect.h"

#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "bpf_probe/kmesh_abi.h"
#include "e2e/framework/case_output.h"

namespace kmesh::e2e {
namespace {

std::string VerdictText(const std::optional<bpf_probe::Verdict>& v) {
  return v ? bpf_probe::ToString(*v) : std::string("no entry");
}

// "Kmesh's authorizer: deny (deny_policy_matched test-ns1/x), km_auth_res written" per decision.
std::string UserspaceText(const nlohmann::json& decisions) {
  if (decisions.is_null()) return "not visible in this Env";
  if (decisions.empty()) return "Kmesh's authorizer saw no record of this connection";
  std::string out;
  for (const auto& d : decisions) {
    if (!out.empty()) out += "; ";
    out += "Kmesh's authorizer: " + d.value("describe", std::string("?"));
  }
  return out;
}

bool IsDeny(const std::optional<bpf_probe::Verdict>& v) { return v && bpf_probe::Drops(*v); }

std::string XdpText(const bpf_probe::XdpAttachment& x) {
  if (!x.attached()) return "no XDP program attached to " + x.ifname;
  const auto& p = x.programs.front();
  return std::string(p.prog.name) + " (prog " + std::to_string(p.prog.id) + ") attached " +
         bpf_probe::ToString(p.mode) + " to " + x.ifname;
}

bool XdpAuthzAttached(const bpf_probe::XdpAttachment& x) {
  for (const auto& p : x.programs) {
    if (p.prog.name == KM_PROG_XDP_AUTHZ) return true;
  }
  return false;
}

}  // namespace

std::string AuthzExpect::Describe() const {
  if (want == Want::kAllowed) {
    std::string s = "allowed: ok(" + std::to_string(status) + ") from the app, km_auth_res not DENY" +
                    (mechanism == Mechanism::kXdp ? ", xdp_authz attached" : "");
    if (while_open == WhileOpen::kAllow)
      s += "; km_auth_res = ALLOW while open (an ALLOW matched in XDP), gone after close";
    if (while_open == WhileOpen::kNone)
      s += "; nothing in km_auth_res while open (XDP matched no policy or deferred)";
    return s;
  }
  switch (mechanism) {
    case Mechanism::kXdp:
      return cached ? "denied by XDP: connect_timeout, km_auth_res = DENY for the tuple, xdp_authz attached"
                    : "denied by XDP (no ALLOW matched): connect_timeout, nothing cached, xdp_authz attached";
    case Mechanism::kUserspace:
      return cached ? "denied by Kmesh userspace: connected, then read_timeout or reset; km_auth_res = DENY"
                    : "denied by Kmesh userspace, authz offload off: connected, then reset (the verdict "
                      "consumed by xdp_shutdown_in_userspace, which sets RST); nothing left in km_auth_res";
    case Mechanism::kWaypoint:
      return "denied by the waypoint: HTTP 403, km_auth_res not DENY";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

bool IsAllow(const std::optional<bpf_probe::Verdict>& v) { return v && !bpf_probe::Drops(*v); }

}  // namespace

Judgement JudgeProbe(Env& env, const App& client, const App& server, ProbeSpec spec, const AuthzExpect& want,
                     const std::string& label, const JudgeOptions& options) {
  const auto started = Clock::now();
  // The tuple is known before the SYN leaves (the Env picks a fresh source port), so the map is read for
  // exactly that tuple: while the connection is open (an allowed probe that checks it) and after.
  if (spec.dst.ip.unspecified()) spec.dst = env.ServiceAddress(server);

  // Every probe to a pod is watched at the pod's veth where the Env lets the harness (drop_proof.h): a
  // probe's wait ends as soon as the kernel has proven XDP dropped its SYN (connect phase) or, after the
  // handshake, its request (response phase: Kmesh's userspace cached a deny and xdp_authz drops the
  // connection's later packets, authz_offload = 1). A denial is then judged on that proof.
  std::optional<XdpDropWatch> watch;
  std::string not_watched;
  if (!options.prove_drops) {
    not_watched = "not watched (the timeout method: the client's bound, then the maps)";
  } else if (const std::optional<PodLink> link = env.PodLinkOf(server); !link) {
    not_watched =
        "not watched: the " + env.name() +
        " Env cannot watch the server pod's veth, so a denial rests on the client's timeout and the "
        "maps";
  } else if (spec.dst.ip != server.ip) {
    not_watched = "not watched: the probe goes to " + spec.dst.ip.ToString() + ", not to the pod " +
                  server.ip.ToString();
  } else {
    if (spec.src_port == 0) spec.src_port = env.NextSourcePort();
    const net::Tuple t{{client.ip, spec.src_port}, spec.dst};
    watch.emplace(XdpDropWatch::Start(*link, t, options.save_dir,
                                      CaseFolderName(label) + "-" + std::to_string(spec.src_port)));
    spec.proven = [&watch](ProbeSpec::Phase phase) -> std::string {
      const DropProof p =
          watch->Check(phase == ProbeSpec::Phase::kConnect ? DropStage::kSyn : DropStage::kRequest);
      return p.proven ? p.Describe() : "";
    };
  }
  // What Kmesh cached for an allowed connection exists only while it is open (sockops deletes it at close).
  std::optional<bpf_probe::Verdict> open_verdict;
  bool open_read = false;
  if (want.want == Want::kAllowed && want.while_open != AuthzExpect::WhileOpen::kNotChecked) {
    spec.while_open = [&](const net::Tuple& t) {
      open_verdict = env.AuthVerdict(server, t);
      open_read = true;
    };
  }

  ProbeOutcome out = env.Probe(client, server, spec);
  // The stage the client's outcome points at: no handshake, or a request that went unanswered.
  const DropStage stage = out.kind == OutcomeKind::kConnectTimeout ? DropStage::kSyn : DropStage::kRequest;
  std::optional<DropProof> proof;
  if (watch) proof = watch->Finish(stage);
  const net::Tuple& tuple = out.tuple;
  const auto after = env.AuthVerdict(server, tuple);
  // An ALLOW cached for the connection goes when the server's socket reaches TCP_CLOSE, a moment after the
  // client's close: bounded wait.
  std::optional<bpf_probe::Verdict> after_close;
  bool after_close_read = false;
  if (open_read && want.while_open == AuthzExpect::WhileOpen::kAllow && IsAllow(open_verdict)) {
    after_close_read = true;
    after_close = after;
    const auto deadline = Clock::now() + defaults::ConnectionClosed();
    while (after_close && Clock::now() < deadline) {
      std::this_thread::sleep_for(defaults::DropProofPoll());
      after_close = env.AuthVerdict(server, tuple);
    }
  }
  const auto xdp = env.XdpOf(server);
  const nlohmann::json userspace = env.UserspaceDecisions(server, tuple);
  const auto verdict_time = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);

  // Each disagreement: a stable code (machine-readable: e2e/mutation's scoring matches these, never the
  // English) and its sentence.
  std::vector<std::pair<const char*, std::string>> disagree;
  const OutcomeKind k = out.kind;
  if (want.want == Want::kAllowed) {
    if (k != OutcomeKind::kOk || (spec.http && out.http_status != want.status)) {
      disagree.push_back({disagreement::kRequestNotServed, "client saw " + out.Summary() + ", expected ok(" +
                                                               std::to_string(want.status) +
                                                               ") from the app"});
    }
    if (IsDeny(after)) {
      disagree.push_back({disagreement::kDenyCached,
                          "km_auth_res holds DENY for this tuple although the request was to pass"});
    }
    if (want.mechanism == Mechanism::kXdp && !XdpAuthzAttached(xdp)) {
      disagree.push_back({disagreement::kXdpNotAttached,
                          XdpText(xdp) + " of " + server.name + ": the XDP path never saw this connection"});
    }
    if (open_read && want.while_open == AuthzExpect::WhileOpen::kAllow && !IsAllow(open_verdict)) {
      disagree.push_back(
          {disagreement::kAllowEntryMissing,
           "km_auth_res held " + VerdictText(open_verdict) +
               " for this tuple while the connection was open, expected ALLOW (an ALLOW policy "
               "matched in XDP: policy_check caches it)"});
    }
    if (open_read && want.while_open == AuthzExpect::WhileOpen::kNone && open_verdict) {
      disagree.push_back({disagreement::kUnexpectedOpenEntry,
                          "km_auth_res held " + VerdictText(open_verdict) +
                              " for this tuple while the connection was open, expected nothing: no ALLOW "
                              "policy matches it in XDP, or XDP must leave it to userspace"});
    }
    if (after_close_read && after_close) {
      disagree.push_back({disagreement::kAllowEntryNotCleared,
                          "km_auth_res still holds " + VerdictText(after_close) + " for this tuple " +
                              std::to_string(defaults::ConnectionClosed().count()) +
                              " ms after the connection closed (Kmesh's sockops deletes it at close)"});
    }
  } else {
    switch (want.mechanism) {
      case Mechanism::kXdp:
        if (k != OutcomeKind::kConnectTimeout) {
          disagree.push_back(
              {disagreement::kSynNotDropped,
               "client saw " + out.Summary() + ", expected connect_timeout (SYN dropped by XDP)"});
        }
        if (want.cached && !IsDeny(after)) {
          disagree.push_back({disagreement::kVerdictEntryMissing,
                              "km_auth_res holds " + VerdictText(after) + " for this tuple, expected DENY"});
        }
        if (!want.cached && IsDeny(after)) {
          disagree.push_back(
              {disagreement::kVerdictUnexpectedlyCached,
               "km_auth_res caches DENY for this tuple; an unmatched ALLOW should cache nothing"});
        }
        if (!XdpAuthzAttached(xdp)) {
          disagree.push_back(
              {disagreement::kXdpNotAttached, XdpText(xdp) + " of " + server.name + ", expected xdp_authz"});
        }
        if (proof && k == OutcomeKind::kConnectTimeout && !proof->proven) {  // stage kSyn
          disagree.push_back({disagreement::kDropNotProven,
                              "the client's connect timed out, but the kernel does not show XDP dropped the "
                              "SYN: " +
                                  proof->Describe()});
        }
        break;
      case Mechanism::kUserspace:
        if (!want.cached) {
          // authz offload off: the RST path of xdp_shutdown_in_userspace (see AuthzExpect::cached).
          if (k != OutcomeKind::kReset) {
            disagree.push_back({k == OutcomeKind::kConnectTimeout ? disagreement::kDecidedInXdp
                                                                  : disagreement::kNotDeniedAfterHandshake,
                                "client saw " + out.Summary() +
                                    ", expected reset (xdp_shutdown_in_userspace turns the segment after "
                                    "the verdict into a RST)"});
          }
          if (IsDeny(after)) {
            disagree.push_back({disagreement::kVerdictUnexpectedlyCached,
                                "km_auth_res still holds DENY: xdp_shutdown_in_userspace consumes it when it "
                                "resets the connection"});
          }
          break;
        }
        if (k != OutcomeKind::kReadTimeout && k != OutcomeKind::kReset) {
          disagree.push_back({k == OutcomeKind::kConnectTimeout ? disagreement::kDecidedInXdp
                                                                : disagreement::kNotDeniedAfterHandshake,
                              "client saw " + out.Summary() + ", expected read_timeout or reset"});
        }
        if (!IsDeny(after)) {
          disagree.push_back({disagreement::kVerdictEntryMissing,
                              "km_auth_res holds " + VerdictText(after) + ", expected DENY"});
        }
        if (proof && k == OutcomeKind::kReadTimeout && !proof->proven) {  // stage kRequest
          disagree.push_back(
              {disagreement::kDropNotProven,
               "the client's request timed out, but the kernel does not show XDP dropped it: " +
                   proof->Describe()});
        }
        break;
      case Mechanism::kWaypoint:
        if (!(k == OutcomeKind::kHttpError && out.http_status == 403)) {
          disagree.push_back({disagreement::kWaypointDidNotDeny,
                              "client saw " + out.Summary() +
                                  ", expected HTTP 403 from the waypoint (RBAC: access denied)"});
        }
        if (IsDeny(after)) {
          disagree.push_back(
              {disagreement::kXdpDecidedL7, "km_auth_res holds DENY: XDP decided what the waypoint should"});
        }
        break;
    }
  }

  // What was read while the connection was open, in words.
  std::string while_open_text;
  if (want.want == Want::kAllowed && want.while_open != AuthzExpect::WhileOpen::kNotChecked) {
    if (open_read) {
      while_open_text = "km_auth_res = " + VerdictText(open_verdict) + " while open";
      if (after_close_read) {
        while_open_text +=
            "; " + (after_close ? VerdictText(after_close) + " still " +
                                      std::to_string(defaults::ConnectionClosed().count()) + " ms after close"
                                : std::string("no entry after close (sockops deleted it)"));
      }
    } else if (k == OutcomeKind::kOk || k == OutcomeKind::kHttpError || k == OutcomeKind::kReadTimeout ||
               k == OutcomeKind::kReset) {
      while_open_text =
          "not read: this Env's probe (via " + out.via + ") cannot call back while the connection is open";
    } else {
      while_open_text = "not read: the connection never opened";
    }
  }
  // The proof speaks to a timeout (what it explains) and to every denial (what it must prove).
  const bool timed_out = k == OutcomeKind::kConnectTimeout || k == OutcomeKind::kReadTimeout;
  std::string proof_text;
  if (timed_out || want.want == Want::kDenied) proof_text = proof ? proof->Describe() : not_watched;

  Judgement j;
  j.ok = disagree.empty();
  j.verdict_time = verdict_time;
  std::vector<std::string> sentences, codes;
  for (const auto& [code, sentence] : disagree) {
    codes.push_back(code);
    sentences.push_back(sentence);
  }
  j.codes = codes;
  std::ostringstream s;
  s << "[" << label << "] " << client.name << " -> " << server.name << " (" << tuple.ToString() << ")\n"
    << "  expected:    " << want.Describe() << "\n"
    << "  client saw:  " << out.ToString() << "\n"
    << "  kernel held: km_auth_res = " << VerdictText(after) << "; " << XdpText(xdp) << "\n";
  if (!while_open_text.empty()) s << "  while open:  " << while_open_text << "\n";
  if (!proof_text.empty()) s << "  drop proof:  " << proof_text << "\n";
  s << "  userspace:   " << UserspaceText(userspace);
  if (!j.ok) {
    s << "\n  disagree:    ";
    for (size_t i = 0; i < sentences.size(); ++i) {
      s << (i ? "\n               " : "") << sentences[i] << " [" << codes[i] << "]";
    }
  }
  const std::string paragraph = s.str();
  const nlohmann::json drop_proof =
      proof ? proof->ToJson() : nlohmann::json{{"watched", false}, {"why", not_watched}};
  j.evidence = {{"label", label},
                {"client", client.name},
                {"server", server.name},
                {"expected", want.Describe()},
                {"outcome", out.ToJson()},
                {"tuple", tuple.ToString()},
                {"km_auth_res_after", VerdictText(after)},
                {"km_auth_res_while_open",
                 open_read ? nlohmann::json(VerdictText(open_verdict)) : nlohmann::json(nullptr)},
                {"km_auth_res_after_close",
                 after_close_read ? nlohmann::json(VerdictText(after_close)) : nlohmann::json(nullptr)},
                {"while_open", while_open_text},
                {"drop_proof", drop_proof},
                {"verdict_ms", verdict_time.count() / 1000.0},
                {"xdp", XdpText(xdp)},
                {"userspace", userspace},
                {"pairing", paragraph},
                {"passed", j.ok},
                {"disagree", sentences},
                {"disagreement_codes", codes}};
  if (!j.ok) j.explanation = paragraph;
  return j;
}

Judgement ProbeAndJudge(Env& env, Case& c, const App& client, const App& server, ProbeSpec spec,
                        const AuthzExpect& want, const std::string& label) {
  JudgeOptions options;
  options.save_dir = c.dir();
  Judgement j = JudgeProbe(env, client, server, std::move(spec), want, label, options);
  for (const auto& code : j.codes) c.AddDisagreement(code);
  if (!j.ok) c.Fail(j.explanation);
  c.Add("probes", j.evidence);
  return j;
}

}  // namespace kmesh::e2e
