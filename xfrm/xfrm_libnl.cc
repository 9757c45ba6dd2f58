#include "xfrm/xfrm_libnl.h"

#include <arpa/inet.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/xfrm/selector.h>
#include <netlink/xfrm/sp.h>
#include <netlink/xfrm/template.h>

#include "base/error.h"

namespace kmesh::xfrm {
namespace {

std::string AddrText(struct nl_addr* a) {
  if (a == nullptr || nl_addr_get_len(a) == 0) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(nl_addr_get_family(a), nl_addr_get_binary_addr(a), buf, sizeof buf);
  return buf;
}

bool IsZeroAddr(struct nl_addr* a) {
  if (a == nullptr) return true;
  const auto* b = static_cast<const uint8_t*>(nl_addr_get_binary_addr(a));
  for (unsigned i = 0; i < nl_addr_get_len(a); ++i)
    if (b[i] != 0) return false;
  return true;
}

}  // namespace

std::vector<XfrmPolicy> DumpPoliciesWithLibnl(const netns::NetnsRef& ns) {
  const std::string where = "libnl-xfrm policy dump of " + ns.path();
  struct nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) throw Error(where + ": nl_socket_alloc failed");
  int err = netns::RunIn(ns, [&] { return nl_connect(sock, NETLINK_XFRM); });
  if (err < 0) {
    nl_socket_free(sock);
    throw Error(where + ": nl_connect: " + nl_geterror(err));
  }
  struct nl_cache* cache = nullptr;
  err = xfrmnl_sp_alloc_cache(sock, &cache);
  if (err < 0) {
    nl_socket_free(sock);
    throw Error(where + ": " + nl_geterror(err));
  }
  std::vector<XfrmPolicy> out;
  for (struct nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) {
    auto* sp = reinterpret_cast<struct xfrmnl_sp*>(o);
    XfrmPolicy p;
    struct xfrmnl_sel* sel = xfrmnl_sp_get_sel(sp);
    p.selector.family = xfrmnl_sel_get_family(sel);
    p.selector.src = AddrText(xfrmnl_sel_get_saddr(sel)) + "/" + std::to_string(xfrmnl_sel_get_prefixlen_s(sel));
    p.selector.dst = AddrText(xfrmnl_sel_get_daddr(sel)) + "/" + std::to_string(xfrmnl_sel_get_prefixlen_d(sel));
    p.selector.proto = static_cast<uint8_t>(xfrmnl_sel_get_proto(sel));
    p.selector.sport = static_cast<uint16_t>(xfrmnl_sel_get_sport(sel));
    p.selector.sport_mask = static_cast<uint16_t>(xfrmnl_sel_get_sportmask(sel));
    p.selector.dport = static_cast<uint16_t>(xfrmnl_sel_get_dport(sel));
    p.selector.dport_mask = static_cast<uint16_t>(xfrmnl_sel_get_dportmask(sel));
    p.selector.ifindex = xfrmnl_sel_get_ifindex(sel);
    p.dir = static_cast<Dir>(xfrmnl_sp_get_dir(sp));
    p.priority = static_cast<uint32_t>(xfrmnl_sp_get_priority(sp));
    p.index = static_cast<uint32_t>(xfrmnl_sp_get_index(sp));
    p.action = static_cast<Action>(xfrmnl_sp_get_action(sp));
    // libnl 3.7's getter takes the mask first (sp.c: get_mark(sp, *mark_mask, *mark_value)).
    unsigned int mv = 0, mm = 0;
    if (xfrmnl_sp_get_mark(sp, &mm, &mv) == 0) p.mark = {mv, mm};
    for (int i = 0; i < xfrmnl_sp_get_nusertemplates(sp); ++i) {
      struct xfrmnl_user_tmpl* t = xfrmnl_sp_usertemplate_n(sp, i);
      XfrmTemplate x;
      x.family = xfrmnl_user_tmpl_get_family(t);
      x.src = IsZeroAddr(xfrmnl_user_tmpl_get_saddr(t)) ? "" : AddrText(xfrmnl_user_tmpl_get_saddr(t));
      x.dst = IsZeroAddr(xfrmnl_user_tmpl_get_daddr(t)) ? "" : AddrText(xfrmnl_user_tmpl_get_daddr(t));
      x.proto = static_cast<uint8_t>(xfrmnl_user_tmpl_get_proto(t));
      x.spi.value = static_cast<uint32_t>(xfrmnl_user_tmpl_get_spi(t));  // libnl converts to host order
      x.reqid = static_cast<uint32_t>(xfrmnl_user_tmpl_get_reqid(t));
      x.mode = static_cast<Mode>(xfrmnl_user_tmpl_get_mode(t));
      x.optional = xfrmnl_user_tmpl_get_optional(t) != 0;
      p.templates.push_back(x);
    }
    out.push_back(p);
  }
  nl_cache_free(cache);
  nl_socket_free(sock);
  return out;
}

}  // namespace kmesh::xfrm
