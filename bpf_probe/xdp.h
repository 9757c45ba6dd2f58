// XDP attachments inside a network namespace: which program (id, name, tag, its maps, run statistics)
// is attached to which interface, and in which mode. Kmesh attaches xdp_authz in the pod's namespace to
// the pod side of the veth with flags 0, which a veth serves in native (driver) mode (kmesh-facts.md
// §1.2). Queries run on a short-lived thread inside the namespace (netns::RunIn); the program itself is
// global and is read outside.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "bpf_probe/prog.h"
#include "netns/netns.h"

namespace kmesh::bpf_probe {

// kNone: nothing attached. kMulti: programs in more than one mode at once (see XdpAttachment::programs).
enum class XdpMode { kNone, kNative, kGeneric, kOffload, kMulti };

// "none", "native", "generic", "offload", "multi" (`ip link` prints xdp / xdpgeneric / xdpoffload).
const char* ToString(XdpMode mode);

struct XdpProgram {
  XdpMode mode = XdpMode::kNone;  // kNative, kGeneric or kOffload
  ProgramInfo prog;
};

struct XdpAttachment {
  std::string netns;   // the namespace's path
  std::string ifname;
  int ifindex = 0;
  XdpMode mode = XdpMode::kNone;
  std::vector<XdpProgram> programs;  // empty when nothing is attached; one per mode otherwise

  bool attached() const { return !programs.empty(); }
  // The program attached in `mode` (or, for kNone, in whichever mode), if any.
  const ProgramInfo* program(XdpMode mode = XdpMode::kNone) const;
};

// The XDP attachment of interface `ifname` in `ns`. Throws kmesh::Error when the interface does not exist
// there (listing the interfaces that do).
XdpAttachment QueryXdp(const netns::NetnsRef& ns, const std::string& ifname);
// Every interface of `ns`, attached or not, in ifindex order.
std::vector<XdpAttachment> QueryXdpAll(const netns::NetnsRef& ns);

// An XDP program attached by the harness; detached (only if it is still ours) when this object dies.
class XdpLink {
 public:
  // Attaches `prog_fd` (duplicated; the caller keeps theirs) to `ifname` in `ns`, in `mode` (kNative,
  // kGeneric or kOffload), or with kNone as Kmesh does (netlink.LinkSetXdpFd: no mode flag, the kernel
  // picks native when the driver has it, as a veth does; mode() then says what it picked). Fails rather
  // than replace a program already attached there.
  static XdpLink Attach(const netns::NetnsRef& ns, const std::string& ifname, int prog_fd, XdpMode mode);
  ~XdpLink();
  XdpLink(XdpLink&& other) noexcept;
  XdpLink& operator=(XdpLink&& other) noexcept;
  XdpLink(const XdpLink&) = delete;
  XdpLink& operator=(const XdpLink&) = delete;

  // Detaches now; throws on failure (the destructor swallows errors, e.g. when the namespace is gone).
  void Detach();
  // The mode the program is attached in (what the kernel picked, for Attach(..., kNone)).
  XdpMode mode() const { return mode_; }

 private:
  XdpLink() = default;
  std::optional<netns::NetnsRef> ns_;
  std::string ifname_;
  XdpMode mode_ = XdpMode::kNone;
  UniqueFd prog_fd_;
};

}  // namespace kmesh::bpf_probe
