#include "node/node_local.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <linux/xfrm.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "base/error.h"
#include "bpf_probe/kmesh_maps.h"
#include "netns/netlink.h"
#include "netns/route.h"

namespace kmesh::node {
namespace {

// An address, in brackets or not ("[fd00::1]").
net::IpAddr ParseAddr(const std::string& ip, const std::string& what) {
  const bool bracketed = ip.size() > 2 && ip.front() == '[' && ip.back() == ']';
  const auto a = net::IpAddr::Parse(bracketed ? ip.substr(1, ip.size() - 2) : ip);
  if (!a) throw Error(what + ": \"" + ip + "\" is not an IPv4 or IPv6 address");
  return *a;
}

int AddressFamily(const net::IpAddr& a) { return a.is_v4() ? AF_INET : AF_INET6; }

bool AllDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s; ++s) {
    if (!std::isdigit(static_cast<unsigned char>(*s))) return false;
  }
  return true;
}

}  // namespace

MapSource MapSource::Parse(const std::string& text, const std::string& proc_root,
                           const std::string& netns_dir) {
  MapSource s;
  s.proc_root = proc_root;
  s.netns_dir = netns_dir;
  const auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  const std::string forms =
      "expected pin:<folder>, prog:<id>, xdp:<netns path>[@<ifname>] or xdp:<pod IP>[@<ifname>]";
  if (kind == "pin" && !arg.empty()) {
    s.kind = Kind::kPinDir;
    s.pin_dir = arg;
  } else if (kind == "prog" && !arg.empty()) {
    char* end = nullptr;
    const unsigned long id = std::strtoul(arg.c_str(), &end, 10);
    if (*end != '\0' || id == 0 || id > UINT32_MAX)
      throw Error("map source \"" + text + "\": prog: needs a program id");
    s.kind = Kind::kProgram;
    s.prog_id = static_cast<uint32_t>(id);
  } else if (kind == "xdp" && !arg.empty()) {
    // '@' appears in neither a namespace path we make nor an address: it separates the interface.
    const auto at = arg.rfind('@');
    const std::string where = arg.substr(0, at);
    if (at != std::string::npos) {
      s.ifname = arg.substr(at + 1);
      if (s.ifname.empty()) throw Error("map source \"" + text + "\": an interface name follows '@'");
    }
    if (where.empty()) throw Error("map source \"" + text + "\": " + forms);
    if (where[0] == '/') {
      s.kind = Kind::kXdpInNetns;
      s.netns = where;
    } else {
      ParseAddr(where, "map source \"" + text + "\" (" + forms + ")");
      s.kind = Kind::kXdpOfPod;
      s.pod_ip = where;
    }
  } else {
    throw Error("map source \"" + text + "\": " + forms);
  }
  return s;
}

std::string MapSource::ToString() const {
  const std::string at = ifname.empty() ? "" : "@" + ifname;
  switch (kind) {
    case Kind::kPinDir:
      return "pin:" + pin_dir;
    case Kind::kProgram:
      return "prog:" + std::to_string(prog_id);
    case Kind::kXdpOfPod:
      return "xdp:" + pod_ip + at;
    case Kind::kXdpInNetns:
      return "xdp:" + netns + at;
  }
  return "?";
}

bpf_probe::MapCatalog OpenCatalog(const MapSource& src) {
  switch (src.kind) {
    case MapSource::Kind::kPinDir:
      return bpf_probe::MapCatalog::FromPinDir(src.pin_dir);
    case MapSource::Kind::kProgram:
      return bpf_probe::MapCatalog::FromProgram(src.prog_id);
    case MapSource::Kind::kXdpOfPod: {
      const auto xdp = XdpOfPod(src.proc_root, src.pod_ip, src.ifname, src.netns_dir);
      const auto* prog = xdp.program();
      if (prog == nullptr) {
        throw Error("maps of the XDP program of pod " + src.pod_ip + ": nothing is attached to " +
                    xdp.ifname + " in " + xdp.netns + " (is the pod enrolled in Kmesh?)");
      }
      return bpf_probe::MapCatalog::FromProgram(prog->id);
    }
    case MapSource::Kind::kXdpInNetns:
      return bpf_probe::MapCatalog::FromProgram(
          XdpInNetns(netns::NetnsRef::Resolve(src.netns), src.ifname).program()->id);
  }
  throw Error("unknown map source");
}

