#include "e2e/lab/kmesh_xfrm.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include "base/error.h"
#include "node/node_local.h"

namespace kmesh::lab {
namespace {

std::string Where(const netns::NetnsRef& ns) { return ns.name().empty() ? ns.path() : ns.name(); }

// The family of a text address, as nl.GetIPFamily decides it.
int FamilyOf(const std::string& ip) { return ip.find(':') == std::string::npos ? AF_INET : AF_INET6; }

xfrm_address_t Address(const std::string& ip, const std::string& what) {
  xfrm_address_t a{};
  const int family = FamilyOf(ip);
  if (inet_pton(family, ip.c_str(),
                family == AF_INET ? static_cast<void*>(&a.a4) : static_cast<void*>(a.a6)) != 1) {
    throw Error(what + ": '" + ip + "' is not an IP address");
  }
  return a;
}

// selFromPolicy: addresses and prefix lengths of the two CIDRs, family from the destination.
xfrm_selector Selector(const std::string& src_cidr, const std::string& dst_cidr) {
  auto split = [](const std::string& cidr, uint8_t& prefix) {
    const auto slash = cidr.find('/');
    if (slash == std::string::npos) throw Error("xfrm selector: '" + cidr + "' is not a CIDR");
    prefix = static_cast<uint8_t>(std::stoi(cidr.substr(slash + 1)));
    return cidr.substr(0, slash);
  };
  xfrm_selector s{};
  const std::string src = split(src_cidr, s.prefixlen_s);
  const std::string dst = split(dst_cidr, s.prefixlen_d);
  s.family = static_cast<uint16_t>(FamilyOf(dst));
  s.saddr = Address(src, "xfrm selector src");
  s.daddr = Address(dst, "xfrm selector dst");
  return s;
}

void AddMark(netns::NetlinkMessage& msg, const xfrm::Mark& m) {
  xfrm_mark mark{m.value, m.mask};
  msg.AddAttr(XFRMA_MARK, &mark, sizeof mark);
}

}  // namespace

KmeshXfrm::KmeshXfrm(const netns::NetnsRef& ns)
    : ns_(ns), sock_(netns::NetlinkSocket::Open(ns, NETLINK_XFRM)) {}

void KmeshXfrm::AddState(const xfrm::EspTunnelState& s) {
  netns::NetlinkMessage msg = xfrm::NewStateMessage(s);
  sock_.Request(msg, "xfrm state add src " + s.src + " dst " + s.dst + " spi " + s.spi.ToString() + " in " +
                         Where(ns_));
}

void KmeshXfrm::Policy(uint16_t type, const KmeshXfrmPolicy& p, const std::string& verb) {
  netns::NetlinkMessage msg(
      type, type == XFRM_MSG_NEWPOLICY ? NLM_F_CREATE | NLM_F_EXCL : NLM_F_CREATE | NLM_F_REPLACE);
  xfrm_userpolicy_info info{};
  info.sel = Selector(p.src_cidr, p.dst_cidr);
  info.lft.soft_byte_limit = info.lft.hard_byte_limit = XFRM_INF;  // limitsToLft with no limits
  info.lft.soft_packet_limit = info.lft.hard_packet_limit = XFRM_INF;
  info.priority = 0;
  info.dir = static_cast<uint8_t>(p.dir);
  info.action = XFRM_POLICY_ALLOW;
  msg.Put(info);
  xfrm_user_tmpl t{};
  t.id.daddr = Address(p.tmpl_dst, "xfrm template dst");
  t.id.spi = htonl(p.tmpl_spi);
  t.id.proto = IPPROTO_ESP;
  t.family = static_cast<uint16_t>(FamilyOf(p.tmpl_dst));
  t.saddr = Address(p.tmpl_src, "xfrm template src");
  t.reqid = 1;
  t.mode = XFRM_MODE_TUNNEL;
  t.aalgos = t.ealgos = t.calgos = ~0u;
  msg.AddAttr(XFRMA_TMPL, &t, sizeof t);
  AddMark(msg, p.mark);
  sock_.Request(msg, "xfrm policy " + verb + " src " + p.src_cidr + " dst " + p.dst_cidr + " dir " +
                         xfrm::ToString(p.dir) + " in " + Where(ns_));
}

void KmeshXfrm::AddPolicy(const KmeshXfrmPolicy& p) { Policy(XFRM_MSG_NEWPOLICY, p, "add"); }
void KmeshXfrm::UpdatePolicy(const KmeshXfrmPolicy& p) { Policy(XFRM_MSG_UPDPOLICY, p, "update"); }

void KmeshXfrm::DeletePolicy(const xfrm::XfrmPolicy& p) {
  netns::NetlinkMessage msg(XFRM_MSG_DELPOLICY, 0);
  xfrm_userpolicy_id id{};
  id.sel = Selector(p.selector.src, p.selector.dst);
  id.index = p.index;
  id.dir = static_cast<uint8_t>(p.dir);
  msg.Put(id);
  if (p.mark.value != 0 || p.mark.mask != 0) AddMark(msg, p.mark);
  sock_.Request(msg, "xfrm policy delete " + p.Id() + " in " + Where(ns_));
}

void KmeshXfrm::DeleteState(const xfrm::XfrmState& s) { node::DeleteXfrmState(ns_, s); }

void KmeshXfrm::FlushPolicies() {
  netns::NetlinkMessage msg(XFRM_MSG_FLUSHPOLICY, 0);
  sock_.Request(msg, "xfrm policy flush in " + Where(ns_));
}

void KmeshXfrm::FlushEspStates() {
  netns::NetlinkMessage msg(XFRM_MSG_FLUSHSA, 0);
  xfrm_usersa_flush f{};
  f.proto = IPPROTO_ESP;
  msg.Put(f);
  sock_.Request(msg, "xfrm state flush proto esp in " + Where(ns_));
}

}  // namespace kmesh::lab
