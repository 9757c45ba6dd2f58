#include "e2e/framework/ipsec_expect.h"

#include <arpa/inet.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/disagreement.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;
namespace code = disagreement;

// A failed expectation: kept in the case and said on stderr (the test log).
void Fail(Case& c, const std::string& why) {
  c.Fail(why);
  std::cerr << why << "\n";
}

// Records each code (disagreement.h) once in the case: what e2e/mutation scores.
void AddCodes(Case& c, const std::vector<std::string>& codes) {
  for (const auto& x : codes) c.AddDisagreement(x);
}

// The address `n` hosts into an IPv4 CIDR ("10.244.2.0/24", 2 -> "10.244.2.2"); "" for anything else.
std::string HostIn(const std::string& cidr, uint32_t n) {
  in_addr a{};
  if (inet_pton(AF_INET, cidr.substr(0, cidr.find('/')).c_str(), &a) != 1) return "";
  a.s_addr = htonl(ntohl(a.s_addr) + n);
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &a, buf, sizeof buf) ? buf : "";
}

}  // namespace

Layout ReadLayout(Env& env, const ipsec::SecretHistory& secrets, const ipsec::RetainedSpis& retained) {
  Layout l;
  for (const auto& info : env.IpsecNodes()) l.nodes.push_back({info, env.Xfrm(info.name)});
  if (l.nodes.size() != 2)
    throw Error("the IPsec checks need two nodes, the Env has " + std::to_string(l.nodes.size()));
  l.report = ipsec::CheckLayout(l.nodes[0], l.nodes[1], secrets, retained);
  return l;
}

