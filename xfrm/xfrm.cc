#include "xfrm/xfrm.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/hex.h"
#include "net/ip.h"
#include "netns/netlink.h"

namespace kmesh::xfrm {
namespace {

using netns::ForEachAttr;
using netns::NetlinkMessage;
using netns::NetlinkSocket;

std::string Where(const netns::NetnsRef& ns) {
  return "network namespace " + (ns.name().empty() ? ns.path() : ns.name());
}

std::string Addr(int family, const xfrm_address_t& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, &a.a4, buf, sizeof buf);
  } else if (family == AF_INET6) {
    inet_ntop(AF_INET6, a.a6, buf, sizeof buf);
  }
  return buf;
}

bool IsZero(const xfrm_address_t& a) {
  static const xfrm_address_t zero{};
  return std::memcmp(&a, &zero, sizeof a) == 0;
}

Selector DecodeSelector(const xfrm_selector& s) {
  Selector out;
  out.family = s.family;
  // The kernel leaves the selector family 0 for a state whose selector is a wildcard.
  const int fam = s.family != 0 ? s.family : AF_INET;
  out.src = Addr(fam, s.saddr) + "/" + std::to_string(s.prefixlen_s);
  out.dst = Addr(fam, s.daddr) + "/" + std::to_string(s.prefixlen_d);
  out.proto = s.proto;
  out.sport = ntohs(s.sport);
  out.sport_mask = ntohs(s.sport_mask);
  out.dport = ntohs(s.dport);
  out.dport_mask = ntohs(s.dport_mask);
  out.ifindex = s.ifindex;
  return out;
}

std::string AlgName(const char* name) { return std::string(name, strnlen(name, sizeof(xfrm_algo::alg_name))); }

XfrmState DecodeState(const nlmsghdr* m) {
  const auto* info = reinterpret_cast<const xfrm_usersa_info*>(NLMSG_DATA(m));
  XfrmState s;
  s.family = info->family;
  s.src = Addr(info->family, info->saddr);
  s.dst = Addr(info->family, info->id.daddr);
  s.proto = info->id.proto;
  s.spi.value = ntohl(info->id.spi);
  s.reqid = info->reqid;
  s.mode = static_cast<Mode>(info->mode);
  s.replay_window = info->replay_window;
  s.flags = info->flags;
  s.selector = DecodeSelector(info->sel);
  s.cur_bytes = info->curlft.bytes;
  s.cur_packets = info->curlft.packets;
  s.add_time = info->curlft.add_time;
  s.use_time = info->curlft.use_time;
  s.stats_replay_window = info->stats.replay_window;
  s.stats_replay = info->stats.replay;
  s.stats_integrity_failed = info->stats.integrity_failed;
  std::optional<uint32_t> set_mark, set_mask;
  ForEachAttr(m, sizeof(xfrm_usersa_info), [&](uint16_t type, const uint8_t* d, size_t len) {
    switch (type) {
      case XFRMA_ALG_AEAD:
        if (len >= sizeof(xfrm_algo_aead)) {
          xfrm_algo_aead a;
          std::memcpy(&a, d, sizeof a);
          s.aead_name = AlgName(a.alg_name);
          s.icv_bits = a.alg_icv_len;
          const size_t key_bytes = std::min<size_t>((a.alg_key_len + 7) / 8, len - sizeof a);
          s.aead_key = ipsec::KeyMaterial(std::vector<uint8_t>(d + sizeof a, d + sizeof a + key_bytes));
        }
        break;
      case XFRMA_ALG_AUTH:
      case XFRMA_ALG_AUTH_TRUNC:
        if (len >= sizeof(xfrm_algo)) s.auth_name = AlgName(reinterpret_cast<const xfrm_algo*>(d)->alg_name);
        break;
      case XFRMA_ALG_CRYPT:
        if (len >= sizeof(xfrm_algo)) s.enc_name = AlgName(reinterpret_cast<const xfrm_algo*>(d)->alg_name);
        break;
      case XFRMA_MARK:
        if (len >= sizeof(xfrm_mark)) {
          xfrm_mark mk;
          std::memcpy(&mk, d, sizeof mk);
          s.mark = {mk.v, mk.m};
        }
        break;
      case XFRMA_SET_MARK:
        if (len >= 4) set_mark = *reinterpret_cast<const uint32_t*>(d);
        break;
      case XFRMA_SET_MARK_MASK:
        if (len >= 4) set_mask = *reinterpret_cast<const uint32_t*>(d);
        break;
      case XFRMA_IF_ID:
        if (len >= 4) s.if_id = *reinterpret_cast<const uint32_t*>(d);
        break;
      case XFRMA_REPLAY_VAL:
        if (len >= sizeof(xfrm_replay_state)) {
          xfrm_replay_state r;
          std::memcpy(&r, d, sizeof r);
          s.oseq = r.oseq;
          s.seq = r.seq;
          s.replay_bitmap = r.bitmap;
        }
        break;
      case XFRMA_REPLAY_ESN_VAL:
        if (len >= sizeof(xfrm_replay_state_esn)) {
          xfrm_replay_state_esn r;
          std::memcpy(&r, d, sizeof r);
          s.oseq = r.oseq;
          s.seq = r.seq;
        }
        break;
      default:
        break;
    }
  });
  // A missing mask means 0xffffffff, as on input (xfrm_smark_init).
  if (set_mark) s.output_mark = Mark{*set_mark, set_mask.value_or(0xffffffff)};
  return s;
}

