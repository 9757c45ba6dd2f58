#include "node/probe_json.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "base/error.h"
#include "base/hex.h"
#include "ipsec/ipsec_secret.h"

namespace kmesh::node {
namespace {

using nlohmann::json;

std::string Short(const std::string& s, size_t n = 120) {
  std::string out = s.substr(0, n);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s.size() > n ? out + "..." : out;
}

// Field access that names the report and the field path in errors.
class Reader {
 public:
  Reader(const json& j, std::string where, std::string path = "")
      : j_(j), where_(std::move(where)), path_(std::move(path)) {
    if (!j_.is_object()) Fail("", "an object", j_);
  }

  [[noreturn]] void Fail(const std::string& key, const std::string& expected, const json& found) const {
    throw Error(where_ + ": field " + Path(key) + ": expected " + expected + ", found " +
                Short(found.dump()));
  }
  std::string Path(const std::string& key) const {
    if (key.empty()) return path_.empty() ? "(top level)" : path_;
    return path_.empty() ? key : path_ + "." + key;
  }
  const json& Get(const std::string& key) const {
    auto it = j_.find(key);
    if (it == j_.end()) throw Error(where_ + ": field " + Path(key) + " is missing");
    return *it;
  }
  bool Has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  std::string Str(const std::string& key) const {
    const json& v = Get(key);
    if (!v.is_string()) Fail(key, "a string", v);
    return v.get<std::string>();
  }
  std::string StrOr(const std::string& key, const std::string& fallback) const {
    return Has(key) ? Str(key) : fallback;
  }
  uint64_t U64(const std::string& key) const {
    const json& v = Get(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      Fail(key, "a non-negative integer", v);
    return v.get<uint64_t>();
  }
  uint64_t U64Or(const std::string& key, uint64_t fallback) const { return Has(key) ? U64(key) : fallback; }
  uint32_t U32(const std::string& key) const {
    const uint64_t v = U64(key);
    if (v > UINT32_MAX) Fail(key, "a 32-bit integer", Get(key));
    return static_cast<uint32_t>(v);
  }
  double Num(const std::string& key) const {
    const json& v = Get(key);
    if (!v.is_number()) Fail(key, "a number", v);
    return v.get<double>();
  }
  bool Bool(const std::string& key) const {
    const json& v = Get(key);
    if (!v.is_boolean()) Fail(key, "true or false", v);
    return v.get<bool>();
  }
  const json& Array(const std::string& key) const {
    const json& v = Get(key);
    if (!v.is_array()) Fail(key, "an array", v);
    return v;
  }
  Reader Object(const std::string& key) const { return Reader(Get(key), where_, Path(key)); }
  Reader Element(const json& e, const std::string& key, size_t i) const {
    return Reader(e, where_, Path(key) + "[" + std::to_string(i) + "]");
  }
  const std::string& where() const { return where_; }

 private:
  const json& j_;
  std::string where_;
  std::string path_;
};

uint32_t ParseHex32(const Reader& r, const std::string& key, const std::string& text) {
  if (text.size() < 3 || text[0] != '0' || (text[1] != 'x' && text[1] != 'X'))
    r.Fail(key, "a hex number like 0x00000002", text);
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str() + 2, &end, 16);
  if (*end != '\0' || v > UINT32_MAX) r.Fail(key, "a 32-bit hex number", text);
  return static_cast<uint32_t>(v);
}

xfrm::Mark ParseMark(const Reader& r, const std::string& key) {
  const std::string text = r.Str(key);
  const auto slash = text.find('/');
  if (slash == std::string::npos) r.Fail(key, "a mark like 0xd0/0xffffffff", text);
  return xfrm::Mark{ParseHex32(r, key, text.substr(0, slash)), ParseHex32(r, key, text.substr(slash + 1))};
}

uint8_t ParseProto(const Reader& r, const std::string& key, const std::string& name) {
  static const std::pair<const char*, uint8_t> kNames[] = {
      {"esp", IPPROTO_ESP},         {"ah", IPPROTO_AH},       {"comp", IPPROTO_COMP},
      {"route2", IPPROTO_ROUTING},  {"hao", IPPROTO_DSTOPTS}, {"ipsec-any", 255},
      {"tcp", IPPROTO_TCP},         {"udp", IPPROTO_UDP},     {"icmp", IPPROTO_ICMP},
      {"ipv6-icmp", IPPROTO_ICMPV6}};
  for (const auto& [n, v] : kNames) {
    if (name == n) return v;
  }
  char* end = nullptr;
  const long v = std::strtol(name.c_str(), &end, 10);
  if (name.empty() || *end != '\0' || v < 0 || v > 255)
    r.Fail(key, "a protocol name (esp, ah, tcp, ...) or number", name);
  return static_cast<uint8_t>(v);
}

// The one of `values` whose ToString is the text at `key`: what the writer's ToString printed, read back.
template <typename E>
E ParseEnum(const Reader& r, const std::string& key, std::initializer_list<E> values, const char* expected) {
  const std::string text = r.Str(key);
  for (E v : values) {
    if (text == ToString(v)) return v;
  }
  r.Fail(key, expected, text);
}

xfrm::Mode ParseMode(const Reader& r, const std::string& key) {
  using xfrm::Mode;
  return ParseEnum(r, key,
                   {Mode::kTransport, Mode::kTunnel, Mode::kRouteOptimization, Mode::kInTrigger, Mode::kBeet},
                   "transport, tunnel, ro, in_trigger or beet");
}

int FamilyOf(const std::string& addr) { return addr.find(':') != std::string::npos ? AF_INET6 : AF_INET; }

// Selector::ToString's text: "src A dst B[ proto P][ sport N][ dport N][ ifindex N]" (A and B may be empty
// for a state's unset selector: "src  dst ").
xfrm::Selector ParseSelector(const Reader& r, const std::string& key) {
  const std::string text = r.Str(key);
  std::vector<std::string> words;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t sp = text.find(' ', at);
    words.push_back(text.substr(at, sp == std::string::npos ? std::string::npos : sp - at));
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  while (!words.empty() && words.back().empty()) words.pop_back();  // trailing space of an empty dst
  if (words.size() % 2 == 1) words.push_back("");
  xfrm::Selector s;
  bool have_src = false, have_dst = false;
  for (size_t i = 0; i + 1 < words.size(); i += 2) {
    const std::string& word = words[i];
    const std::string& value = words[i + 1];
    auto number = [&](uint32_t max) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v > max) r.Fail(key, word + " followed by a number", text);
      return static_cast<uint32_t>(v);
    };
    if (word == "src") {
      s.src = value;
      have_src = true;
    } else if (word == "dst") {
      s.dst = value;
      have_dst = true;
    } else if (word == "proto") {
      s.proto = ParseProto(r, key, value);
    } else if (word == "sport") {
      s.sport = static_cast<uint16_t>(number(65535));
      s.sport_mask = 0xffff;
    } else if (word == "dport") {
      s.dport = static_cast<uint16_t>(number(65535));
      s.dport_mask = 0xffff;
    } else if (word == "ifindex") {
      s.ifindex = static_cast<int>(number(INT32_MAX));
    } else {
      r.Fail(key, "\"src A dst B [proto P] [sport N] [dport N] [ifindex N]\"", text);
    }
  }
  if (!have_src || !have_dst) r.Fail(key, "a selector with src and dst", text);
  s.family = s.src.empty() && s.dst.empty() ? 0 : FamilyOf(s.src.empty() ? s.dst : s.src);
  return s;
}

