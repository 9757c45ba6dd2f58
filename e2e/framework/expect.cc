#include "e2e/framework/expect.h"

#include <sstream>

#include "bpf_probe/kmesh_abi.h"

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

const char* ToString(Mechanism m) {
  switch (m) {
    case Mechanism::kXdp:
      return "XDP";
    case Mechanism::kUserspace:
      return "Kmesh userspace";
    case Mechanism::kWaypoint:
      return "waypoint";
  }
  return "?";
}

std::string AuthzExpect::Describe() const {
  if (want == Want::kAllowed) {
    return "allowed: ok(" + std::to_string(status) + ") from the app, km_auth_res not DENY" +
           (mechanism == Mechanism::kXdp ? ", xdp_authz attached" : "");
  }
  switch (mechanism) {
    case Mechanism::kXdp:
      return cached ? "denied by XDP: connect_timeout, km_auth_res = DENY for the tuple, xdp_authz attached"
                    : "denied by XDP (no ALLOW matched): connect_timeout, nothing cached, xdp_authz attached";
    case Mechanism::kUserspace:
      return "denied by Kmesh userspace: connected, then read_timeout or reset; km_auth_res = DENY";
    case Mechanism::kWaypoint:
      return "denied by the waypoint: HTTP 403, km_auth_res not DENY";
  }
  return "?";
}

Judgement ProbeAndJudge(Env& env, Case& c, const App& client, const App& server, ProbeSpec spec,
                        const AuthzExpect& want, const std::string& label) {
  // The tuple is known before the SYN leaves (the Env picks a fresh source port), so the map can be
  // read before and after.
  if (spec.dst_ip.empty()) std::tie(spec.dst_ip, spec.dst_port) = env.ServiceAddress(server);
  ProbeOutcome out = env.Probe(client, server, spec);
  const bpf_probe::Tuple tuple = bpf_probe::Tuple::Parse(out.tuple.ToString());
  const auto after = env.AuthVerdict(server, tuple);
  const auto xdp = env.XdpOf(server);
  const nlohmann::json userspace = env.UserspaceDecisions(server, tuple);

  // Each disagreement: a stable code (machine-readable: the sensitivity suite and mutation scoring
  // match these, never the English) and its sentence.
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
        break;
      case Mechanism::kUserspace:
        if (k != OutcomeKind::kReadTimeout && k != OutcomeKind::kReset) {
          disagree.push_back({k == OutcomeKind::kConnectTimeout ? disagreement::kDecidedInXdp
                                                                : disagreement::kNotDeniedAfterHandshake,
                              "client saw " + out.Summary() + ", expected read_timeout or reset"});
        }
        if (!IsDeny(after)) {
          disagree.push_back({disagreement::kVerdictEntryMissing,
                              "km_auth_res holds " + VerdictText(after) + ", expected DENY"});
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

  Judgement j;
  j.ok = disagree.empty();
  std::vector<std::string> sentences, codes;
  for (const auto& [code, sentence] : disagree) {
    codes.push_back(code);
    sentences.push_back(sentence);
    c.AddDisagreement(code);
  }
  j.codes = codes;
  j.evidence = {{"label", label},
                {"client", client.name},
                {"server", server.name},
                {"expected", want.Describe()},
                {"outcome", out.ToJson()},
                {"tuple", tuple.ToString()},
                {"km_auth_res_after", VerdictText(after)},
                {"xdp", XdpText(xdp)},
                {"userspace", userspace},
                {"passed", j.ok},
                {"disagree", sentences},
                {"disagreement_codes", codes}};
  if (!j.ok) {
    std::ostringstream s;
    s << "[" << label << "] " << client.name << " -> " << server.name << " (" << tuple.ToString() << ")\n"
      << "  expected:    " << want.Describe() << "\n"
      << "  client saw:  " << out.ToString() << "\n"
      << "  kernel held: km_auth_res = " << VerdictText(after) << "; " << XdpText(xdp) << "\n"
      << "  userspace:   " << UserspaceText(userspace) << "\n"
      << "  disagree:    ";
    for (size_t i = 0; i < sentences.size(); ++i) {
      s << (i ? "\n               " : "") << sentences[i] << " [" << codes[i] << "]";
    }
    j.explanation = s.str();
    c.Fail(j.explanation);
  }
  c.Add("probes", j.evidence);
  return j;
}

}  // namespace kmesh::e2e