XfrmPolicy DecodePolicy(const nlmsghdr* m) {
  const auto* info = reinterpret_cast<const xfrm_userpolicy_info*>(NLMSG_DATA(m));
  XfrmPolicy p;
  p.selector = DecodeSelector(info->sel);
  p.dir = static_cast<Dir>(info->dir);
  p.priority = info->priority;
  p.index = info->index;
  p.action = static_cast<Action>(info->action);
  p.cur_bytes = info->curlft.bytes;
  p.cur_packets = info->curlft.packets;
  ForEachAttr(m, sizeof(xfrm_userpolicy_info), [&](uint16_t type, const uint8_t* d, size_t len) {
    switch (type) {
      case XFRMA_TMPL:
        for (size_t off = 0; off + sizeof(xfrm_user_tmpl) <= len; off += sizeof(xfrm_user_tmpl)) {
          xfrm_user_tmpl t;
          std::memcpy(&t, d + off, sizeof t);
          XfrmTemplate x;
          x.family = t.family;
          x.src = IsZero(t.saddr) ? "" : Addr(t.family, t.saddr);
          x.dst = IsZero(t.id.daddr) ? "" : Addr(t.family, t.id.daddr);
          x.proto = t.id.proto;
          x.spi.value = ntohl(t.id.spi);
          x.reqid = t.reqid;
          x.mode = static_cast<Mode>(t.mode);
          x.optional = t.optional != 0;
          p.templates.push_back(x);
        }
        break;
      case XFRMA_MARK:
        if (len >= sizeof(xfrm_mark)) {
          xfrm_mark mk;
          std::memcpy(&mk, d, sizeof mk);
          p.mark = {mk.v, mk.m};
        }
        break;
      case XFRMA_POLICY_TYPE:
        if (len >= sizeof(xfrm_userpolicy_type)) {
          p.sub = reinterpret_cast<const xfrm_userpolicy_type*>(d)->type == XFRM_POLICY_TYPE_SUB;
        }
        break;
      case XFRMA_IF_ID:
        if (len >= 4) p.if_id = *reinterpret_cast<const uint32_t*>(d);
        break;
      default:
        break;
    }
  });
  return p;
}

template <typename T>
nlohmann::json Json(const std::vector<T>& items) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& i : items) a.push_back(i.ToJson());
  return a;
}

// A dump (`get` with an empty `Id`), every `answer` message whose payload holds an `Info` decoded.
template <typename Id, typename Info, typename T>
std::vector<T> Dump(const netns::NetnsRef& ns, uint16_t get, uint16_t answer, T (*decode)(const nlmsghdr*),
                    const std::string& what) {
  NetlinkSocket sock = NetlinkSocket::Open(ns, NETLINK_XFRM);
  NetlinkMessage msg(get, NLM_F_DUMP);
  msg.Put(Id{});
  std::vector<T> out;
  sock.Request(
      msg,
      [&](const nlmsghdr* m) {
        if (m->nlmsg_type == answer && m->nlmsg_len >= NLMSG_LENGTH(sizeof(Info))) out.push_back(decode(m));
      },
      what + " dump of " + Where(ns));
  return out;
}

}  // namespace


