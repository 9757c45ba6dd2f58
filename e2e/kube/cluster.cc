#include "e2e/kube/cluster.h"

#include <algorithm>
#include <sstream>

#include "base/error.h"

namespace kmesh::kube {
namespace {

using nlohmann::json;

// A value at a dotted path, or null.
const json& At(const json& j, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object()) return kNull;
    auto it = cur->find(k);
    if (it == cur->end()) return kNull;
    cur = &*it;
  }
  return *cur;
}

std::string Str(const json& j, std::initializer_list<const char*> path) {
  const json& v = At(j, path);
  return v.is_string() ? v.get<std::string>() : "";
}

const json& Items(const json& j, const std::string& source, const std::string& kind) {
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
    throw Error(source + ": expected a " + kind + " list (an object with \"items\"), found " +
                j.dump().substr(0, 160));
  }
  return j["items"];
}

}  // namespace

std::string PodInfo::Describe() const {
  std::string s = ns + "/" + name + " (node " + (node.empty() ? "unscheduled" : node) +
                  "): " + (phase.empty() ? "no phase" : phase) + (ready ? ", ready" : ", not ready");
  if (deleting) s += ", terminating";
  for (const auto& c : containers) {
    if (!c.waiting_reason.empty()) s += "; " + c.name + " waiting " + c.waiting_reason;
    if (!c.terminated_reason.empty()) s += "; " + c.name + " terminated " + c.terminated_reason;
    if (c.restarts > 0) s += "; " + c.name + " restarted " + std::to_string(c.restarts) + "x";
  }
  if (!scheduling_message.empty()) s += "; unschedulable: " + scheduling_message;
  return s;
}

PodInfo ParsePod(const json& j, const std::string& source) {
  if (!j.is_object() || !At(j, {"metadata", "name"}).is_string()) {
    throw Error(source + ": expected a Pod object with metadata.name, found " + j.dump().substr(0, 160));
  }
  PodInfo p;
  p.name = Str(j, {"metadata", "name"});
  p.ns = Str(j, {"metadata", "namespace"});
  p.uid = Str(j, {"metadata", "uid"});
  p.deleting = !At(j, {"metadata", "deletionTimestamp"}).is_null();
  if (const json& l = At(j, {"metadata", "labels"}); l.is_object()) {
    for (auto& [k, v] : l.items()) {
      if (v.is_string()) p.labels[k] = v.get<std::string>();
    }
  }
  p.node = Str(j, {"spec", "nodeName"});
  if (const json& cs = At(j, {"spec", "containers"}); cs.is_array()) {
    for (size_t i = 0; i < cs.size(); ++i) {
      p.container_names.push_back(Str(cs[i], {"name"}));
      p.container_images.push_back(Str(cs[i], {"image"}));
      if (i == 0) {
        for (const char* key : {"command", "args"}) {
          if (const json& a = At(cs[i], {key}); a.is_array()) {
            for (const auto& x : a) {
              if (x.is_string()) p.first_container_args.push_back(x.get<std::string>());
            }
          }
        }
      }
    }
  }
  p.phase = Str(j, {"status", "phase"});
  p.ip = Str(j, {"status", "podIP"});
  // A dual-stack pod lists an address per family; the primary (podIP) comes first.
  if (const json& ips = At(j, {"status", "podIPs"}); ips.is_array()) {
    for (const auto& entry : ips) {
      const std::string ip = Str(entry, {"ip"});
      if (ip != p.ip && ip.find(':') != std::string::npos && p.ip.find(':') == std::string::npos) p.ip6 = ip;
    }
  }
  if (const json& conds = At(j, {"status", "conditions"}); conds.is_array()) {
    for (const auto& c : conds) {
      const std::string type = Str(c, {"type"});
      const std::string status = Str(c, {"status"});
      if (type == "Ready") p.ready = status == "True";
      if (type == "PodScheduled" && status == "False") p.scheduling_message = Str(c, {"message"});
    }
  }
  if (const json& st = At(j, {"status", "containerStatuses"}); st.is_array()) {
    for (const auto& c : st) {
      ContainerStatus s;
      s.name = Str(c, {"name"});
      s.image = Str(c, {"image"});
      s.image_id = Str(c, {"imageID"});
      s.ready = At(c, {"ready"}).is_boolean() && At(c, {"ready"}).get<bool>();
      s.restarts = At(c, {"restartCount"}).is_number_integer() ? At(c, {"restartCount"}).get<int>() : 0;
      s.waiting_reason = Str(c, {"state", "waiting", "reason"});
      s.waiting_message = Str(c, {"state", "waiting", "message"});
      s.terminated_reason = Str(c, {"state", "terminated", "reason"});
      if (const json& code = At(c, {"state", "terminated", "exitCode"}); code.is_number_integer()) {
        s.terminated_exit_code = code.get<int>();
      }
      p.containers.push_back(s);
    }
  }
  return p;
}

std::vector<PodInfo> ParsePodList(const json& j, const std::string& source) {
  std::vector<PodInfo> out;
  const json& items = Items(j, source, "Pod");
  for (size_t i = 0; i < items.size(); ++i)
    out.push_back(ParsePod(items[i], source + " items[" + std::to_string(i) + "]"));
  return out;
}