std::vector<uint8_t> FromHex(const Reader& r, const std::string& key, const std::string& hex) {
  size_t bad = 0;
  if (auto bytes = BytesFromHex(hex, &bad)) return *bytes;
  if (bad == hex.size())
    r.Fail(key, "an even number of hex digits", json("<" + std::to_string(hex.size()) + " digits>"));
  // Never echo key material: say where, not what.
  r.Fail(key, "hex digits", json("<non-hex digit at " + std::to_string(bad & ~size_t{1}) + ">"));
}

xfrm::XfrmState StateFromJson(const Reader& r) {
  xfrm::XfrmState s;
  s.src = r.Str("src");
  s.dst = r.Str("dst");
  s.family = FamilyOf(s.dst);
  s.proto = ParseProto(r, "proto", r.Str("proto"));
  s.spi = xfrm::Spi{ParseHex32(r, "spi", r.Str("spi"))};
  s.reqid = r.U32("reqid");
  s.mode = ParseMode(r, "mode");
  s.replay_window = static_cast<uint8_t>(r.U64Or("replay_window", 0));
  s.flags = static_cast<uint8_t>(r.U64Or("flags", 0));
  s.selector = ParseSelector(r, "selector");
  s.mark = ParseMark(r, "mark");
  if (r.Has("output_mark")) s.output_mark = ParseMark(r, "output_mark");
  if (r.Has("aead")) {
    Reader a = r.Object("aead");
    s.aead_name = a.Str("name");
    s.icv_bits = a.U32("icv_bits");
    if (r.Has("aead_key_hex")) {
      s.aead_key = ipsec::KeyMaterial(FromHex(r, "aead_key_hex", r.Str("aead_key_hex")));
      if (a.Has("key_fingerprint") && a.Str("key_fingerprint") != s.aead_key.Fingerprint()) {
        throw Error(r.where() + ": state " + r.StrOr("id", s.src + " -> " + s.dst) +
                    ": aead_key_hex does not match aead.key_fingerprint (the report is corrupt)");
      }
    }
  }
  if (r.Has("auth")) s.auth_name = r.Str("auth");
  if (r.Has("enc")) s.enc_name = r.Str("enc");
  s.if_id = static_cast<uint32_t>(r.U64Or("if_id", 0));
  if (r.Has("lifetime")) {
    Reader l = r.Object("lifetime");
    s.cur_bytes = l.U64Or("bytes", 0);
    s.cur_packets = l.U64Or("packets", 0);
    s.add_time = l.U64Or("add_time", 0);
    s.use_time = l.U64Or("use_time", 0);
  }
  if (r.Has("replay")) {
    Reader p = r.Object("replay");
    s.oseq = static_cast<uint32_t>(p.U64Or("oseq", 0));
    s.seq = static_cast<uint32_t>(p.U64Or("seq", 0));
    s.replay_bitmap = static_cast<uint32_t>(p.U64Or("bitmap", 0));
  }
  if (r.Has("stats")) {
    Reader st = r.Object("stats");
    s.stats_replay_window = static_cast<uint32_t>(st.U64Or("replay_window", 0));
    s.stats_replay = static_cast<uint32_t>(st.U64Or("replay", 0));
    s.stats_integrity_failed = static_cast<uint32_t>(st.U64Or("integrity_failed", 0));
  }
  return s;
}