std::string ToString(Mode m) {
  switch (m) {
    case Mode::kTransport: return "transport";
    case Mode::kTunnel: return "tunnel";
    case Mode::kRouteOptimization: return "ro";
    case Mode::kInTrigger: return "in_trigger";
    case Mode::kBeet: return "beet";
  }
  return "mode " + std::to_string(static_cast<int>(m));
}

std::string ToString(Dir d) {
  switch (d) {
    case Dir::kIn: return "in";
    case Dir::kOut: return "out";
    case Dir::kFwd: return "fwd";
  }
  return "dir " + std::to_string(static_cast<int>(d));
}

std::string ToString(Action a) { return a == Action::kAllow ? "allow" : "block"; }

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_ESP: return "esp";
    case IPPROTO_AH: return "ah";
    case IPPROTO_COMP: return "comp";
    case IPPROTO_ROUTING: return "route2";
    case IPPROTO_DSTOPTS: return "hao";
    case 255: return "ipsec-any";  // IPSEC_PROTO_ANY
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "ipv6-icmp";
    default: return std::to_string(proto);
  }
}

bool Selector::operator==(const Selector& o) const {
  return src == o.src && dst == o.dst && proto == o.proto && sport == o.sport &&
         sport_mask == o.sport_mask && dport == o.dport && dport_mask == o.dport_mask &&
         ifindex == o.ifindex;
}

std::string Selector::ToString() const {
  std::string s = "src " + src + " dst " + dst;
  if (proto != 0) s += " proto " + ProtoName(proto);
  if (sport_mask != 0) s += " sport " + std::to_string(sport);
  if (dport_mask != 0) s += " dport " + std::to_string(dport);
  if (ifindex != 0) s += " ifindex " + std::to_string(ifindex);
  return s;
}

std::string XfrmState::Id() const {
  std::string s = ProtoName(proto) + " spi " + spi.ToString() + " src " + src + " dst " + dst;
  if (mark.mask != 0) s += " mark " + mark.ToString();
  return s;
}

nlohmann::json XfrmState::ToJson() const {
  nlohmann::json j = {
      {"id", Id()},
      {"src", src},
      {"dst", dst},
      {"proto", ProtoName(proto)},
      {"spi", spi.ToString()},
      {"reqid", reqid},
      {"mode", ToString(mode)},
      {"replay_window", replay_window},
      {"flags", flags},
      {"selector", selector.ToString()},
      {"mark", mark.ToString()},
      {"output_mark", output_mark ? nlohmann::json(output_mark->ToString()) : nlohmann::json(nullptr)},
      {"lifetime", {{"bytes", cur_bytes}, {"packets", cur_packets}, {"add_time", add_time}, {"use_time", use_time}}},
      {"replay", {{"oseq", oseq}, {"seq", seq}, {"bitmap", replay_bitmap}}},
      {"stats", {{"replay_window", stats_replay_window}, {"replay", stats_replay}, {"integrity_failed", stats_integrity_failed}}},
  };
  if (!aead_name.empty()) {
    j["aead"] = {{"name", aead_name},
                 {"icv_bits", icv_bits},
                 {"key_bits", aead_key.size() * 8},
                 {"key", aead_key.ForDisplay()},
                 {"key_fingerprint", aead_key.Fingerprint()}};
  }
  if (!auth_name.empty()) j["auth"] = auth_name;
  if (!enc_name.empty()) j["enc"] = enc_name;
  if (if_id != 0) j["if_id"] = if_id;
  return j;
}

bool XfrmTemplate::operator==(const XfrmTemplate& o) const {
  return src == o.src && dst == o.dst && proto == o.proto && spi == o.spi && reqid == o.reqid &&
         mode == o.mode && optional == o.optional;
}