bpf_probe::XdpAttachment XdpInNetns(const netns::NetnsRef& ns, const std::string& ifname) {
  if (!ifname.empty()) {
    auto a = bpf_probe::QueryXdp(ns, ifname);
    if (!a.attached()) {
      throw Error("no XDP program is attached to " + ifname + " in " + ns.path() +
                  " (is the pod enrolled in Kmesh?)");
    }
    return a;
  }
  std::vector<bpf_probe::XdpAttachment> carrying;
  std::string interfaces;
  for (auto& a : bpf_probe::QueryXdpAll(ns)) {
    interfaces += (interfaces.empty() ? "" : ", ") + a.ifname;
    if (a.attached()) carrying.push_back(std::move(a));
  }
  if (carrying.empty()) {
    throw Error("no XDP program is attached to any interface in " + ns.path() + " (interfaces: " +
                (interfaces.empty() ? "none" : interfaces) + "; is the pod enrolled in Kmesh?)");
  }
  // Kmesh attaches the same xdp_authz to every UP interface of the pod (kmesh-facts.md §1.2).
  std::string seen;
  bool one_program = true;
  for (const auto& a : carrying) {
    seen += (seen.empty() ? "" : ", ") + a.ifname + ": prog " + std::to_string(a.program()->id) + " (" +
            a.program()->name + ")";
    if (a.programs.size() != 1 || a.program()->id != carrying.front().program()->id) one_program = false;
  }
  if (!one_program) {
    throw Error("interfaces in " + ns.path() + " carry different XDP programs (" + seen +
                "): name one, e.g. xdp:" + ns.path() + "@" + carrying.front().ifname);
  }
  return carrying.front();
}

std::string InterfaceHolding(const netns::NetnsRef& ns, const std::string& ip) {
  const net::IpAddr want = ParseAddr(ip, "address lookup");
  netns::NetlinkSocket sock = netns::NetlinkSocket::Open(ns, NETLINK_ROUTE);
  netns::NetlinkMessage msg(RTM_GETADDR, NLM_F_DUMP);
  ifaddrmsg req{};
  req.ifa_family = static_cast<uint8_t>(AddressFamily(want));
  msg.Put(req);
  int index = 0;
  sock.Request(
      msg,
      [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWADDR || index != 0) return;
        const auto* ifa = reinterpret_cast<const ifaddrmsg*>(NLMSG_DATA(m));
        if (ifa->ifa_family != req.ifa_family) return;
        // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links (IPv4).
        const uint8_t* local = nullptr;
        const uint8_t* address = nullptr;
        netns::ForEachAttr(m, sizeof(ifaddrmsg), [&](uint16_t type, const uint8_t* data, size_t len) {
          if (len < want.size()) return;
          if (type == IFA_LOCAL) local = data;
          if (type == IFA_ADDRESS) address = data;
        });
        const uint8_t* mine = local != nullptr ? local : address;
        if (mine != nullptr && std::memcmp(mine, want.data(), want.size()) == 0)
          index = static_cast<int>(ifa->ifa_index);
      },
      "address dump of " + ns.path());
  if (index == 0) return "";
  for (const auto& i : netns::ListInterfaces(ns)) {
    if (i.index == index) return i.name;
  }
  return "ifindex " + std::to_string(index);
}

std::string DefaultNetnsDir(const std::string& proc_root) {
  return proc_root == "/proc" ? netns::kNetnsDir : "";
}

NetnsHolders FindNetnsHolding(const std::string& proc_root, const std::string& ip,
                              const std::string& netns_dir) {
  ParseAddr(ip, "namespace lookup");
  NetnsHolders h;
  h.ip = ip;
  h.searched = proc_root + (netns_dir.empty() ? "" : " and " + netns_dir);
  std::vector<std::pair<std::string, int>> candidates;  // path, pid (0 for a bind mount)
  std::vector<int> pids;
  DIR* d = opendir(proc_root.c_str());
  if (d == nullptr)
    ThrowErrno("open " + proc_root + " (the /proc tree to search for the namespace holding " + ip + ")");
  while (dirent* e = readdir(d)) {
    if (AllDigits(e->d_name)) pids.push_back(std::atoi(e->d_name));
  }
  closedir(d);
  std::sort(pids.begin(), pids.end());
  // pid 1 (the node's own namespace) first; then the bind mounts, so a holder that has a name (the lab's,
  // a test's) is reported by it rather than by a process that may be gone by the time it is used.
  if (!pids.empty() && pids.front() == 1) candidates.emplace_back(proc_root + "/1/ns/net", 1);
  if (!netns_dir.empty()) {
    if (DIR* nd = opendir(netns_dir.c_str())) {
      std::vector<std::string> names;
      while (dirent* e = readdir(nd)) {
        if (e->d_name[0] != '.') names.push_back(e->d_name);
      }
      closedir(nd);
      std::sort(names.begin(), names.end());
      for (const auto& n : names) candidates.emplace_back(netns_dir + "/" + n, 0);
    }
  }
  for (int pid : pids) {
    if (pid != 1) candidates.emplace_back(proc_root + "/" + std::to_string(pid) + "/ns/net", pid);
  }
  std::set<unsigned long> seen;
  for (const auto& [path, pid] : candidates) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !seen.insert(st.st_ino).second) continue;  // gone, or seen
    ++h.scanned;
    try {
      const std::string ifname = InterfaceHolding(netns::NetnsRef::Resolve(path), ip);
      if (!ifname.empty())
        h.holders.push_back(NetnsOwner{ip, path, pid, static_cast<unsigned long>(st.st_ino), ifname});
    } catch (const Error&) {
      // The process exited while we looked, or its namespace refuses us: it holds nothing we can use.
    }
  }
  return h;
}