xfrm::XfrmPolicy PolicyFromJson(const Reader& r) {
  xfrm::XfrmPolicy p;
  p.dir = ParseEnum(r, "dir", {xfrm::Dir::kIn, xfrm::Dir::kOut, xfrm::Dir::kFwd}, "in, out or fwd");
  p.selector = ParseSelector(r, "selector");
  p.priority = r.U32("priority");
  p.index = static_cast<uint32_t>(r.U64Or("index", 0));
  const std::string action = r.StrOr("action", "allow");
  if (action != "allow" && action != "block") r.Fail("action", "allow or block", action);
  p.action = action == "allow" ? xfrm::Action::kAllow : xfrm::Action::kBlock;
  const std::string ptype = r.StrOr("ptype", "main");
  if (ptype != "main" && ptype != "sub") r.Fail("ptype", "main or sub", ptype);
  p.sub = ptype == "sub";
  p.mark = ParseMark(r, "mark");
  const json& tmpls = r.Array("templates");
  for (size_t i = 0; i < tmpls.size(); ++i) {
    Reader t = r.Element(tmpls[i], "templates", i);
    xfrm::XfrmTemplate x;
    x.src = t.Str("src");
    x.dst = t.Str("dst");
    x.family = FamilyOf(x.dst.empty() ? p.selector.dst : x.dst);
    x.proto = ParseProto(t, "proto", t.Str("proto"));
    x.spi = xfrm::Spi{ParseHex32(t, "spi", t.Str("spi"))};
    x.reqid = t.U32("reqid");
    x.mode = ParseMode(t, "mode");
    x.optional = t.Has("optional") && t.Bool("optional");
    p.templates.push_back(x);
  }
  if (r.Has("lifetime")) {
    Reader l = r.Object("lifetime");
    p.cur_bytes = l.U64Or("bytes", 0);
    p.cur_packets = l.U64Or("packets", 0);
  }
  return p;
}