std::string XfrmTemplate::ToString() const {
  std::string s = "tmpl src " + (src.empty() ? "any" : src) + " dst " + (dst.empty() ? "any" : dst) +
                  " proto " + ProtoName(proto);
  if (spi.value != 0) s += " spi " + spi.ToString();
  s += " reqid " + std::to_string(reqid) + " mode " + xfrm::ToString(mode);
  if (optional) s += " level use";
  return s;
}

nlohmann::json XfrmTemplate::ToJson() const {
  return {{"src", src},   {"dst", dst},      {"proto", ProtoName(proto)},  {"spi", spi.ToString()},
          {"reqid", reqid}, {"mode", xfrm::ToString(mode)}, {"optional", optional}};
}

std::string XfrmPolicy::Id() const {
  std::string s = "dir " + ToString(dir) + " " + selector.ToString();
  if (mark.mask != 0) s += " mark " + mark.ToString();
  if (sub) s += " ptype sub";
  if (if_id != 0) s += " if_id " + std::to_string(if_id);
  return s;
}

nlohmann::json XfrmPolicy::ToJson() const {
  return {{"id", Id()},
          {"dir", ToString(dir)},
          {"selector", selector.ToString()},
          {"priority", priority},
          {"index", index},
          {"action", ToString(action)},
          {"ptype", sub ? "sub" : "main"},
          {"mark", mark.ToString()},
          {"templates", Json(templates)},
          {"lifetime", {{"bytes", cur_bytes}, {"packets", cur_packets}}}};
}

uint64_t XfrmStats::Get(const std::string& name) const {
  for (const auto& [k, v] : counters) {
    if (k == name) return v;
  }
  throw Error("xfrm_stat has no counter " + name + " (" + std::to_string(counters.size()) + " counters read)");
}

bool XfrmStats::Has(const std::string& name) const {
  return std::any_of(counters.begin(), counters.end(), [&](const auto& kv) { return kv.first == name; });
}

nlohmann::json XfrmStats::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : counters) j[k] = v;
  return j;
}

const XfrmState* XfrmSnapshot::FindState(uint8_t proto, Spi spi, const std::string& dst) const {
  for (const auto& s : states) {
    if (s.proto == proto && s.spi == spi && s.dst == dst) return &s;
  }
  return nullptr;
}

nlohmann::json XfrmSnapshot::ToJson() const {
  return {{"netns", netns},
          {"taken_at_unix_ms", std::chrono::duration_cast<std::chrono::milliseconds>(taken_at.time_since_epoch()).count()},
          {"states", Json(states)},
          {"policies", Json(policies)},
          {"xfrm_stat", stats.ToJson()}};
}

std::vector<XfrmState> DumpStates(const netns::NetnsRef& ns) {
  return Dump<xfrm_usersa_id, xfrm_usersa_info>(ns, XFRM_MSG_GETSA, XFRM_MSG_NEWSA, DecodeState,
                                                "xfrm state");
}

std::vector<XfrmPolicy> DumpPolicies(const netns::NetnsRef& ns) {
  return Dump<xfrm_userpolicy_id, xfrm_userpolicy_info>(ns, XFRM_MSG_GETPOLICY, XFRM_MSG_NEWPOLICY,
                                                        DecodePolicy, "xfrm policy");
}