NetnsOwner RequireNetnsOwning(const std::string& proc_root, const std::string& ip,
                              const std::string& netns_dir) {
  const NetnsHolders h = FindNetnsHolding(proc_root, ip, netns_dir);
  if (h.holders.empty()) {
    throw Error("no network namespace under " + proc_root + (netns_dir.empty() ? "" : " or " + netns_dir) +
                " holds " + ip + " (" + std::to_string(h.scanned) +
                " namespaces searched; is the pod on this node, and is " + proc_root + " the host's /proc?)");
  }
  if (h.holders.size() > 1) {
    // On a node a pod address is unique; here several labs or tests share the machine. Picking one would
    // read another run's namespace, maps or program.
    throw Error(std::to_string(h.holders.size()) + " network namespaces under " + h.searched + " hold " + ip +
                ": " + h.Describe() +
                "; an address names one pod only on a real node, so name the namespace instead (kmesh-probe "
                "--netns PATH or --pid PID; map source xdp:PATH[@IFNAME]) or the maps (prog:ID, pin:FOLDER)");
  }
  return h.holders.front();
}

AuthReport LookupAuth(const bpf_probe::MapCatalog& catalog, const net::Tuple& t, net::PortOrder order) {
  bpf_probe::AuthResultMap m(catalog.Open(KM_MAP_AUTH_RES), order);
  AuthReport r;
  r.map = m.map().info().Describe();
  r.tuple = t;
  r.port_order = order;
  r.verdict = m.Lookup(t);
  return r;
}

MapsReport SummarizeMaps(const bpf_probe::MapCatalog& catalog, const std::string& workload_ip) {
  MapsReport r;
  r.source = catalog.source();
  for (const auto& info : catalog.maps()) {
    if (info.name.rfind("km_", 0) != 0 && info.name.rfind("kmesh_map", 0) != 0) continue;
    uint64_t entries = 0;
    // Counting walks the map; ring buffers, socket storage and program arrays have nothing to count.
    if (info.EntriesWalkable() && info.TypeName() != "prog_array") {
      entries = bpf_probe::MapCatalog::OpenInfo(info).CountEntries();
    }
    r.maps.push_back(
        {info.name, info.id, info.TypeName(), info.key_size, info.value_size, info.max_entries, entries});
  }
  bpf_probe::AuthzPolicyMap policies(catalog.Open(KM_MAP_AUTHZ_POLICY));
  r.authz_value_problem = policies.value_layout_problem();
  for (uint32_t id : policies.PolicyIds()) r.policy_ids.push_back(id);
  if (!workload_ip.empty()) {
    r.workload_ip = workload_ip;
    bpf_probe::FrontendMap frontends(catalog.Open(KM_MAP_FRONTEND));
    r.workload_id = frontends.Lookup(*net::IpAddr::Parse(workload_ip));
    if (r.workload_id) {
      bpf_probe::WorkloadPolicyMap wl(catalog.Open(KM_MAP_WLPOLICY));
      if (auto e = wl.Lookup(*r.workload_id)) r.workload_policy_ids = e->policy_ids;
    }
  }
  return r;
}

bpf_probe::XdpAttachment XdpOfPod(const std::string& proc_root, const std::string& pod_ip,
                                  const std::string& dev, const std::string& netns_dir) {
  const NetnsOwner o = RequireNetnsOwning(proc_root, pod_ip, netns_dir);
  return bpf_probe::QueryXdp(netns::NetnsRef::Resolve(o.netns), dev.empty() ? o.ifname : dev);
}

void DeleteXfrmState(const netns::NetnsRef& ns, const xfrm::XfrmState& s) {
  const std::string what = "delete xfrm state " + s.Id() + " in " + ns.path();
  const net::IpAddr dst = ParseAddr(s.dst, what + ": dst");
  const net::IpAddr src = ParseAddr(s.src, what + ": src");
  netns::NetlinkSocket sock = netns::NetlinkSocket::Open(ns, NETLINK_XFRM);
  netns::NetlinkMessage msg(XFRM_MSG_DELSA, 0);
  xfrm_usersa_id id{};
  std::memcpy(&id.daddr, dst.data(), dst.size());
  id.spi = htonl(s.spi.value);
  id.family = static_cast<uint16_t>(AddressFamily(dst));
  id.proto = s.proto;
  msg.Put(id);
  xfrm_address_t saddr{};
  std::memcpy(&saddr, src.data(), src.size());
  msg.AddAttr(XFRMA_SRCADDR, &saddr, sizeof saddr);
  if (s.mark.mask != 0) {
    xfrm_mark mark{s.mark.value, s.mark.mask};
    msg.AddAttr(XFRMA_MARK, &mark, sizeof mark);
  }
  sock.Request(msg, what);
}

}  // namespace kmesh::node