json Ids(const std::vector<uint32_t>& ids) { return json(ids); }

std::vector<uint32_t> U32List(const Reader& r, const std::string& key) {
  std::vector<uint32_t> out;
  const json& a = r.Array(key);
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number_unsigned() || a[i].get<uint64_t>() > UINT32_MAX) {
      r.Fail(key + "[" + std::to_string(i) + "]", "a 32-bit id", a[i]);
    }
    out.push_back(a[i].get<uint32_t>());
  }
  return out;
}

}  // namespace

json Envelope(const std::string& command, json body) {
  json j = {{"probe", "kmesh-probe"}, {"version", kProbeJsonVersion}, {"command", command}};
  for (auto& [k, v] : body.items()) j[k] = v;
  return j;
}

json ErrorReport(const std::string& command, const std::string& message) {
  return Envelope(command, {{"error", message}});
}

json ParseReport(const std::string& text, const std::string& expected_command, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(where + ": output is not kmesh-probe's JSON: found \"" + Short(text) + "\"");
  }
  if (j.value("probe", "") != "kmesh-probe") {
    throw Error(where + ": output lacks \"probe\": \"kmesh-probe\": found " + Short(j.dump()));
  }
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int>() != kProbeJsonVersion) {
    throw Error(where + ": kmesh-probe report version " +
                (j.contains("version") ? j["version"].dump() : "(none)") + ", this harness reads version " +
                std::to_string(kProbeJsonVersion) + " (copy the kmesh-probe built with this harness)");
  }
  if (j.contains("error")) {
    throw Error(where + ": kmesh-probe failed: " +
                (j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump()));
  }
  if (j.value("command", "") != expected_command) {
    throw Error(where + ": expected a \"" + expected_command + "\" report, found \"" +
                j.value("command", "") + "\"");
  }
  return j;
}

// ---- xfrm ----

json XfrmReportBody(const xfrm::XfrmSnapshot& s, bool include_raw_keys) {
  json snap = s.ToJson();
  if (include_raw_keys) {
    for (size_t i = 0; i < s.states.size(); ++i) {
      if (!s.states[i].aead_key.empty()) snap["states"][i]["aead_key_hex"] = s.states[i].aead_key.RevealHex();
    }
  }
  return {{"snapshot", snap}, {"raw_keys", include_raw_keys}};
}

xfrm::XfrmSnapshot XfrmSnapshotFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  xfrm::XfrmSnapshot s;
  s.netns = r.Str("netns");
  s.taken_at =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(r.U64Or("taken_at_unix_ms", 0)));
  const json& states = r.Array("states");
  for (size_t i = 0; i < states.size(); ++i)
    s.states.push_back(StateFromJson(r.Element(states[i], "states", i)));
  const json& policies = r.Array("policies");
  for (size_t i = 0; i < policies.size(); ++i)
    s.policies.push_back(PolicyFromJson(r.Element(policies[i], "policies", i)));
  if (r.Has("xfrm_stat")) {
    const json& st = r.Get("xfrm_stat");
    if (!st.is_object()) r.Fail("xfrm_stat", "an object of counters", st);
    for (auto& [k, v] : st.items()) {
      if (!v.is_number_unsigned()) r.Fail("xfrm_stat." + k, "a counter", v);
      s.stats.counters.emplace_back(k, v.get<uint64_t>());
    }
  }
  return s;
}

// ---- auth ----

json ToJson(const AuthReport& r) {
  return {{"map", r.map},
          {"tuple", r.tuple.ToString()},
          {"port_order", net::ToString(r.port_order)},
          {"verdict", r.verdict ? json(bpf_probe::ToString(*r.verdict)) : json(nullptr)},
          {"verdict_value", r.verdict ? json(static_cast<uint32_t>(*r.verdict)) : json(nullptr)}};
}

AuthReport AuthReportFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  AuthReport a;
  a.map = r.Str("map");
  try {
    a.tuple = *net::Tuple::Parse(r.Str("tuple"));
    a.port_order = *net::ParsePortOrder(r.Str("port_order"));
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  if (r.Has("verdict_value")) a.verdict = static_cast<bpf_probe::Verdict>(r.U32("verdict_value"));
  return a;
}