XfrmStats ReadXfrmStat(const netns::NetnsRef& ns) {
  // /proc/thread-self/net follows the calling thread's namespace; /proc/self/net would follow the
  // main thread's, i.e. the machine's.
  std::string text = netns::RunIn(ns, [&] {
    std::ifstream in("/proc/thread-self/net/xfrm_stat");
    if (!in) {
      throw Error("cannot read /proc/net/xfrm_stat in " + Where(ns) +
                  " (kernel built without CONFIG_XFRM_STATISTICS?)");
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  });
  XfrmStats stats;
  std::istringstream lines(text);
  std::string name;
  uint64_t value = 0;
  while (lines >> name >> value) stats.counters.emplace_back(name, value);
  if (stats.counters.empty()) throw Error("/proc/net/xfrm_stat in " + Where(ns) + " is empty or unreadable");
  return stats;
}

XfrmSnapshot Snapshot(const netns::NetnsRef& ns) {
  XfrmSnapshot s;
  s.netns = ns.path();
  s.taken_at = std::chrono::system_clock::now();
  s.states = DumpStates(ns);
  s.policies = DumpPolicies(ns);
  s.stats = ReadXfrmStat(ns);
  return s;
}

netns::NetlinkMessage NewStateMessage(const EspTunnelState& s) {
  const auto address = [](const std::string& text, const char* what) {
    const auto ip = net::IpAddr::Parse(text);
    if (!ip) throw Error(std::string("xfrm state ") + what + ": " + ip.error());
    return *ip;
  };
  const net::IpAddr src = address(s.src, "src"), dst = address(s.dst, "dst");
  NetlinkMessage msg(XFRM_MSG_NEWSA, NLM_F_CREATE | NLM_F_EXCL);
  xfrm_usersa_info info{};
  info.family = dst.is_v4() ? AF_INET : AF_INET6;
  std::memcpy(&info.saddr, src.data(), src.size());
  std::memcpy(&info.id.daddr, dst.data(), dst.size());
  info.id.spi = htonl(s.spi.value);
  info.id.proto = IPPROTO_ESP;
  info.mode = XFRM_MODE_TUNNEL;
  info.reqid = 1;
  info.lft.soft_byte_limit = info.lft.hard_byte_limit = XFRM_INF;
  info.lft.soft_packet_limit = info.lft.hard_packet_limit = XFRM_INF;
  msg.Put(info);
  if (!s.aead_name.empty()) {
    // writeStateAlgoAead: name, key length in bits, ICV length in bits, key bytes.
    std::vector<uint8_t> aead(sizeof(xfrm_algo_aead) + s.key.size(), 0);
    auto* a = reinterpret_cast<xfrm_algo_aead*>(aead.data());
    std::strncpy(a->alg_name, s.aead_name.c_str(), sizeof a->alg_name - 1);
    a->alg_key_len = static_cast<unsigned int>(s.key.size() * 8);
    a->alg_icv_len = s.icv_bits;
    std::memcpy(a->alg_key, s.key.bytes().data(), s.key.size());
    msg.AddAttr(XFRMA_ALG_AEAD, aead.data(), aead.size());
    std::fill(aead.begin(), aead.end(), 0);
  }
  if (s.output_mark) {
    msg.AddAttr(XFRMA_SET_MARK, &s.output_mark->value, sizeof s.output_mark->value);
    msg.AddAttr(XFRMA_SET_MARK_MASK, &s.output_mark->mask, sizeof s.output_mark->mask);
  }
  return msg;
}

std::string EspUnsupportedReason() {
  static std::once_flag once;
  static std::string reason;
  std::call_once(once, [] {
    netns::Netns scratch = netns::Netns::Create("espcheck");
    NetlinkSocket sock = NetlinkSocket::Open(scratch.ref(), NETLINK_XFRM);
    EspTunnelState probe;
    probe.src = "10.255.0.1";
    probe.dst = "10.255.0.2";
    probe.spi = Spi{0x100};
    probe.key = ipsec::KeyMaterial(std::vector<uint8_t>(ipsec::IpsecSecret::kKeyBytes, 0x11));
    NetlinkMessage msg = NewStateMessage(probe);
    try {
      sock.Request(msg, "xfrm state add (ESP, rfc4106(gcm(aes))) in a scratch namespace");
    } catch (const netns::NetlinkError& e) {
      reason = "kernel lacks ESP with rfc4106(gcm(aes)): xfrm state add returned " + netns::ErrnoName(e.err()) +
               " (" + (e.extack().empty() ? std::strerror(e.err()) : e.extack()) +
               "); run these tests under tools/vm, whose kernel has esp4 and gcm";
    }
  });
  return reason;
}

// ---- Diff ----

namespace {

std::string StateChanges(const XfrmState& a, const XfrmState& b) {
  std::vector<std::string> parts;
  if (a.aead_key != b.aead_key) parts.push_back("key " + a.aead_key.ForDisplay() + " -> " + b.aead_key.ForDisplay());
  if (a.aead_name != b.aead_name) parts.push_back("aead " + a.aead_name + " -> " + b.aead_name);
  if (a.icv_bits != b.icv_bits) parts.push_back("icv " + std::to_string(a.icv_bits) + " -> " + std::to_string(b.icv_bits));
  if (a.reqid != b.reqid) parts.push_back("reqid " + std::to_string(a.reqid) + " -> " + std::to_string(b.reqid));
  if (a.mode != b.mode) parts.push_back("mode " + ToString(a.mode) + " -> " + ToString(b.mode));
  const auto om = [](const std::optional<Mark>& m) { return m ? m->ToString() : std::string("none"); };
  if (a.output_mark != b.output_mark) parts.push_back("output-mark " + om(a.output_mark) + " -> " + om(b.output_mark));
  if (a.cur_packets != b.cur_packets || a.cur_bytes != b.cur_bytes) {
    parts.push_back("lifetime " + std::to_string(a.cur_packets) + " -> " + std::to_string(b.cur_packets) +
                    " packets, " + std::to_string(a.cur_bytes) + " -> " + std::to_string(b.cur_bytes) + " bytes");
  }
  if (a.oseq != b.oseq) parts.push_back("oseq " + std::to_string(a.oseq) + " -> " + std::to_string(b.oseq));
  if (a.stats_replay != b.stats_replay || a.stats_integrity_failed != b.stats_integrity_failed ||
      a.stats_replay_window != b.stats_replay_window) {
    parts.push_back("errors replay " + std::to_string(a.stats_replay) + " -> " + std::to_string(b.stats_replay) +
                    ", integrity " + std::to_string(a.stats_integrity_failed) + " -> " +
                    std::to_string(b.stats_integrity_failed) + ", window " +
                    std::to_string(a.stats_replay_window) + " -> " + std::to_string(b.stats_replay_window));
  }
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "; ") + p;
  return s;
}

std::string PolicyChanges(const XfrmPolicy& a, const XfrmPolicy& b) {
  std::vector<std::string> parts;
  if (a.priority != b.priority) parts.push_back("priority " + std::to_string(a.priority) + " -> " + std::to_string(b.priority));
  if (a.action != b.action) parts.push_back("action " + ToString(a.action) + " -> " + ToString(b.action));
  if (a.templates.size() != b.templates.size()) {
    parts.push_back("templates " + std::to_string(a.templates.size()) + " -> " + std::to_string(b.templates.size()));
  } else {
    for (size_t i = 0; i < a.templates.size(); ++i) {
      const auto& x = a.templates[i];
      const auto& y = b.templates[i];
      if (x.spi != y.spi) parts.push_back("tmpl spi " + x.spi.ToString() + " -> " + y.spi.ToString());
      if (!(x == y) && x.spi == y.spi) parts.push_back(x.ToString() + " -> " + y.ToString());
    }
  }
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "; ") + p;
  return s;
}