std::string PodProblem(const PodInfo& p) {
  static const char* kPull[] = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"};
  static const char* kConfig[] = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"};
  for (size_t i = 0; i < p.containers.size(); ++i) {
    const auto& c = p.containers[i];
    std::string image = c.image;
    for (size_t k = 0; k < p.container_names.size(); ++k) {
      if (p.container_names[k] == c.name && !p.container_images[k].empty()) image = p.container_images[k];
    }
    for (const char* r : kPull) {
      if (c.waiting_reason == r) {
        return "image " + image + " of container " + c.name + " cannot be pulled (" + c.waiting_reason + ")" +
               (c.waiting_message.empty() ? "" : ": " + c.waiting_message) +
               " (check the image name and that the nodes can reach its registry; kind: `kind load "
               "docker-image`)";
      }
    }
    for (const char* r : kConfig) {
      if (c.waiting_reason == r) {
        return "container " + c.name + " cannot start (" + c.waiting_reason + ")" +
               (c.waiting_message.empty() ? "" : ": " + c.waiting_message);
      }
    }
    if (c.waiting_reason == "CrashLoopBackOff" || (c.restarts >= 3 && !c.ready)) {
      return "container " + c.name + " keeps crashing (" + std::to_string(c.restarts) + " restarts" +
             (c.waiting_reason.empty() ? "" : ", " + c.waiting_reason) + "); `kubectl logs -n " + p.ns + " " +
             p.name + " -c " + c.name + " --previous` shows why";
    }
  }
  if (p.phase == "Failed" || p.phase == "Succeeded") return "the pod has ended (phase " + p.phase + ")";
  if (!p.scheduling_message.empty() && p.scheduling_message.find("nodeName") == std::string::npos) {
    return "the pod cannot be scheduled: " + p.scheduling_message;
  }
  return "";
}

std::vector<NodeFacts> ParseNodeList(const json& j, const std::string& source) {
  std::vector<NodeFacts> out;
  const json& items = Items(j, source, "Node");
  for (size_t i = 0; i < items.size(); ++i) {
    const json& n = items[i];
    NodeFacts f;
    f.name = Str(n, {"metadata", "name"});
    if (f.name.empty()) throw Error(source + ": items[" + std::to_string(i) + "] has no metadata.name");
    if (const json& addrs = At(n, {"status", "addresses"}); addrs.is_array()) {
      for (const auto& a : addrs) {
        if (Str(a, {"type"}) == "InternalIP" && f.internal_ip.empty()) f.internal_ip = Str(a, {"address"});
      }
    }
    if (const json& cidrs = At(n, {"spec", "podCIDRs"}); cidrs.is_array()) {
      for (const auto& c : cidrs) {
        if (c.is_string()) f.pod_cidrs.push_back(c.get<std::string>());
      }
    }
    if (f.pod_cidrs.empty() && !Str(n, {"spec", "podCIDR"}).empty())
      f.pod_cidrs.push_back(Str(n, {"spec", "podCIDR"}));
    f.boot_id = Str(n, {"status", "nodeInfo", "bootID"});
    if (const json& conds = At(n, {"status", "conditions"}); conds.is_array()) {
      for (const auto& c : conds) {
        if (Str(c, {"type"}) == "Ready") f.ready = Str(c, {"status"}) == "True";
      }
    }
    if (f.internal_ip.empty()) {
      throw Error(source + ": node " + f.name +
                  " has no InternalIP in status.addresses (the underlay address IPsec uses)");
    }
    out.push_back(f);
  }
  std::sort(out.begin(), out.end(), [](const NodeFacts& a, const NodeFacts& b) { return a.name < b.name; });
  return out;
}

std::vector<net::Family> PodFamilies(const std::vector<NodeFacts>& nodes) {
  bool v4 = false, v6 = false;
  for (const auto& n : nodes) {
    for (const auto& cidr : n.pod_cidrs) (cidr.find(':') == std::string::npos ? v4 : v6) = true;
  }
  std::vector<net::Family> out;
  if (v4) out.push_back(net::Family::kIPv4);
  if (v6) out.push_back(net::Family::kIPv6);
  if (out.empty()) {
    throw Error(
        "no node of the cluster has spec.podCIDRs: cannot tell which address families its pods have "
        "(set KMESH_E2E_FAMILIES=ipv4, ipv6 or ipv4,ipv6)");
  }
  return out;
}

