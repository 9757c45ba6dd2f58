// kmesh-probe: Kmesh node evidence as JSON, from inside a node. Statically linked, so `kubectl cp` can put
// it into the Kmesh daemon pod (openEuler, no bpftool) and `kubectl exec` can run it there; it is the same
// code the harness runs locally on a kind node (node/node_local.h) and its JSON is what the kube env
// reads (node/probe_json.h).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "bpf_probe/kmesh_abi.h"
#include "net/tuple.h"
#include "bpf_probe/xdp.h"
#include "capture/capture.h"
#include "xfrm/xfrm.h"
#include "node/node_local.h"
#include "node/probe_json.h"
#include "netns/netns.h"
#include "netns/route.h"

namespace kmesh::node {
namespace {

constexpr const char* kUsage =
    R"(kmesh-probe: Kmesh node evidence as JSON (one report on stdout; exit 1 with {"error": ...} on failure)

usage: kmesh-probe [--proc DIR] [--maps SOURCE] [--port-order host|network] COMMAND [options]

  xfrm               [--netns PATH] [--include-raw-keys]   xfrm states, policies and xfrm_stat
  auth               --tuple "SRC:PORT -> DST:PORT"        km_auth_res verdict for one tuple
  maps               [--workload-ip IP]                    Kmesh maps, policy ids, km_frontend/km_wlpolicy of a pod
  xdp                (--netns PATH | --pid PID | --pod-ip IP) [--dev IFNAME]   (--dev defaults to eth0 with
                     --netns/--pid, to the interface holding the address with --pod-ip)
  find-netns         --ip IP [--all]                       the network namespace holding an address (--all:
                                                           every one that does)
  capture            (--netns PATH | --pid PID | --pod-ip IP) (--iface IF | --peer ADDR)
                     [--filter F] [--seconds N] [--max-packets N] [--save FILE.pcap]
                     [--inner "SRC:PORT -> DST:PORT"] [--marker TEXT] [--direction both|out|in]
  xfrm-delete-state  --src A --dst B --spi 0xN [--proto esp] [--mark V/M] [--netns PATH]

  --proc DIR      the host's /proc (default /proc; /host/proc inside a Kmesh daemon pod). The node's
                  namespace is DIR/1/ns/net; pods are found by their address under DIR.
  --maps SOURCE   where Kmesh's maps are:
                    pin:FOLDER   pinned there (default pin:/sys/fs/bpf/bpf_kmesh_workload/map)
                    prog:ID      the maps of that program and its tail calls
                    xdp:PATH[@IFNAME]   the maps of the XDP program in the pod's namespace PATH
                                 (/run/netns/NAME, DIR/PID/ns/net); @IFNAME when its interfaces differ
                    xdp:POD_IP[@IFNAME] the same, the namespace found by the pod's address
  --netns-dir DIR also search namespaces bind-mounted there (default /run/netns with the local /proc, none
                  with another: a Kmesh pod sees the host's /proc only, and every pod has a process).
  --port-order    how km_auth_res keys store ports: host (current Kmesh, default) or network (v1.2.0 and earlier).
  --include-raw-keys  put each state's raw AEAD key in the report (for the harness's layout check over a
                  private pipe; never use it where the output is logged).

An address names one pod on a node. Where it does not (several labs or tests on one machine), every
lookup by address (--pod-ip, find-netns, xdp:POD_IP) fails and lists the namespaces holding it: name
the namespace (--netns, --pid, xdp:PATH) or the maps (prog:ID, pin:FOLDER) instead.
)";

class UsageError : public Error {
 public:
  using Error::Error;
};

struct Args {
  std::string command;
  std::map<std::string, std::string> opts;  // "--x" -> value ("" for flags)
  std::vector<std::string> flags_seen;