// SA "slot": the same tunnel and reqid; a new SPI there reads as a rotation, not as noise.
std::string Slot(const XfrmState& s) {
  return ProtoName(s.proto) + " src " + s.src + " dst " + s.dst + " reqid " + std::to_string(s.reqid);
}

}  // namespace

bool SnapshotDiff::empty() const {
  return appeared_states.empty() && disappeared_states.empty() && appeared_policies.empty() &&
         disappeared_policies.empty() && changed_states.empty() && changed_policies.empty() && counters.empty();
}

std::vector<CounterChange> SnapshotDiff::ErrorsRaised() const {
  std::vector<CounterChange> out;
  for (const auto& c : counters) {
    if (c.after > c.before) out.push_back(c);
  }
  return out;
}

nlohmann::json SnapshotDiff::ToJson() const {
  auto changes = [](const std::vector<Change>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : v) a.push_back({{"id", c.id}, {"what", c.what}});
    return a;
  };
  nlohmann::json counters_json = nlohmann::json::array();
  for (const auto& c : counters) counters_json.push_back({{"name", c.name}, {"before", c.before}, {"after", c.after}});
  return {{"appeared_states", appeared_states},       {"disappeared_states", disappeared_states},
          {"changed_states", changes(changed_states)}, {"appeared_policies", appeared_policies},
          {"disappeared_policies", disappeared_policies}, {"changed_policies", changes(changed_policies)},
          {"xfrm_stat", counters_json}};
}