std::vector<ipsec::NodeInfo> ParseKmeshNodeInfos(const json& j, const std::string& source) {
  std::vector<ipsec::NodeInfo> out;
  const json& items = Items(j, source, "KmeshNodeInfo");
  for (size_t i = 0; i < items.size(); ++i) {
    const json& o = items[i];
    const std::string where = source + " items[" + std::to_string(i) + "]";
    ipsec::NodeInfo n;
    n.name = Str(o, {"metadata", "name"});
    if (n.name.empty()) throw Error(where + ": no metadata.name");
    const json& spec = At(o, {"spec"});
    if (!spec.is_object()) throw Error(where + " (" + n.name + "): no spec");
    auto field = [&](const char* key) -> const json& {
      const json& v = At(spec, {key});
      if (v.is_null()) {
        throw Error(where + " (" + n.name + "): spec." + key +
                    " is missing (KmeshNodeInfo's fields are spi, addresses, bootID, podCIDRS)");
      }
      return v;
    };
    const json& spi = field("spi");
    if (!spi.is_number_integer() || spi.get<int64_t>() < 0 || spi.get<int64_t>() > UINT32_MAX) {
      throw Error(where + " (" + n.name + "): spec.spi: expected a non-negative integer, found " +
                  spi.dump());
    }
    n.spi = spi.get<uint32_t>();
    const json& addrs = field("addresses");
    if (!addrs.is_array() || addrs.empty() || !addrs[0].is_string()) {
      throw Error(where + " (" + n.name +
                  "): spec.addresses: expected a non-empty list of addresses, found " + addrs.dump());
    }
    n.address = addrs[0].get<std::string>();
    const json& boot = field("bootID");
    if (!boot.is_string())
      throw Error(where + " (" + n.name + "): spec.bootID: expected a string, found " + boot.dump());
    n.boot_id = boot.get<std::string>();
    // The CRD spells it podCIDRS; a podCIDRs field would be someone else's object.
    if (At(spec, {"podCIDRS"}).is_null() && !At(spec, {"podCIDRs"}).is_null()) {
      throw Error(where + " (" + n.name +
                  "): spec has podCIDRs but KmeshNodeInfo's field is podCIDRS (capital S)");
    }
    const json& cidrs = field("podCIDRS");
    if (!cidrs.is_array())
      throw Error(where + " (" + n.name + "): spec.podCIDRS: expected a list, found " + cidrs.dump());
    for (const auto& c : cidrs) {
      if (!c.is_string())
        throw Error(where + " (" + n.name + "): spec.podCIDRS: expected strings, found " + c.dump());
      n.pod_cidrs.push_back(c.get<std::string>());
    }
    out.push_back(n);
  }
  std::sort(out.begin(), out.end(),
            [](const ipsec::NodeInfo& a, const ipsec::NodeInfo& b) { return a.name < b.name; });
  return out;
}

ipsec::IpsecSecret ParseIpsecSecret(const json& j, const std::string& source) {
  const json& data = At(j, {"data", "ipSec"});
  if (!data.is_string()) {
    std::string keys;
    if (const json& d = At(j, {"data"}); d.is_object()) {
      for (auto& [k, v] : d.items()) keys += (keys.empty() ? "" : ", ") + k;
    }
    throw Error(source + ": no data.ipSec (kmeshctl's data key); the secret holds {" + keys + "}");
  }
  const auto bytes = ipsec::Base64Decode(data.get<std::string>(), source + ": data.ipSec");
  return ipsec::IpsecSecret::Parse(std::string(bytes.begin(), bytes.end()), source + " data.ipSec");
}

std::string ParseServerVersion(const json& j, const std::string& source) {
  const std::string v = Str(j, {"serverVersion", "gitVersion"});
  if (v.empty()) throw Error(source + ": no serverVersion.gitVersion (kubectl reached no API server)");
  return v;
}

KmeshDaemonFlags ParseKmeshDaemonFlags(const PodInfo& pod) {
  KmeshDaemonFlags f;
  for (const auto& a : pod.first_container_args) f.command_line += (f.command_line.empty() ? "" : " ") + a;
  std::istringstream words(f.command_line);
  for (std::string w; words >> w;) {
    if (w.rfind("--mode=", 0) == 0) f.mode = w.substr(7);
    if (w == "--enable-ipsec" || w == "--enable-ipsec=true") f.ipsec = true;
    if (w == "--enable-ipsec=false") f.ipsec = false;
  }
  return f;
}

bool GatewayReady(const json& gw, std::string* why) {
  std::string seen;
  bool programmed = false, accepted = false, has_programmed = false;
  if (const json& conds = At(gw, {"status", "conditions"}); conds.is_array()) {
    for (const auto& c : conds) {
      const std::string type = Str(c, {"type"});
      const std::string status = Str(c, {"status"});
      seen += (seen.empty() ? "" : ", ") + type + "=" + status;
      if (!Str(c, {"reason"}).empty() && status != "True") seen += " (" + Str(c, {"reason"}) + ")";
      if (type == "Programmed") {
        has_programmed = true;
        programmed = status == "True";
      }
      if (type == "Accepted") accepted = status == "True";
    }
  }
  if (why) *why = seen.empty() ? "no status conditions yet" : seen;
  return has_programmed ? programmed : accepted;
}

std::string ServiceClusterIp(const json& svc, const std::string& source) {
  if (!At(svc, {"spec"}).is_object())
    throw Error(source + ": expected a Service object, found " + svc.dump().substr(0, 160));
  const std::string ip = Str(svc, {"spec", "clusterIP"});
  return ip == "None" ? "" : ip;
}

}  // namespace kmesh::kube