  bool Has(const std::string& k) const { return opts.count(k) != 0; }
  std::string Get(const std::string& k, const std::string& fallback = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? fallback : it->second;
  }
  std::string Need(const std::string& k) const {
    if (!Has(k)) throw UsageError(command + " needs " + k);
    return opts.at(k);
  }
};

Args ParseArgs(int argc, char** argv) {
  static const std::vector<std::string> kFlags = {"--include-raw-keys", "--all", "--help"};
  static const std::vector<std::string> kValued = {
      "--proc",    "--maps",        "--port-order", "--netns",     "--tuple",  "--workload-ip", "--pod-ip",
      "--pid",     "--dev",         "--ip",         "--netns-dir", "--iface",  "--peer",        "--filter",
      "--seconds", "--max-packets", "--save",       "--inner",     "--marker", "--direction",   "--src",
      "--dst",     "--spi",         "--proto",      "--mark"};
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      if (!a.command.empty())
        throw UsageError("unexpected argument \"" + arg + "\" (command is " + a.command + ")");
      a.command = arg;
      continue;
    }
    if (std::find(kFlags.begin(), kFlags.end(), arg) != kFlags.end()) {
      a.opts[arg] = "";
    } else if (std::find(kValued.begin(), kValued.end(), arg) != kValued.end()) {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      a.opts[arg] = argv[++i];
    } else {
      throw UsageError("unknown option " + arg);
    }
  }
  if (a.Has("--help")) return a;
  if (a.command.empty()) throw UsageError("no command given");
  return a;
}

int ParseInt(const std::string& what, const std::string& text, long min, long max) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < min || v > max) {
    throw UsageError(what + " \"" + text + "\": expected a number in " + std::to_string(min) + ".." +
                     std::to_string(max));
  }
  return static_cast<int>(v);
}

std::string ProcRoot(const Args& a) { return a.Get("--proc", "/proc"); }
// Where bind-mounted namespaces (no process in them) are looked for too: /run/netns with the local /proc.
std::string NetnsDir(const Args& a) { return a.Get("--netns-dir", DefaultNetnsDir(ProcRoot(a))); }

// The namespace a node-level command works in: --netns, --pid, --pod-ip, else the node's own.
netns::NetnsRef TargetNetns(const Args& a) {
  if (a.Has("--netns")) return netns::NetnsRef::Resolve(a.Get("--netns"));
  if (a.Has("--pid")) {
    return netns::NetnsRef::Resolve(
        ProcRoot(a) + "/" + std::to_string(ParseInt("--pid", a.Get("--pid"), 1, 1 << 30)) + "/ns/net");
  }
  if (a.Has("--pod-ip"))
    return netns::NetnsRef::Resolve(RequireNetnsOwning(ProcRoot(a), a.Get("--pod-ip"), NetnsDir(a)).netns);
  return netns::NetnsRef::Resolve(ProcRoot(a) + "/1/ns/net");
}

MapSource Maps(const Args& a) {
  return MapSource::Parse(a.Get("--maps", std::string("pin:") + KM_PIN_DIR), ProcRoot(a), NetnsDir(a));
}

net::PortOrder Order(const Args& a) { return *net::ParsePortOrder(a.Get("--port-order", "host")); }

nlohmann::json CmdXfrm(const Args& a) {
  const auto ns = TargetNetns(a);
  return XfrmReportBody(xfrm::Snapshot(ns), a.Has("--include-raw-keys"));
}

nlohmann::json CmdAuth(const Args& a) {
  const auto tuple = *net::Tuple::Parse(a.Need("--tuple"));
  return ToJson(LookupAuth(OpenCatalog(Maps(a)), tuple, Order(a)));
}

nlohmann::json CmdMaps(const Args& a) {
  return ToJson(SummarizeMaps(OpenCatalog(Maps(a)), a.Get("--workload-ip")));
}

nlohmann::json CmdXdp(const Args& a) {
  if (a.Has("--pod-ip")) return ToJson(XdpOfPod(ProcRoot(a), a.Get("--pod-ip"), a.Get("--dev"), NetnsDir(a)));
  if (!a.Has("--netns") && !a.Has("--pid")) throw UsageError("xdp needs --pod-ip, --netns or --pid");
  return ToJson(bpf_probe::QueryXdp(TargetNetns(a), a.Get("--dev", "eth0")));
}

nlohmann::json CmdFindNetns(const Args& a) {
  if (a.Has("--all")) return ToJson(FindNetnsHolding(ProcRoot(a), a.Need("--ip"), NetnsDir(a)));
  return ToJson(RequireNetnsOwning(ProcRoot(a), a.Need("--ip"), NetnsDir(a)));
}