// ---- maps ----

bool MapsReport::HasPolicy(uint32_t id) const {
  return std::find(policy_ids.begin(), policy_ids.end(), id) != policy_ids.end();
}

bool MapsReport::WorkloadLists(uint32_t policy_id) const {
  return workload_policy_ids && std::find(workload_policy_ids->begin(), workload_policy_ids->end(),
                                          policy_id) != workload_policy_ids->end();
}

json ToJson(const MapsReport& r) {
  json maps = json::array();
  for (const auto& m : r.maps) {
    maps.push_back({{"name", m.name},
                    {"id", m.id},
                    {"type", m.type},
                    {"key_size", m.key_size},
                    {"value_size", m.value_size},
                    {"max_entries", m.max_entries},
                    {"entries", m.entries}});
  }
  json j = {{"source", r.source}, {"maps", maps}, {"policy_ids", Ids(r.policy_ids)}};
  if (!r.authz_value_problem.empty()) j["authz_value_problem"] = r.authz_value_problem;
  if (!r.workload_ip.empty()) {
    j["workload"] = {{"ip", r.workload_ip},
                     {"id", r.workload_id ? json(*r.workload_id) : json(nullptr)},
                     {"policy_ids", r.workload_policy_ids ? Ids(*r.workload_policy_ids) : json(nullptr)}};
  }
  return j;
}

MapsReport MapsReportFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  MapsReport m;
  m.source = r.Str("source");
  const json& maps = r.Array("maps");
  for (size_t i = 0; i < maps.size(); ++i) {
    Reader e = r.Element(maps[i], "maps", i);
    m.maps.push_back({e.Str("name"), e.U32("id"), e.Str("type"), e.U32("key_size"), e.U32("value_size"),
                      e.U32("max_entries"), e.U64("entries")});
  }
  m.policy_ids = U32List(r, "policy_ids");
  m.authz_value_problem = r.StrOr("authz_value_problem", "");
  if (r.Has("workload")) {
    Reader w = r.Object("workload");
    m.workload_ip = w.Str("ip");
    if (w.Has("id")) m.workload_id = w.U32("id");
    if (w.Has("policy_ids")) m.workload_policy_ids = U32List(w, "policy_ids");
  }
  return m;
}

// ---- xdp ----

json ToJson(const bpf_probe::XdpAttachment& a) {
  json progs = json::array();
  for (const auto& p : a.programs) {
    progs.push_back({{"mode", bpf_probe::ToString(p.mode)},
                     {"id", p.prog.id},
                     {"name", p.prog.name},
                     {"tag", p.prog.tag},
                     {"type", p.prog.TypeName()},
                     {"jited", p.prog.jited},
                     {"map_ids", p.prog.map_ids}});
  }
  return {{"netns", a.netns},
          {"ifname", a.ifname},
          {"ifindex", a.ifindex},
          {"mode", bpf_probe::ToString(a.mode)},
          {"programs", progs}};
}

bpf_probe::XdpAttachment XdpAttachmentFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  auto mode = [](const Reader& rr) {
    using bpf_probe::XdpMode;
    return ParseEnum(
        rr, "mode", {XdpMode::kNone, XdpMode::kMulti, XdpMode::kNative, XdpMode::kGeneric, XdpMode::kOffload},
        "none, native, generic, offload or multi");
  };
  bpf_probe::XdpAttachment a;
  a.netns = r.Str("netns");
  a.ifname = r.Str("ifname");
  a.ifindex = static_cast<int>(r.U32("ifindex"));
  a.mode = mode(r);
  const json& progs = r.Array("programs");
  for (size_t i = 0; i < progs.size(); ++i) {
    Reader p = r.Element(progs[i], "programs", i);
    bpf_probe::XdpProgram x;
    x.mode = mode(p);
    x.prog.id = p.U32("id");
    x.prog.name = p.Str("name");
    x.prog.tag = p.StrOr("tag", "");
    x.prog.jited = p.Has("jited") && p.Bool("jited");
    if (p.Has("map_ids")) x.prog.map_ids = U32List(p, "map_ids");
    a.programs.push_back(x);
  }
  if (a.programs.empty() != (a.mode == bpf_probe::XdpMode::kNone)) {
    throw Error(where + ": XDP mode " + bpf_probe::ToString(a.mode) + " with " +
                std::to_string(a.programs.size()) + " programs listed (the report contradicts itself)");
  }
  return a;
}

