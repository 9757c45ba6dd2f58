#include "e2e/conformance/differential.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <set>

#include "base/error.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::conformance {

namespace bp = kmesh::bpf_probe;
namespace pol = kmesh::policy;
using Clock = std::chrono::steady_clock;

const char* ToString(Kind k) {
  switch (k) {
    case Kind::kDroppedAllowed:
      return "dropped-allowed";
    case Kind::kPassedDenied:
      return "passed-denied";
    case Kind::kDroppedDeferred:
      return "dropped-deferred";
    case Kind::kCachedDeferred:
      return "cached-deferred";
    case Kind::kWrongCache:
      return "wrong-cache";
    case Kind::kAborted:
      return "aborted";
  }
  return "?";
}

const char* Explain(Kind k) {
  switch (k) {
    case Kind::kDroppedAllowed:
      return "XDP dropped what Istio allows (contract rule 1: XDP may drop only what Istio denies)";
    case Kind::kPassedDenied:
      return "XDP passed what Istio denies on attributes XDP sees (contract rule 2: XDP must drop it)";
    case Kind::kDroppedDeferred:
      return "XDP dropped a connection whose verdict needs the source identity (contract rule 3: defer to "
             "userspace; "
             "rule 1: Istio allows some identities)";
    case Kind::kCachedDeferred:
      return "XDP cached ALLOW for a connection whose verdict needs the source identity (contract rule 3: "
             "defer, "
             "km_auth_res untouched)";
    case Kind::kWrongCache:
      return "the action is right but km_auth_res is not the evidence the contract ties to it (§2)";
    case Kind::kAborted:
      return "XDP aborted or returned an action the contract does not know";
  }
  return "?";
}

std::optional<Kind> Judge(bp::XdpAction action, std::optional<bp::Verdict> auth_res,
                          const IstioAnswer& istio) {
  if (action != bp::XdpAction::kDrop && action != bp::XdpAction::kPass) return Kind::kAborted;
  const bool drop = action == bp::XdpAction::kDrop;
  switch (istio.expected) {
    case Expected::kDrop:
      if (!drop) return Kind::kPassedDenied;
      break;
    case Expected::kPass:
      if (drop) return Kind::kDroppedAllowed;
      break;
    case Expected::kDefer:
      if (drop) return Kind::kDroppedDeferred;
      if (auth_res == bp::Verdict::kAllow) return Kind::kCachedDeferred;
      break;
  }
  if (!istio.cache.Allows(auth_res)) return Kind::kWrongCache;
  return std::nullopt;
}

std::string Cause::Codes() const {
  if (fixes.empty()) return "unexplained";
  std::string out;
  for (const auto& f : fixes) out += (out.empty() ? "" : " | ") + f.Codes();
  return out;
}

std::string Cause::Key() const {
  if (fixes.empty()) return "unexplained";
  return fixes.front().size() == 1 ? Codes() : fixes.front().Codes();
}

bool Cause::Within(const std::string& key) const {
  if (key == "unexplained") return fixes.empty();
  // "D8 | D35" -> {{D8}, {D35}}; "D1+D10" -> {{D1, D10}}.
  std::vector<std::vector<std::string>> alternatives(1);
  std::string code;
  for (char ch : key + " ") {
    if (ch == 'D' || std::isdigit(static_cast<unsigned char>(ch))) {
      code += ch;
      continue;
    }
    if (!code.empty()) alternatives.back().push_back(code);
    code.clear();
    if (ch == '|') alternatives.emplace_back();
  }
  for (const auto& f : fixes) {
    for (const auto& alternative : alternatives) {
      bool inside = true;
      for (Defect d : f.list()) {
        inside =
            inside && std::find(alternative.begin(), alternative.end(), Info(d).code) != alternative.end();
      }
      if (inside) return true;
    }
  }
  return false;
}