nlohmann::json CmdCapture(const Args& a) {
  const auto ns = TargetNetns(a);
  capture::CaptureSpec spec;
  if (a.Has("--iface")) {
    spec.interface = a.Get("--iface");
  } else if (a.Has("--peer")) {
    spec.interface = netns::RouteTo(ns, a.Get("--peer")).interface;
  } else if (a.Has("--pod-ip")) {
    spec.interface = RequireNetnsOwning(ProcRoot(a), a.Get("--pod-ip"), NetnsDir(a)).ifname;
  } else {
    throw UsageError("capture needs --iface or --peer (or --pod-ip)");
  }
  spec.filter = a.Get("--filter");
  spec.max_duration =
      std::chrono::milliseconds(1000L * ParseInt("--seconds", a.Get("--seconds", "5"), 1, 3600));
  spec.max_packets =
      static_cast<size_t>(ParseInt("--max-packets", a.Get("--max-packets", "10000"), 1, 10000000));
  if (a.Has("--save")) {
    std::string path = a.Get("--save");
    const auto slash = path.rfind('/');
    spec.save_dir = slash == std::string::npos ? "." : path.substr(0, slash);
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    if (base.size() > 5 && base.compare(base.size() - 5, 5, ".pcap") == 0) base.resize(base.size() - 5);
    spec.label = base;
  }
  if (a.Has("--inner")) spec.inner = *net::Tuple::Parse(a.Get("--inner"));
  spec.marker = a.Get("--marker");
  const std::string dir = a.Get("--direction", "both");
  if (dir == "both") {
    spec.direction = capture::CaptureSpec::Direction::kBoth;
  } else if (dir == "out") {
    spec.direction = capture::CaptureSpec::Direction::kOut;
  } else if (dir == "in") {
    spec.direction = capture::CaptureSpec::Direction::kIn;
  } else {
    throw UsageError("--direction \"" + dir + "\": expected both, out or in");
  }
  auto cap = capture::Capture::Start(ns, spec);
  return CaptureReportBody(cap.Wait());
}

xfrm::Mark ParseMarkArg(const std::string& text) {
  const auto slash = text.find('/');
  auto num = [&](const std::string& s) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
    if (s.empty() || *end != '\0' || v > UINT32_MAX)
      throw UsageError("--mark \"" + text + "\": expected VALUE/MASK like 0xd0/0xffffffff");
    return static_cast<uint32_t>(v);
  };
  if (slash == std::string::npos)
    throw UsageError("--mark \"" + text + "\": expected VALUE/MASK like 0xd0/0xffffffff");
  return xfrm::Mark{num(text.substr(0, slash)), num(text.substr(slash + 1))};
}

nlohmann::json CmdXfrmDeleteState(const Args& a) {
  xfrm::XfrmState s;
  s.src = a.Need("--src");
  s.dst = a.Need("--dst");
  const std::string spi = a.Need("--spi");
  char* end = nullptr;
  const unsigned long long v = std::strtoull(spi.c_str(), &end, 0);
  if (spi.empty() || *end != '\0' || v > UINT32_MAX)
    throw UsageError("--spi \"" + spi + "\": expected a number like 0x00000002");
  s.spi = xfrm::Spi{static_cast<uint32_t>(v)};
  const std::string proto = a.Get("--proto", "esp");
  if (proto != "esp") throw UsageError("--proto \"" + proto + "\": only esp (Kmesh's) is supported");
  s.proto = 50;
  if (a.Has("--mark")) s.mark = ParseMarkArg(a.Get("--mark"));
  const auto ns = TargetNetns(a);
  DeleteXfrmState(ns, s);
  return {{"deleted", s.Id()}, {"netns", ns.path()}};
}

int Main(int argc, char** argv) {
  Args a;
  try {
    a = ParseArgs(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "kmesh-probe: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  if (a.Has("--help")) {
    std::cout << kUsage;
    return 0;
  }
  static const std::map<std::string, nlohmann::json (*)(const Args&)> kCommands = {
      {"xfrm", CmdXfrm},
      {"auth", CmdAuth},
      {"maps", CmdMaps},
      {"xdp", CmdXdp},
      {"find-netns", CmdFindNetns},
      {"capture", CmdCapture},
      {"xfrm-delete-state", CmdXfrmDeleteState}};
  auto it = kCommands.find(a.command);
  if (it == kCommands.end()) {
    std::cerr << "kmesh-probe: unknown command \"" << a.command << "\"\n\n" << kUsage;
    return 2;
  }
  try {
    std::cout << Envelope(a.command, it->second(a)).dump() << "\n";
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "kmesh-probe: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cout << ErrorReport(a.command, e.what()).dump() << "\n";
    std::cerr << "kmesh-probe " << a.command << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace kmesh::node

int main(int argc, char** argv) { return kmesh::node::Main(argc, argv); }