// ---- netns lookup ----

json ToJson(const NetnsOwner& o) {
  return {{"ip", o.ip}, {"netns", o.netns}, {"pid", o.pid}, {"inode", o.inode}, {"ifname", o.ifname}};
}

NetnsOwner NetnsOwnerFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  return NetnsOwner{r.Str("ip"), r.Str("netns"), static_cast<int>(r.U32("pid")),
                    static_cast<unsigned long>(r.U64("inode")), r.Str("ifname")};
}

std::string NetnsHolders::Describe() const {
  std::string out;
  for (const auto& o : holders) {
    if (!out.empty()) out += ", ";
    out += o.netns + " (" + (o.pid > 0 ? "pid " + std::to_string(o.pid) + ", " : "") + o.ifname + ", inode " +
           std::to_string(o.inode) + ")";
  }
  return out.empty() ? "none" : out;
}

const NetnsOwner* NetnsHolders::WithInode(unsigned long inode) const {
  for (const auto& o : holders) {
    if (o.inode == inode) return &o;
  }
  return nullptr;
}

json ToJson(const NetnsHolders& h) {
  json holders = json::array();
  for (const auto& o : h.holders) holders.push_back(ToJson(o));
  return {{"ip", h.ip}, {"holders", holders}, {"scanned", h.scanned}, {"searched", h.searched}};
}

NetnsHolders NetnsHoldersFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  NetnsHolders h;
  h.ip = r.Str("ip");
  h.scanned = r.U64("scanned");
  h.searched = r.Str("searched");
  const json& a = r.Array("holders");
  for (size_t i = 0; i < a.size(); ++i) {
    r.Element(a[i], "holders", i);  // an object, or the error names the element
    h.holders.push_back(NetnsOwnerFromJson(a[i], where + ": holders[" + std::to_string(i) + "]"));
  }
  return h;
}

// ---- capture ----

json CaptureReportBody(const capture::CaptureSummary& s) {
  json j = s.ToJson();
  j["marker_checked"] = s.marker_checked;
  return {{"summary", j}};
}

capture::CaptureSummary CaptureSummaryFromJson(const json& j, const std::string& where) {
  Reader r(j, where);
  capture::CaptureSummary s;
  s.netns = r.Str("netns");
  s.interface = r.Str("interface");
  s.filter = r.Str("filter");
  s.link_type = r.Str("link_type");
  s.direction = r.Str("direction");
  s.packets = r.U64("packets");
  s.esp_packets = r.U64("esp_packets");
  Reader spis = r.Object("esp_spis");
  for (auto& [k, v] : r.Get("esp_spis").items()) {
    if (!v.is_number_unsigned()) spis.Fail(k, "a packet count", v);
    s.esp_spis[ParseHex32(spis, k, k)] = v.get<size_t>();
  }
  auto hits = [&](const std::string& key) {
    std::vector<capture::PlaintextHit> out;
    const json& a = r.Array(key);
    for (size_t i = 0; i < a.size(); ++i) {
      Reader h = r.Element(a[i], key, i);
      out.push_back({h.Num("time"), h.Str("packet")});
    }
    return out;
  };
  s.plaintext = hits("plaintext");
  s.marker_hits = hits("marker_hits");
  s.marker_checked = r.Has("marker_checked") && r.Bool("marker_checked");
  s.first_time = r.Num("first_time");
  s.last_time = r.Num("last_time");
  s.hit_count_bound = r.Bool("hit_count_bound");
  s.kernel_dropped = r.U64("kernel_dropped");
  s.pcap_path = r.StrOr("pcap", "");
  if (s.esp_packets > s.packets) {
    throw Error(where + ": " + std::to_string(s.esp_packets) + " ESP packets of " +
                std::to_string(s.packets) + " captured (the report contradicts itself)");
  }
  return s;
}

}  // namespace kmesh::node