std::string Cause::Describe() const {
  if (fixes.empty())
    return "no known defect explains it (fixing every one of them in the model does not make it conform)";
  if (!note.empty())
    return std::string(Info(Defect::kD8).code) + ": " + Info(Defect::kD8).title + " (" +
           Info(Defect::kD8).source + "): " + note;
  DefectSet all;
  for (const auto& f : fixes) {
    for (Defect d : f.list()) all = all.With(d);
  }
  std::string out;
  for (Defect d : all.list()) {
    out += std::string(out.empty() ? "" : "\n") + Info(d).code + ": " + Info(d).title + " (" +
           Info(d).source + ")";
  }
  return out;
}

// The node's maps as the model reads them for one prediction: km_frontend, km_authz_policy and the blobs as
// they are; km_wlpolicy as Kmesh's control plane writes it (selector policies only, D30; the first 4, D6) or
// would with those fixed; with D8 fixed every policy under its own id, so a cut-down key holds nothing.
// km_auth_res is empty: each verdict removes its entries (KmeshXdpUnderTest::Run).
class ModelCase::Maps final : public bp::XdpMaps, public bp::PolicyMemory {
 public:
  Maps(const ModelCase& mc, const DefectSet& present) : mc_(mc), live_(mc.maps_.policies()), d_(present) {}
  std::optional<uint32_t> AuthResult(const net::TupleKey&) override { return std::nullopt; }
  std::optional<uint32_t> Frontend(const std::array<uint8_t, 16>& key) override {
    return mc_.maps_.Frontend(key);
  }
  std::optional<std::vector<uint32_t>> WorkloadPolicies(uint32_t) override {
    std::vector<uint32_t> ids = mc_.selected_ids_;
    if (!d_.Has(Defect::kD30)) ids.insert(ids.end(), mc_.scoped_ids_.begin(), mc_.scoped_ids_.end());
    if (ids.empty()) return std::nullopt;                                  // no km_wlpolicy entry
    if (d_.Has(Defect::kD6)) ids.resize(KM_MAX_MEMBER_NUM_PER_POLICY, 0);  // the first 4, zeros after
    return ids;
  }
  bp::PolicyMemory& policies() override { return *this; }
  const bp::Bytes* Policy(uint32_t key) override {
    if (!d_.Has(Defect::kD8)) {
      const auto it = mc_.stored_.find(key);
      if (it != mc_.stored_.end()) {
        key = it->second;
      } else if (std::any_of(mc_.stored_.begin(), mc_.stored_.end(),
                             [&](const auto& s) { return s.second == key && s.first != key; })) {
        return nullptr;
      }
    }
    return live_.Policy(key);
  }
  std::vector<uint32_t> PolicyKeys() override { return live_.PolicyKeys(); }
  const bp::Bytes* Blob(bp::InnerMap map, uint32_t index) override { return live_.Blob(map, index); }
  bool HasInnerMap(bp::InnerMap map) const override { return live_.HasInnerMap(map); }

 private:
  const ModelCase& mc_;
  bp::PolicyMemory& live_;
  const DefectSet d_;
};