Layout WaitLayout(Env& env, Case& c, uint32_t spi, const std::string& label,
                  const ipsec::SecretHistory& secrets, const ipsec::RetainedSpis& retained) {
  const auto start = Clock::now();
  Layout l;
  auto at_spi = [&] {
    bool all = true;
    for (const auto& n : l.nodes) all &= n.info.spi == spi;
    return all;
  };
  while (true) {
    l = ReadLayout(env, secrets, retained);
    if (at_spi() && l.report.ok()) break;
    if (Clock::now() - start > defaults::XfrmConverged()) break;
    std::this_thread::sleep_for(defaults::PollInterval() * 4);
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  nlohmann::json j = {
      {"label", label}, {"spi", spi}, {"waited_ms", waited.count()}, {"report", l.report.ToJson()}};
  for (const auto& n : l.nodes)
    j["nodes"].push_back({{"name", n.info.name}, {"spi", n.info.spi}, {"xfrm", n.snapshot.ToJson()}});
  c.Add("layouts", j);
  if (!at_spi() || !l.report.ok()) {
    std::string spi_text;
    for (const auto& n : l.nodes) spi_text += " " + n.info.name + "=" + std::to_string(n.info.spi);
    if (!at_spi()) c.AddDisagreement(code::kRotationNotApplied);  // a node still reports another SPI
    AddCodes(c, l.report.Codes());
    Fail(c, "[" + label + "] xfrm layout did not converge to SPI " + std::to_string(spi) + " within " +
                std::to_string(defaults::XfrmConverged().count()) + " ms (KMESH_E2E_XFRM_CONVERGED_MS)\n" +
                "  KmeshNodeInfo spi:" + spi_text + "\n  layout checker:\n" + l.report.Describe());
  }
  return l;
}

std::vector<capture::EspKey> EspKeys(Env& env, const ipsec::SecretHistory& secrets) {
  const auto infos = env.IpsecNodes();
  std::vector<capture::EspKey> keys;
  for (const auto& from : infos) {
    for (const auto& to : infos) {
      if (from.name == to.name) continue;
      for (const uint32_t spi : secrets.Spis()) {
        keys.push_back({from.address, to.address, spi,
                        ipsec::DeriveKey(secrets.Find(spi)->aead_key, from.address, to.address, from.boot_id,
                                         to.boot_id)});
      }
    }
  }
  return keys;
}

EncryptedProbe ProbeEncrypted(Env& env, Case& c, const App& client, const App& server,
                              const ipsec::SecretHistory& secrets, const std::string& label) {
  const auto nodes = env.Nodes();
  ProbeSpec spec;
  spec.src_port = env.NextSourcePort();
  spec.dst = env.ServiceAddress(server);
  const std::string marker = "kmesh-e2e-marker-" + std::to_string(spec.src_port);
  spec.path = "/anything/" + marker;
  spec.headers.push_back({"x-kmesh-e2e-marker", marker});
  const net::Tuple inner{{client.ip, spec.src_port}, spec.dst};

  const auto keys = EspKeys(env, secrets);
  std::vector<std::unique_ptr<node::CaptureRun>> caps;
  for (size_t i = 0; i < nodes.size(); ++i) {
    capture::CaptureSpec cs;
    cs.filter = capture::AssertFilter(nodes[0].address.ToString(), nodes[1].address.ToString(), inner);
    cs.direction = capture::CaptureSpec::Direction::kOut;
    cs.inner = inner;
    cs.marker = marker;
    cs.save_dir = c.dir();
    cs.label = label + "-" + nodes[i].name + "-underlay";
    cs.esp_keys = keys;
    caps.push_back(env.StartCapture(nodes[i].name, nodes[1 - i].address, cs));
  }
  capture::CaptureSpec ss;
  ss.filter = capture::PlaintextFilter(inner);
  ss.inner = inner;
  ss.marker = marker;
  ss.save_dir = c.dir();
  ss.label = label + "-sanity-" + server.name;
  std::unique_ptr<node::CaptureRun> sanity = env.StartPodCapture(server, ss);

  EncryptedProbe r;
  r.outcome = env.Probe(client, server, spec);
  for (auto& cap : caps) r.underlay.push_back(cap->Finish());
  r.sanity = sanity->Finish();
  nlohmann::json j = {{"label", label}, {"outcome", r.outcome.ToJson()}, {"sanity", r.sanity.ToJson()}};
  for (const auto& s : r.underlay) j["underlay"].push_back(s.ToJson());
  c.Add("probes", j);
  return r;
}

bool ExpectEncrypted(Env& env, Case& c, const EncryptedProbe& p, const App& client, const App& server,
                     const std::string& label) {
  const auto infos = env.IpsecNodes();
  std::vector<std::string> problems, codes;
  if (p.outcome.kind != OutcomeKind::kOk) {
    problems.push_back("client saw " + p.outcome.ToString() + ", expected ok");
    codes.push_back(code::kRequestNotServed);
  }
  for (size_t i = 0; i < p.underlay.size() && i < infos.size(); ++i) {
    const uint32_t receiver_spi = infos[1 - i].spi;  // ESP from node i carries the peer's SPI
    auto v = capture::JudgeEncrypted(p.underlay[i], receiver_spi);
    if (!v.pass) problems.push_back(infos[i].name + " underlay: " + v.Describe());
    codes.insert(codes.end(), v.codes.begin(), v.codes.end());
  }
  auto s = capture::JudgePlaintextVisible(p.sanity);
  codes.insert(codes.end(), s.codes.begin(), s.codes.end());
  if (!s.pass)
    problems.push_back("sanity capture in " + server.name + ": " + s.Describe() +
                       " (the plaintext filter would not have caught a leak)");
  if (problems.empty()) return true;
  std::string why =
      "[" + label + "] " + client.name + " -> " + server.name + " (" + p.outcome.tuple.ToString() + ")\n" +
      "  expected:    ok; the probe's own connection inside ESP with each receiver's SPI on both "
      "underlays; no plaintext; sanity sees it\n" +
      "  client saw:  " + p.outcome.ToString() + "\n  kernel held:";
  for (const auto& u : p.underlay) why += "\n    " + u.Describe();
  why += "\n    " + p.sanity.Describe() + "\n  disagree:";
  for (const auto& pr : problems) why += "\n    " + pr;
  AddCodes(c, codes);
  Fail(c, why);
  return false;
}

bool ExpectNoXfrmErrors(Case& c, const Layout& before, const Layout& after, const std::string& label) {
  std::vector<std::string> raised;
  for (size_t i = 0; i < before.nodes.size() && i < after.nodes.size(); ++i) {
    auto d = xfrm::Diff(before.nodes[i].snapshot, after.nodes[i].snapshot);
    c.Add("xfrm_diffs", {{"label", label}, {"node", before.nodes[i].info.name}, {"diff", d.ToJson()}});
    for (const auto& e : d.ErrorsRaised())
      raised.push_back(before.nodes[i].info.name + ": " + e.name + " " + std::to_string(e.before) + " -> " +
                       std::to_string(e.after));
  }
  if (raised.empty()) return true;
  c.AddDisagreement(code::kXfrmErrorsRaised);
  std::string why = "[" + label + "] xfrm_stat error counters rose (tolerance 0):";
  for (const auto& r : raised) why += "\n  " + r;
  Fail(c, why);
  return false;
}

bool ExpectKmeshMarking(Env& env, Case& c, const std::string& label) {
  const auto infos = env.IpsecNodes();
  std::vector<std::string> problems, codes;
  for (const auto& info : infos) {
    const auto m = env.IpsecMarking(info.name);
    if (!m) {
      c.Note("[" + label + "] " + env.name() + " cannot read the tc marking of " + info.name);
      continue;
    }
    std::vector<std::string> peers;
    for (const auto& other : infos) {
      if (other.name != info.name) peers.insert(peers.end(), other.pod_cidrs.begin(), other.pod_cidrs.end());
    }
    std::vector<std::string> found;
    for (const auto& p : ipsec::JudgeMarking(*m, peers)) {
      found.push_back(p.text);
      codes.push_back(p.code);
    }
    // What the kernel's tc_mark_encrypt on each pod veth does to a packet from the node's pod CIDR to a
    // peer's: Kmesh's encrypt mark, which is all its out policy matches (kmesh-facts.md §3.6).
    const std::string src = info.pod_cidrs.empty() ? "" : HostIn(info.pod_cidrs.front(), 2);
    const std::string dst = peers.empty() ? "" : HostIn(peers.front(), 2);
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& a : m->attachments) {
      if (a.want != "tc_mark_encrypt" || !a.filter) continue;
      const ipsec::MarkRun r = ipsec::RunMarkProgram(a.filter->prog.id, src, dst);
      runs.push_back(r.ToJson());
      if (!r.ran) {
        c.Note("[" + label + "] " + info.name + ": the mark of " + a.ifname +
               "'s program not checked: " + r.Describe());
      } else if (r.mark != ipsec::kEncryptMark) {
        found.push_back(info.name + ": " + a.ifname + " (" + a.role + "): " + r.Describe() +
                        ", expected Kmesh's encrypt mark 0xe0 (its out policy matches only that)");
        codes.push_back(code::kMarkMissing);
      }
    }
    c.Add("marking", {{"label", label},
                      {"node", info.name},
                      {"marking", m->ToJson()},
                      {"mark_runs", runs},
                      {"problems", found}});
    problems.insert(problems.end(), found.begin(), found.end());
    if (!found.empty()) problems.push_back("  " + m->Describe());
  }
  if (problems.empty()) return true;
  AddCodes(c, codes);
  std::string why = "[" + label + "] Kmesh's IPsec marking differs from what Kmesh sets up:";
  for (const auto& p : problems) why += "\n  " + p;
  Fail(c, why);
  return false;
}

}  // namespace kmesh::e2e
