#include "bpf_probe/tc.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "netns/netlink.h"
#include "netns/route.h"

namespace kmesh::bpf_probe {
namespace {

// vishvananda/netlink's constants as Kmesh uses them (pkg/utils/tc.go:39-52, 72-85).
constexpr uint32_t kClsactHandle = 0xffff0000;  // MakeHandle(0xffff, 0)
constexpr uint16_t kKmeshPriority = 1;
constexpr uint32_t kKmeshHandle = 1;

uint32_t ParentOf(TcHook hook) {
  return TC_H_MAKE(TC_H_CLSACT, hook == TcHook::kIngress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
}

// tcm_info of a filter: priority in the upper half, protocol (network order) in the lower.
uint32_t FilterInfo(uint16_t priority, uint16_t protocol_host) {
  return TC_H_MAKE(static_cast<uint32_t>(priority) << 16, htons(protocol_host));
}

// The tcmsg of Kmesh's filter (ingress, priority 1, handle 1, protocol all) on interface `ifindex`.
tcmsg KmeshFilter(int ifindex) {
  tcmsg t{};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = ifindex;
  t.tcm_handle = kKmeshHandle;
  t.tcm_parent = ParentOf(TcHook::kIngress);
  t.tcm_info = FilterInfo(kKmeshPriority, ETH_P_ALL);
  return t;
}

std::string Where(const netns::NetnsRef& ns, const std::string& ifname) {
  return ifname + " in " + (ns.name().empty() ? ns.path() : ns.name());
}

std::string ProtocolName(uint16_t p) {
  if (p == ETH_P_ALL) return "all";
  if (p == ETH_P_IP) return "ip";
  if (p == ETH_P_IPV6) return "ipv6";
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04x", p);
  return buf;
}

}  // namespace

const char* ToString(TcHook hook) { return hook == TcHook::kIngress ? "ingress" : "egress"; }

std::string TcFilter::ToString() const {
  char handle_text[16];
  std::snprintf(handle_text, sizeof handle_text, "0x%x", handle);
  std::string s = "pref " + std::to_string(priority) + " handle " + handle_text + " protocol " +
                  ProtocolName(protocol) + (name.empty() ? "" : " " + name) +
                  (direct_action ? " direct-action" : "") + " id " + std::to_string(prog.id);
  if (!prog.name.empty()) s += " name " + prog.name;
  if (!prog.tag.empty()) s += " tag " + prog.tag;
  return s;
}

std::vector<TcFilter> QueryTcFilters(const netns::NetnsRef& ns, const std::string& ifname, TcHook hook) {
  const netns::Interface iface = netns::FindInterface(ns, ifname);
  netns::NetlinkSocket sock = netns::NetlinkSocket::Open(ns, NETLINK_ROUTE);
  netns::NetlinkMessage msg(RTM_GETTFILTER, NLM_F_DUMP);
  tcmsg t{};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = iface.index;
  t.tcm_parent = ParentOf(hook);
  msg.Put(t);
  std::vector<TcFilter> out;
  const std::string what = "tc filter dump of " + std::string(ToString(hook)) + " on " + Where(ns, ifname);
  try {
    sock.Request(
        msg,
        [&](const nlmsghdr* h) {
          if (h->nlmsg_type != RTM_NEWTFILTER) return;
          const auto* tm = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
          TcFilter f;
          f.ifname = ifname;
          f.ifindex = tm->tcm_ifindex;
          f.hook = hook;
          f.priority = TC_H_MAJ(tm->tcm_info) >> 16;
          f.protocol = ntohs(static_cast<uint16_t>(TC_H_MIN(tm->tcm_info)));
          f.handle = tm->tcm_handle;
          std::string kind;
          uint32_t prog_id = 0;
          netns::ForEachAttr(h, sizeof(tcmsg), [&](uint16_t type, const uint8_t* data, size_t len) {
            if (type == TCA_KIND) kind = netns::AttrString(data, len);
            if (type != TCA_OPTIONS) return;
            netns::ForEachNested(data, len, [&](uint16_t t2, const uint8_t* d2, size_t l2) {
              if (t2 == TCA_BPF_ID && l2 >= 4) std::memcpy(&prog_id, d2, 4);
              if (t2 == TCA_BPF_NAME) f.name = netns::AttrString(d2, l2);
              if (t2 == TCA_BPF_FLAGS && l2 >= 4) {
                uint32_t flags = 0;
                std::memcpy(&flags, d2, 4);
                f.direct_action = (flags & TCA_BPF_FLAG_ACT_DIRECT) != 0;
              }
            });
          });
          // The dump also lists each priority's classifier itself (handle 0, no program): skip it.
          if (kind != "bpf" || prog_id == 0) return;
          f.prog.id = prog_id;
          out.push_back(std::move(f));
        },
        what);
  } catch (const netns::NetlinkError& e) {
    // No clsact qdisc: nothing is attached (the kernel answers EINVAL for a missing parent).
    if (e.err() == EINVAL || e.err() == ENOENT) return {};
    throw;
  }
  for (auto& f : out) {
    try {
      f.prog = ReadProgramById(f.prog.id);
    } catch (const std::exception&) {
      // Detached between the dump and now: keep the id the kernel reported.
    }
  }
  return out;
}

std::optional<TcFilter> KmeshTcFilter(const netns::NetnsRef& ns, const std::string& ifname) {
  for (auto& f : QueryTcFilters(ns, ifname, TcHook::kIngress)) {
    if (f.priority == kKmeshPriority && f.handle == kKmeshHandle) return f;
  }
  return std::nullopt;
}

void KmeshTcAttach(const netns::NetnsRef& ns, const std::string& ifname, int prog_fd) {
  const netns::Interface iface = netns::FindInterface(ns, ifname);
  netns::NetlinkSocket sock = netns::NetlinkSocket::Open(ns, NETLINK_ROUTE);
  // replaceQdisc (tc.go:72-85): QdiscReplace = RTM_NEWQDISC with NLM_F_CREATE|NLM_F_REPLACE.
  {
    netns::NetlinkMessage msg(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
    tcmsg t{};
    t.tcm_family = AF_UNSPEC;
    t.tcm_ifindex = iface.index;
    t.tcm_handle = kClsactHandle;
    t.tcm_parent = TC_H_CLSACT;
    msg.Put(t);
    msg.AddAttr(TCA_KIND, "clsact", sizeof "clsact");
    sock.Request(msg, "replace the clsact qdisc of " + Where(ns, ifname));
  }
  // FilterReplace (tc.go:39-57): RTM_NEWTFILTER with NLM_F_CREATE (no NLM_F_EXCL), so an existing filter
  // at the same priority and handle is replaced.
  netns::NetlinkMessage msg(RTM_NEWTFILTER, NLM_F_CREATE);
  msg.Put(KmeshFilter(iface.index));
  msg.AddAttr(TCA_KIND, "bpf", sizeof "bpf");
  const std::string name = "tc_ingress-" + ifname;
  const uint32_t fd = static_cast<uint32_t>(prog_fd);
  const uint32_t flags = TCA_BPF_FLAG_ACT_DIRECT;
  std::vector<uint8_t> options;
  netns::AppendAttr(options, TCA_BPF_FD, &fd, sizeof fd);
  netns::AppendAttr(options, TCA_BPF_NAME, name.c_str(), name.size() + 1);
  netns::AppendAttr(options, TCA_BPF_FLAGS, &flags, sizeof flags);
  msg.AddAttr(TCA_OPTIONS, options.data(), options.size());
  sock.Request(msg, "attach a bpf filter (" + name + ") to ingress of " + Where(ns, ifname));
}

void KmeshTcDetach(const netns::NetnsRef& ns, const std::string& ifname) {
  const netns::Interface iface = netns::FindInterface(ns, ifname);
  netns::NetlinkSocket sock = netns::NetlinkSocket::Open(ns, NETLINK_ROUTE);
  // FilterDel: the same tcmsg, no attributes.
  netns::NetlinkMessage msg(RTM_DELTFILTER, 0);
  msg.Put(KmeshFilter(iface.index));
  sock.Request(msg, "delete the bpf filter (pref 1 handle 1) on ingress of " + Where(ns, ifname));
}

}  // namespace kmesh::bpf_probe
