// The xfrm requests Kmesh's IPsec handler makes, over NETLINK_XFRM, with the messages vishvananda/netlink
// builds for them (pkg/controller/encryption/ipsec/ipsec_handler.go): XfrmStateAdd, XfrmPolicyAdd,
// XfrmPolicyUpdate, XfrmPolicyDel, XfrmStateDel, XfrmPolicyFlush, XfrmStateFlush(ESP). Keys go to the
// kernel only: no command line, no file, no log. Errors keep the kernel's errno, so the caller can treat
// EEXIST the way Kmesh does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netns/netlink.h"
#include "netns/netns.h"
#include "xfrm/xfrm.h"

namespace kmesh::lab {

// createPolicyRule's netlink.XfrmPolicy (ipsec_handler.go:293-337): selector src/dst CIDRs, one ESP tunnel
// template with reqid 1 (and an SPI for dir out), Kmesh's mark, priority 0, action allow.
struct KmeshXfrmPolicy {
  std::string src_cidr, dst_cidr;
  xfrm::Dir dir = xfrm::Dir::kOut;
  std::string tmpl_src, tmpl_dst;
  uint32_t tmpl_spi = 0;
  net::Mark mark;
};

class KmeshXfrm {
 public:
  // A NETLINK_XFRM socket in `ns` (the node's namespace).
  explicit KmeshXfrm(const netns::NetnsRef& ns);

  // XfrmStateAdd of createStateRule's state (ipsec_handler.go:264-291). Throws netns::NetlinkError
  // (err() == EEXIST when the SA exists).
  void AddState(const xfrm::EspTunnelState& s);
  // XfrmPolicyAdd / XfrmPolicyUpdate. Throw netns::NetlinkError.
  void AddPolicy(const KmeshXfrmPolicy& p);
  void UpdatePolicy(const KmeshXfrmPolicy& p);
  // XfrmPolicyDel / XfrmStateDel of an entry as XfrmPolicyList / XfrmStateList returned it (by index and
  // mark; by daddr, spi, proto, saddr and mark).
  void DeletePolicy(const xfrm::XfrmPolicy& p);
  void DeleteState(const xfrm::XfrmState& s);
  // XfrmPolicyFlush (every main policy) and XfrmStateFlush(XFRM_PROTO_ESP).
  void FlushPolicies();
  void FlushEspStates();

  std::vector<xfrm::XfrmState> ListStates() { return xfrm::DumpStates(ns_); }
  std::vector<xfrm::XfrmPolicy> ListPolicies() { return xfrm::DumpPolicies(ns_); }

 private:
  void Policy(uint16_t type, const KmeshXfrmPolicy& p, const std::string& verb);
  netns::NetnsRef ns_;
  netns::NetlinkSocket sock_;
};

}  // namespace kmesh::lab
