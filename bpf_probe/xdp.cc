#include "bpf_probe/xdp.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::bpf_probe {
namespace {

// What the kernel reports for one interface, read inside the namespace.
struct RawXdp {
  std::string ifname;
  int ifindex = 0;
  uint8_t attach_mode = XDP_ATTACHED_NONE;
  uint32_t drv = 0, skb = 0, hw = 0;
};

RawXdp QueryRaw(int ifindex, const std::string& ifname) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  int rc = bpf_xdp_query(ifindex, 0, &q);
  if (rc != 0) ThrowBpf("query XDP of interface " + ifname, -rc, BpfNeeds::kNetAdmin);
  RawXdp r;
  r.ifname = ifname;
  r.ifindex = ifindex;
  r.attach_mode = q.attach_mode;
  r.drv = q.drv_prog_id;
  r.skb = q.skb_prog_id;
  r.hw = q.hw_prog_id;
  return r;
}

std::vector<std::pair<int, std::string>> Interfaces() {
  std::vector<std::pair<int, std::string>> out;
  struct if_nameindex* list = if_nameindex();
  if (list == nullptr) ThrowErrno("list network interfaces");
  for (struct if_nameindex* i = list; i->if_index != 0; ++i) out.emplace_back(static_cast<int>(i->if_index), i->if_name);
  if_freenameindex(list);
  std::sort(out.begin(), out.end());
  return out;
}

XdpAttachment Resolve(const netns::NetnsRef& ns, const RawXdp& r) {
  XdpAttachment a;
  a.netns = ns.path();
  a.ifname = r.ifname;
  a.ifindex = r.ifindex;
  for (auto [mode, id] : {std::pair{XdpMode::kNative, r.drv}, std::pair{XdpMode::kGeneric, r.skb},
                          std::pair{XdpMode::kOffload, r.hw}}) {
    if (id != 0) a.programs.push_back(XdpProgram{mode, ReadProgramById(id)});
  }
  switch (r.attach_mode) {
    case XDP_ATTACHED_DRV: a.mode = XdpMode::kNative; break;
    case XDP_ATTACHED_SKB: a.mode = XdpMode::kGeneric; break;
    case XDP_ATTACHED_HW: a.mode = XdpMode::kOffload; break;
    case XDP_ATTACHED_MULTI: a.mode = XdpMode::kMulti; break;
    default: a.mode = XdpMode::kNone;
  }
  return a;
}

uint32_t ModeFlag(XdpMode mode) {
  switch (mode) {
    case XdpMode::kNative: return XDP_FLAGS_DRV_MODE;
    case XdpMode::kGeneric: return XDP_FLAGS_SKB_MODE;
    case XdpMode::kOffload: return XDP_FLAGS_HW_MODE;
    default: throw Error(std::string("XDP attach mode must be native, generic or offload, not ") + ToString(mode));
  }
}

int IfIndexOrThrow(const netns::NetnsRef& ns, const std::string& ifname) {
  const unsigned idx = if_nametoindex(ifname.c_str());
  if (idx != 0) return static_cast<int>(idx);
  std::string names;
  for (const auto& [i, n] : Interfaces()) names += (names.empty() ? "" : ", ") + n;
  throw Error("no interface " + ifname + " in network namespace " + ns.path() + " (it has: " + names + ")");
}

}  // namespace

const char* ToString(XdpMode mode) {
  switch (mode) {
    case XdpMode::kNone: return "none";
    case XdpMode::kNative: return "native";
    case XdpMode::kGeneric: return "generic";
    case XdpMode::kOffload: return "offload";
    case XdpMode::kMulti: return "multi";
  }
  return "?";
}

const ProgramInfo* XdpAttachment::program(XdpMode m) const {
  for (const auto& p : programs) {
    if (m == XdpMode::kNone || p.mode == m) return &p.prog;
  }
  return nullptr;
}

XdpAttachment QueryXdp(const netns::NetnsRef& ns, const std::string& ifname) {
  const RawXdp raw = netns::RunIn(ns, [&] { return QueryRaw(IfIndexOrThrow(ns, ifname), ifname); });
  return Resolve(ns, raw);
}