ModelCase::ModelCase(const Case& c, const Written& w, bp::LiveXdpMaps& maps) : maps_(maps) {
  for (const auto& name : w.selected) selected_ids_.push_back(w.policies.at(name).policy_id);
  std::vector<std::string> scoped;
  const auto applying = ApplyingPolicies(c);
  for (const auto& p : applying) {
    if (!p.has_selector) scoped.push_back(p.IdKey());
  }
  std::sort(scoped.begin(), scoped.end());
  for (const auto& name : scoped) scoped_ids_.push_back(w.policies.at(name).policy_id);
  for (const auto& [name, p] : w.policies) stored_[p.policy_id] = p.stored_key;
  identities_ = Representatives(applying);
  // Policies whose record another one replaced under the same cut-down key (D8): their rules are gone.
  for (const auto& [name, p] : w.policies) {
    if (p.stored_key == p.policy_id) continue;
    const auto record = maps.policies().Policy(p.stored_key);
    const std::string stored_name =
        record ? bp::DecodePolicy(p.stored_key, *record, maps.policies()).name : "";
    if (stored_name != name.substr(name.find('/') + 1)) lost_.push_back(name);
  }

  // Which defects the case's shape can expose (see Relevant).
  using K = pol::ConditionKey::Kind;
  const size_t cap = KM_MAX_MEMBER_NUM_PER_POLICY;
  bool multi_address = false, over_cap = false, many_ports = false, not_only = false, ipv6 = false,
       multi_rule = false;
  bool no_rules = false;
  auto addresses = [&](size_t n_in, size_t n_not, bool v6) {
    multi_address = multi_address || n_in > 1 || n_not > 1;
    over_cap = over_cap || n_in > cap || n_not > cap;
    not_only = not_only || (n_in == 0 && n_not > 0);
    ipv6 = ipv6 || v6;
  };
  auto family = [&](const std::vector<net::Cidr>& v) {
    bool six = false;
    for (const auto& c : v) {
      six = six || !c.address().is_v4();
      has_ipv4_rule_ = has_ipv4_rule_ || c.address().is_v4();
    }
    return six;
  };
  auto family_text = [&](const std::vector<std::string>& v) {
    std::vector<net::Cidr> cidrs;
    for (const auto& t : v) {
      if (const auto c = net::Cidr::Parse(t)) cidrs.push_back(*c);
    }
    return family(cidrs);
  };
  for (const auto& p : applying) {
    multi_rule = multi_rule || p.rules.size() > 1;
    no_rules = no_rules || p.rules.empty();
    over_cap = over_cap || p.rules.size() > cap;
    for (const auto& rule : p.rules) {
      const size_t clauses = (rule.from.empty() ? 0 : 1) + (rule.to.empty() ? 0 : 1) + rule.when.size();
      over_cap = over_cap || clauses > cap || rule.from.size() > cap || rule.to.size() > cap;
      for (const auto& s : rule.from) {
        const bool six = family(s.ip_blocks) | family(s.not_ip_blocks);
        addresses(s.ip_blocks.size(), s.not_ip_blocks.size(), six);
      }
      for (const auto& o : rule.to)
        many_ports = many_ports || o.ports.size() > cap || o.not_ports.size() > cap;
      for (const auto& c : rule.when) {
        if (c.key.kind == K::kSourceIp || c.key.kind == K::kDestinationIp) {
          const bool six = family_text(c.values) | family_text(c.not_values);
          addresses(c.values.size(), c.not_values.size(), six);
        } else if (c.key.kind == K::kDestinationPort) {
          many_ports = many_ports || c.values.size() > cap || c.not_values.size() > cap;
        }
      }
    }
  }
  DefectSet r;
  if (selected_ids_.size() + scoped_ids_.size() > 1) r = r.With(Defect::kD1);
  if (identities_.size() > 1) r = r.With(Defect::kD2);
  if (multi_address) r = r.With(Defect::kD5);
  if (selected_ids_.size() + scoped_ids_.size() > cap) r = r.With(Defect::kD6);
  for (const auto& [id, key] : stored_) {
    if (id != key) r = r.With(Defect::kD8);
    if (key == 0) r = r.With(Defect::kD35);
  }
  if (multi_rule) r = r.With(Defect::kD10);
  if (not_only) r = r.With(Defect::kD11);
  if (many_ports) r = r.With(Defect::kD12);
  if (!scoped_ids_.empty()) r = r.With(Defect::kD30);
  if (no_rules) r = r.With(Defect::kD31);
  if (ipv6) r = r.With(Defect::kD33);
  if (over_cap) r = r.With(Defect::kD34);
  relevant_ = r;
}

DefectSet ModelCase::Relevant(const Connection& conn) const {
  return conn.family() != Family::kIPv4 && has_ipv4_rule_ ? relevant_.With(Defect::kD32) : relevant_;
}