std::string SnapshotDiff::Describe() const {
  if (empty()) return "no xfrm change";
  std::string s;
  auto line = [&](const std::string& l) { s += (s.empty() ? "" : "\n") + l; };
  for (const auto& x : appeared_states) line("state appeared: " + x);
  for (const auto& x : disappeared_states) line("state disappeared: " + x);
  for (const auto& c : changed_states) line("state changed: " + c.id + ": " + c.what);
  for (const auto& x : appeared_policies) line("policy appeared: " + x);
  for (const auto& x : disappeared_policies) line("policy disappeared: " + x);
  for (const auto& c : changed_policies) line("policy changed: " + c.id + ": " + c.what);
  for (const auto& c : counters) {
    line("xfrm_stat " + c.name + ": " + std::to_string(c.before) + " -> " + std::to_string(c.after));
  }
  return s;
}

SnapshotDiff Diff(const XfrmSnapshot& before, const XfrmSnapshot& after) {
  SnapshotDiff d;
  std::map<std::string, const XfrmState*> sb, sa;
  for (const auto& s : before.states) sb[s.Id()] = &s;
  for (const auto& s : after.states) sa[s.Id()] = &s;
  std::vector<const XfrmState*> gone, fresh;
  for (const auto& [id, s] : sb) {
    auto it = sa.find(id);
    if (it == sa.end()) {
      gone.push_back(s);
    } else if (std::string what = StateChanges(*s, *it->second); !what.empty()) {
      d.changed_states.push_back({id, what});
    }
  }
  for (const auto& [id, s] : sa) {
    if (!sb.count(id)) fresh.push_back(s);
  }
  // One state left a slot and one arrived in it: an SPI change.
  std::map<std::string, int> gone_per_slot, fresh_per_slot;
  for (auto* s : gone) gone_per_slot[Slot(*s)]++;
  for (auto* s : fresh) fresh_per_slot[Slot(*s)]++;
  std::set<std::string> paired;
  for (auto* g : gone) {
    const std::string slot = Slot(*g);
    if (gone_per_slot[slot] != 1 || fresh_per_slot[slot] != 1) continue;
    for (auto* f : fresh) {
      if (Slot(*f) != slot) continue;
      std::string what = "spi " + g->spi.ToString() + " -> " + f->spi.ToString();
      if (g->aead_key != f->aead_key) what += "; key " + g->aead_key.ForDisplay() + " -> " + f->aead_key.ForDisplay();
      d.changed_states.push_back({slot, what});
      paired.insert(slot);
    }
  }
  for (auto* g : gone) {
    if (!paired.count(Slot(*g))) d.disappeared_states.push_back(g->Id());
  }
  for (auto* f : fresh) {
    if (!paired.count(Slot(*f))) d.appeared_states.push_back(f->Id());
  }

  std::map<std::string, const XfrmPolicy*> pb, pa;
  for (const auto& p : before.policies) pb[p.Id()] = &p;
  for (const auto& p : after.policies) pa[p.Id()] = &p;
  for (const auto& [id, p] : pb) {
    auto it = pa.find(id);
    if (it == pa.end()) {
      d.disappeared_policies.push_back(id);
    } else if (std::string what = PolicyChanges(*p, *it->second); !what.empty()) {
      d.changed_policies.push_back({id, what});
    }
  }
  for (const auto& [id, p] : pa) {
    if (!pb.count(id)) d.appeared_policies.push_back(id);
  }

  std::map<std::string, uint64_t> cb;
  for (const auto& [k, v] : before.stats.counters) cb[k] = v;
  for (const auto& [k, v] : after.stats.counters) {
    auto it = cb.find(k);
    const uint64_t was = it == cb.end() ? 0 : it->second;
    if (was != v) d.counters.push_back({k, was, v});
  }
  return d;
}

}  // namespace kmesh::xfrm