std::vector<XdpAttachment> QueryXdpAll(const netns::NetnsRef& ns) {
  const std::vector<RawXdp> raws = netns::RunIn(ns, [&] {
    std::vector<RawXdp> out;
    for (const auto& [idx, name] : Interfaces()) out.push_back(QueryRaw(idx, name));
    return out;
  });
  std::vector<XdpAttachment> out;
  for (const auto& r : raws) out.push_back(Resolve(ns, r));
  return out;
}

XdpLink XdpLink::Attach(const netns::NetnsRef& ns, const std::string& ifname, int prog_fd, XdpMode mode) {
  const uint32_t flags = (mode == XdpMode::kNone ? 0 : ModeFlag(mode)) | XDP_FLAGS_UPDATE_IF_NOEXIST;
  const std::string how =
      mode == XdpMode::kNone ? "no mode flag, as Kmesh attaches" : ToString(mode) + std::string(" mode");
  int copy = fcntl(prog_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno("duplicate XDP program fd");
  XdpLink link;
  link.prog_fd_ = UniqueFd(copy);
  netns::RunIn(ns, [&] {
    const int idx = IfIndexOrThrow(ns, ifname);
    int rc = bpf_xdp_attach(idx, copy, flags, nullptr);
    if (rc == -EBUSY || rc == -EEXIST) {
      throw Error("interface " + ifname + " in " + ns.path() + " already has an XDP program (attaching with " +
                  how + "); the harness does not replace programs it did not attach");
    }
    if (rc != 0) {
      ThrowBpf("attach XDP program to " + ifname + " in " + ns.path() + " (" + how + ")", -rc,
               BpfNeeds::kNetAdmin);
    }
    if (mode == XdpMode::kNone) {
      // No mode flag: ask which mode the kernel picked, so Detach() names it.
      const uint8_t picked = QueryRaw(idx, ifname).attach_mode;
      mode = picked == XDP_ATTACHED_SKB  ? XdpMode::kGeneric
             : picked == XDP_ATTACHED_HW ? XdpMode::kOffload
                                         : XdpMode::kNative;
    }
  });
  link.ns_ = ns;
  link.ifname_ = ifname;
  link.mode_ = mode;
  return link;
}

void XdpLink::Detach() {
  if (!ns_ || !prog_fd_.valid()) return;
  const netns::NetnsRef ns = *ns_;
  ns_.reset();
  // XDP_FLAGS_REPLACE with our own fd as the expected program: never detaches someone else's program.
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = prog_fd_.get());
  const uint32_t flags = ModeFlag(mode_) | XDP_FLAGS_REPLACE;
  netns::RunIn(ns, [&] {
    const unsigned idx = if_nametoindex(ifname_.c_str());
    if (idx == 0) return;  // the interface is gone, and the program with it
    int rc = bpf_xdp_detach(static_cast<int>(idx), flags, &opts);
    if (rc != 0 && rc != -EEXIST) ThrowBpf("detach XDP program from " + ifname_ + " in " + ns.path(), -rc,
                                           BpfNeeds::kNetAdmin);
  });
  prog_fd_.Reset();
}

XdpLink::~XdpLink() {
  try {
    Detach();
  } catch (...) {
    // The namespace may already be gone (and the program detached with it).
  }
}

XdpLink::XdpLink(XdpLink&& o) noexcept
    : ns_(std::move(o.ns_)), ifname_(std::move(o.ifname_)), mode_(o.mode_), prog_fd_(std::move(o.prog_fd_)) {
  o.ns_.reset();
}

XdpLink& XdpLink::operator=(XdpLink&& o) noexcept {
  if (this != &o) {
    try {
      Detach();
    } catch (...) {
    }
    ns_ = std::move(o.ns_);
    o.ns_.reset();
    ifname_ = std::move(o.ifname_);
    mode_ = o.mode_;
    prog_fd_ = std::move(o.prog_fd_);
  }
  return *this;
}

}  // namespace kmesh::bpf_probe