bp::XdpExplanation ModelCase::Predict(const Connection& conn, const DefectSet& present, bool trace) const {
  Maps maps(*this, present);
  bp::XdpModel model{present, "", "", trace};
  if (present.Has(Defect::kD2)) return bp::ExplainXdp(conn.tuple, maps, true, model);
  // D2 fixed: decide only what every identity class agrees on, defer the rest.
  std::vector<bp::XdpExplanation> each;
  bool drop = false, pass = false;
  for (const Identity& id : identities_) {
    model.client_ns = id.ns;
    model.client_principal = id.principal;
    each.push_back(bp::ExplainXdp(conn.tuple, maps, true, model));
    drop = drop || each.back().action == bp::XdpAction::kDrop;
    pass = pass || each.back().action != bp::XdpAction::kDrop;
    if (drop && pass) break;  // the identity decides: deferred, whatever the others say
  }
  auto all = [&](auto pred) { return std::all_of(each.begin(), each.end(), pred); };
  bp::XdpExplanation p = each.front();
  p.writes_auth_res.reset();
  p.tcargs.reset();
  p.to_userspace = false;
  for (const auto& e : each) {
    p.read_past_slots = p.read_past_slots || e.read_past_slots;
    p.assumed_past_slots = p.assumed_past_slots || e.assumed_past_slots;
  }
  if (all([](const bp::XdpExplanation& e) { return e.action == bp::XdpAction::kDrop; })) {
    p.action = bp::XdpAction::kDrop;
    if (!all([](const bp::XdpExplanation& e) { return !e.writes_auth_res; }))
      p.writes_auth_res = bp::Verdict::kDeny;
  } else if (all([](const bp::XdpExplanation& e) { return e.action == bp::XdpAction::kPass; })) {
    p.action = bp::XdpAction::kPass;
    if (all([](const bp::XdpExplanation& e) { return e.writes_auth_res == bp::Verdict::kAllow; }))
      p.writes_auth_res = bp::Verdict::kAllow;
  } else {
    p.action = bp::XdpAction::kPass;
    p.to_userspace = true;
  }
  return p;
}

std::string ModelVerdict(const bp::XdpExplanation& m) {
  return "XDP_" + bp::ToString(m.action) +
         ", km_auth_res = " + (m.writes_auth_res ? bp::ToString(*m.writes_auth_res) : "no entry") +
         (m.to_userspace ? ", tail call to xdp_shutdown_in_userspace" : "");
}

Cause Classify(const ModelCase& mc, const Connection& conn, const IstioAnswer& istio, bool first_only) {
  // Only the defects the case's shape can expose; fixing another one cannot change the prediction.
  const std::vector<Defect> ids = mc.Relevant(conn).list();
  const size_t n = ids.size();
  Cause cause;
  auto conforms = [&](const DefectSet& fixed) {
    DefectSet present = DefectSet::All();
    for (Defect d : fixed.list()) present = present.Without(d);
    const bp::XdpExplanation p = mc.Predict(conn, present);
    return !Judge(p.action, p.writes_auth_res, istio).has_value();
  };
  // Sets of k defects in lexicographic order, k = 1, 2, ...: the first size with a set that conforms wins.
  std::vector<size_t> pick;
  // `first_only` still tries every single defect: "D8 | D35" is a cause of its own, not "D8".
  std::function<void(size_t, size_t)> choose = [&](size_t from, size_t k) {
    if (first_only && pick.size() + k > 1 && !cause.fixes.empty()) return;
    if (k == 0) {
      DefectSet s;
      for (size_t i : pick) s = s.With(ids[i]);
      if (conforms(s)) cause.fixes.push_back(s);
      return;
    }
    for (size_t i = from; i + k <= n; ++i) {
      pick.push_back(i);
      choose(i + 1, k - 1);
      pick.pop_back();
    }
  };
  for (size_t k = 1; k <= n && cause.fixes.empty(); ++k) choose(0, k);
  if (cause.fixes.empty() && !mc.lost().empty()) {
    // A policy Kmesh overwrote under a shared cut-down key cannot be evaluated by the model with D8 fixed;
    // losing it is D8's doing.
    cause.fixes.push_back(DefectSet::None().With(Defect::kD8));
    cause.note = mc.lost().front() + "'s record was replaced under the same cut-down key by another policy";
  }
  return cause;
}

std::string ModelMiss(const ConnVerdict& v) {
  return "model of Kmesh's XDP predicted " + ModelVerdict(v.model) +
         (v.model.tcargs ? ", km_tcargs = " + v.model.tcargs->ToString() : ", km_tcargs = no entry") +
         (v.model.read_past_slots ? " (it read km_wlpolicy past its 4 slots: unknown memory)" : "") +
         "; Kmesh's XDP did " + v.kmesh.ToString();
}

Differential::Differential(KmeshXdpUnderTest& node)
    : node_(node), maps_(bp::MapCatalog::FromPinDir(node.pin_dir())) {}

namespace {

class Stopwatch {
 public:
  explicit Stopwatch(double& into) : into_(into), start_(Clock::now()) {}
  ~Stopwatch() { into_ += std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  double& into_;
  Clock::time_point start_;
};

}  // namespace

std::string Timings::ToString() const {
  char buf[200];
  snprintf(buf, sizeof buf,
           "write %.1f s, xdp test runs %.1f s, oracle %.1f s, model %.1f s, classify %.1f s, undo %.1f s",
           write, xdp, oracle, model, classify, undo);
  return buf;
}

ConnVerdict Differential::JudgeOne(const ModelCase& mc, const Oracle& oracle, const Connection& conn,
                                   bool trace, std::map<std::string, Cause>* causes) {
  ConnVerdict v;
  v.conn = conn;
  {
    Stopwatch t(timings_.xdp);
    v.kmesh = node_.Run(conn);
  }
  {
    Stopwatch t(timings_.oracle);
    v.istio = oracle.Judge(conn);
  }
  Stopwatch t(timings_.model);
  v.model = mc.Predict(conn, DefectSet::All(), trace);
  v.model_matches = v.model.Agrees(v.kmesh.action, v.kmesh.auth_res, v.kmesh.tcargs);
  v.kind = Judge(v.kmesh.action, v.kmesh.auth_res, v.istio);
  if (v.kind) {
    Stopwatch c(timings_.classify);
    net::Tuple no_sport = conn.tuple;
    no_sport.src.port = 0;
    const std::string key = no_sport.ToString() + " " + v.kmesh.ToString() + " " + ToString(*v.kind);
    if (causes != nullptr && causes->count(key) != 0) {
      v.cause = causes->at(key);
    } else {
      v.cause = Classify(mc, conn, v.istio, /*first_only=*/causes != nullptr);
      if (causes != nullptr) (*causes)[key] = v.cause;
    }
  }
  return v;
}

CaseRun Differential::Run(const Case& c) {
  CaseRun r;
  {
    Stopwatch t(timings_.write);
    r.written = node_.Write(c);
  }
  maps_.Forget();
  const ModelCase mc(c, r.written, maps_);
  double unused = 0;
  const Oracle oracle = [&] {
    Stopwatch t(unused);
    return Oracle(c);
  }();
  timings_.oracle += unused;
  bool notable = false;
  std::map<std::string, Cause> causes;
  for (const auto& conn : c.connections) {
    r.verdicts.push_back(JudgeOne(mc, oracle, conn, false, &causes));
    notable = notable || r.verdicts.back().kind || !r.verdicts.back().model_matches;
  }
  if (notable) {
    r.maps = node_.DescribeMaps(r.written);
    // The model's account, for the report: of the first verdict of each kind x cause here (the report
    // shows a class's first verdict) and of every model miss.
    std::set<std::string> traced;
    for (auto& v : r.verdicts) {
      if (!v.model_matches || (v.kind && traced.insert(ToString(*v.kind) + v.cause.Key()).second))
        v.model = mc.Predict(v.conn, DefectSet::All(), true);
    }
  }
  Stopwatch t(timings_.undo);
  node_.Undo(r.written);
  maps_.Forget();
  return r;
}

ConnVerdict Differential::RunOne(const Case& c, bool trace, std::string* maps) {
  const Written w = node_.Write(c);
  maps_.Forget();
  ConnVerdict v;
  try {
    const ModelCase mc(c, w, maps_);
    v = JudgeOne(mc, Oracle(c), c.connections.at(0), trace);
    if (maps != nullptr) *maps = node_.DescribeMaps(w);
  } catch (...) {
    node_.Undo(w);
    throw;
  }
  node_.Undo(w);
  maps_.Forget();
  return v;
}

namespace {

// What shrinking keeps: the cause filed under `key`, or a simpler one; but a cause any of several single
// defects explains ("D8 | D35") stays exactly that, else it would drift to one of them and lose the other.
bool SameCause(const Cause& c, const std::string& key) {
  return c.Within(key) && (key.find('|') == std::string::npos || c.Key() == key);
}

}  // namespace

ConnVerdict Differential::Replay(const Case& c, std::string* maps) {
  node_.Reset();
  ConnVerdict v = RunOne(c, true, maps);
  maps_.Forget();
  return v;
}

bool Differential::Still(const Case& candidate, Kind kind, const std::string& key) {
  const ConnVerdict v = RunOne(candidate, false, nullptr);
  return v.model_matches && v.kind == kind && SameCause(v.cause, key);
}

namespace {

// Smaller variants of a one-connection case, coarse first: fewer policies, rules, rule parts, fields,
// list entries; then simpler names, selectors and ports.
std::vector<Case> Candidates(const Case& c) {
  std::vector<Case> out;
  auto each_policy = [&](const std::function<void(pol::AuthorizationPolicy&, Case&)>& edit) {
    for (size_t i = 0; i < c.policies.size(); ++i) {
      Case v = c;
      edit(v.policies[i], v);
    }
  };
  for (size_t i = 0; i < c.policies.size(); ++i) {
    Case v = c;
    v.policies.erase(v.policies.begin() + static_cast<long>(i));
    out.push_back(std::move(v));
  }
  for (size_t i = 0; i < c.policies.size(); ++i) {
    for (size_t r = 0; r < c.policies[i].rules.size(); ++r) {
      Case v = c;
      auto& rules = v.policies[i].rules;
      rules.erase(rules.begin() + static_cast<long>(r));
      out.push_back(std::move(v));
    }
  }
  // Parts of rules.
  for (size_t i = 0; i < c.policies.size(); ++i) {
    for (size_t r = 0; r < c.policies[i].rules.size(); ++r) {
      const pol::Rule& rule = c.policies[i].rules[r];
      auto drop = [&](auto member, size_t k) {
        Case v = c;
        auto& list = v.policies[i].rules[r].*member;
        list.erase(list.begin() + static_cast<long>(k));
        out.push_back(std::move(v));
      };
      for (size_t k = 0; k < rule.from.size(); ++k) drop(&pol::Rule::from, k);
      for (size_t k = 0; k < rule.to.size(); ++k) drop(&pol::Rule::to, k);
      for (size_t k = 0; k < rule.when.size(); ++k) drop(&pol::Rule::when, k);
    }
  }
  // Fields and list entries. A source or operation keeps at least one field (Istio refuses empty ones), a
  // condition at least one of values/notValues.
  for (size_t i = 0; i < c.policies.size(); ++i) {
    for (size_t r = 0; r < c.policies[i].rules.size(); ++r) {
      const pol::Rule& rule = c.policies[i].rules[r];
      for (size_t k = 0; k < rule.from.size(); ++k) {
        const pol::Source& s = rule.from[k];
        auto field_count = [](const pol::Source& x) {
          return !x.ip_blocks.empty() + !x.not_ip_blocks.empty() + !x.namespaces.empty() +
                 !x.not_namespaces.empty() + !x.principals.empty() + !x.not_principals.empty();
        };
        auto shrink_list = [&](auto member) {
          const auto& list = s.*member;
          if (list.empty()) return;
          if (field_count(s) > 1) {  // drop the field
            Case v = c;
            (v.policies[i].rules[r].from[k].*member).clear();
            out.push_back(std::move(v));
          }
          for (size_t e = 0; list.size() > 1 && e < list.size(); ++e) {
            Case v = c;
            auto& l = v.policies[i].rules[r].from[k].*member;
            l.erase(l.begin() + static_cast<long>(e));
            out.push_back(std::move(v));
          }
        };
        shrink_list(&pol::Source::ip_blocks);
        shrink_list(&pol::Source::not_ip_blocks);
        shrink_list(&pol::Source::namespaces);
        shrink_list(&pol::Source::not_namespaces);
        shrink_list(&pol::Source::principals);
        shrink_list(&pol::Source::not_principals);
      }
      for (size_t k = 0; k < rule.to.size(); ++k) {
        const pol::Operation& o = rule.to[k];
        auto shrink_list = [&](auto member) {
          const auto& list = o.*member;
          if (list.empty()) return;
          if (!o.ports.empty() && !o.not_ports.empty()) {
            Case v = c;
            (v.policies[i].rules[r].to[k].*member).clear();
            out.push_back(std::move(v));
          }
          for (size_t e = 0; list.size() > 1 && e < list.size(); ++e) {
            Case v = c;
            auto& l = v.policies[i].rules[r].to[k].*member;
            l.erase(l.begin() + static_cast<long>(e));
            out.push_back(std::move(v));
          }
        };
        shrink_list(&pol::Operation::ports);
        shrink_list(&pol::Operation::not_ports);
      }
      for (size_t k = 0; k < rule.when.size(); ++k) {
        const pol::Condition& cond = rule.when[k];
        auto shrink_list = [&](auto member) {
          const auto& list = cond.*member;
          if (list.empty()) return;
          if (!cond.values.empty() && !cond.not_values.empty()) {
            Case v = c;
            (v.policies[i].rules[r].when[k].*member).clear();
            out.push_back(std::move(v));
          }
          for (size_t e = 0; list.size() > 1 && e < list.size(); ++e) {
            Case v = c;
            auto& l = v.policies[i].rules[r].when[k].*member;
            l.erase(l.begin() + static_cast<long>(e));
            out.push_back(std::move(v));
          }
        };
        shrink_list(&pol::Condition::values);
        shrink_list(&pol::Condition::not_values);
      }
    }
  }
  // Simpler selectors and names: "p1", "p2", ... in the policies' current sorted order.
  each_policy([&](pol::AuthorizationPolicy& p, Case& v) {
    if (p.selector.size() > 1) {
      p.selector = {{"app", "httpbin"}};
      out.push_back(v);
    }
  });
  {
    std::vector<std::string> names;
    for (const auto& p : c.policies) names.push_back(p.ns + "/" + p.name);
    std::vector<std::string> sorted = names;
    std::sort(sorted.begin(), sorted.end());
    Case v = c;
    bool changed = false;
    for (auto& p : v.policies) {
      const auto at = std::find(sorted.begin(), sorted.end(), p.ns + "/" + p.name) - sorted.begin();
      const std::string short_name = "p" + std::to_string(at + 1);
      changed = changed || p.name != short_name;
      p.name = short_name;
    }
    if (changed) out.push_back(std::move(v));
  }
  const Connection& conn = c.connections.at(0);
  if (conn.tuple.src.port != 40000) {
    Case v = c;
    v.connections[0].tuple.src.port = 40000;
    out.push_back(std::move(v));
  }
  if (conn.tuple.dst.port != 8000) {
    Case v = c;
    v.connections[0].tuple.dst.port = 8000;
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

Shrunk Differential::Shrink(const Case& original, const Connection& conn, Kind kind, const std::string& key,
                            Clock::time_point deadline) {
  Shrunk s;
  s.c = original;
  s.c.connections = {conn};
  bool progress = true;
  while (progress && Clock::now() < deadline) {
    progress = false;
    for (Case& candidate : Candidates(s.c)) {
      if (Clock::now() >= deadline) break;
      ++s.tries;
      if (Still(candidate, kind, key)) {
        s.c = std::move(candidate);
        progress = true;
        break;
      }
    }
  }
  // The kept case must disagree the same way on a node that saw nothing before it.
  s.verdict = Replay(s.c, &s.maps);
  s.reproduced = s.verdict.model_matches && s.verdict.kind == kind && SameCause(s.verdict.cause, key);
  return s;
}

}  // namespace kmesh::conformance
