#include "e2e/lab/authz_datapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstring>
#include <linux/if_link.h>
#include <net/if.h>
#include <vector>

#include "base/error.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::lab {
namespace {

void Check(int rc, const std::string& what) {
  if (rc < 0) ThrowErrno(what, -rc);
}

int PodIfindex(const Pod& pod) {
  return netns::RunIn(pod.ns.ref(), [&] {
    int idx = static_cast<int>(if_nametoindex("eth0"));
    if (idx == 0) throw Error("pod " + pod.name + " has no eth0 in " + pod.ns.path());
    return idx;
  });
}

}  // namespace

AuthzDatapath::AuthzDatapath() {
  const std::string path = Runfile("e2e/lab/bpf/xdp_authz.o");
  obj_ = bpf_object__open_file(path.c_str(), nullptr);
  if (obj_ == nullptr) ThrowErrno("open BPF object " + path);
  if (int rc = bpf_object__load(obj_); rc != 0) {
    bpf_object__close(obj_);
    obj_ = nullptr;
    ThrowErrno("load BPF object " + path + " (the verifier log is on stderr)", -rc);
  }
}

AuthzDatapath::~AuthzDatapath() {
  // Detach from pods that still exist; a removed pod took its attachment with it.
  for (const auto& [path, pod] : attached_) {
    try {
      netns::RunIn(netns::NetnsRef::Resolve(path), [&] {
        int idx = static_cast<int>(if_nametoindex("eth0"));
        if (idx != 0) bpf_xdp_detach(idx, XDP_FLAGS_DRV_MODE, nullptr);
      });
    } catch (const Error&) {
    }
  }
  if (obj_ != nullptr) bpf_object__close(obj_);
}

int AuthzDatapath::prog_fd() const {
  return bpf_program__fd(bpf_object__find_program_by_name(obj_, KM_PROG_XDP_AUTHZ));
}

uint32_t AuthzDatapath::prog_id() const {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  Check(bpf_obj_get_info_by_fd(prog_fd(), &info, &len), "bpf_obj_get_info_by_fd(xdp_authz)");
  return info.id;
}

int AuthzDatapath::map_fd(const char* name) const {
  int fd = bpf_object__find_map_fd_by_name(obj_, name);
  if (fd < 0) throw Error(std::string("lab datapath has no map ") + name);
  return fd;
}

uint32_t AuthzDatapath::map_id(const char* name) const {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  Check(bpf_obj_get_info_by_fd(map_fd(name), &info, &len), std::string("map info of ") + name);
  return info.id;
}

void AuthzDatapath::Enroll(const Pod& pod, uint32_t workload_id) {
  km_ip_addr key{};
  if (inet_pton(AF_INET, pod.ip.c_str(), &key.ip4) != 1) throw Error("bad pod IP " + pod.ip);
  km_frontend_value v{workload_id};
  Check(bpf_map_update_elem(map_fd(KM_MAP_FRONTEND), &key, &v, BPF_ANY), "km_frontend update");
  AttachXdp(pod);
}

void AuthzDatapath::AttachXdp(const Pod& pod) {
  const int fd = prog_fd();
  netns::RunIn(pod.ns.ref(), [&] {
    int idx = PodIfindex(pod);
    Check(bpf_xdp_attach(idx, fd, XDP_FLAGS_DRV_MODE, nullptr),
          "attach xdp_authz (native) to eth0 of pod " + pod.name);
  });
  attached_[pod.ns.path()] = pod.name;
}

void AuthzDatapath::DetachXdp(const Pod& pod) {
  netns::RunIn(pod.ns.ref(), [&] {
    Check(bpf_xdp_detach(PodIfindex(pod), XDP_FLAGS_DRV_MODE, nullptr),
          "detach XDP from eth0 of pod " + pod.name);
  });
  attached_.erase(pod.ns.path());
}

bool AuthzDatapath::Attached(const Pod& pod) const { return attached_.count(pod.ns.path()) != 0; }

void AuthzDatapath::SetWorkloadPolicies(uint32_t workload_id, const std::vector<uint32_t>& ids) {
  if (ids.size() > KM_MAX_MEMBER_NUM_PER_POLICY) {
    throw Error("workload " + std::to_string(workload_id) + " would have " + std::to_string(ids.size()) +
                " policies; Kmesh (and the lab) keep at most 4 per workload");
  }
  const int fd = map_fd(KM_MAP_WLPOLICY);
  if (ids.empty()) {
    int rc = bpf_map_delete_elem(fd, &workload_id);
    if (rc < 0 && errno != ENOENT) ThrowErrno("km_wlpolicy delete");
    return;
  }
  km_wl_policies v{};
  for (size_t i = 0; i < ids.size(); ++i) v.policy_ids[i] = ids[i];
  Check(bpf_map_update_elem(fd, &workload_id, &v, BPF_ANY), "km_wlpolicy update");
}

void AuthzDatapath::PutPolicy(uint32_t id, const lab_policy& p) {
  Check(bpf_map_update_elem(map_fd(KM_MAP_AUTHZ_POLICY), &id, &p, BPF_ANY), "km_authz_policy update");
}

void AuthzDatapath::DeletePolicy(uint32_t id) {
  int rc = bpf_map_delete_elem(map_fd(KM_MAP_AUTHZ_POLICY), &id);
  if (rc < 0 && errno != ENOENT) ThrowErrno("km_authz_policy delete");
}

void AuthzDatapath::SetFaults(uint32_t faults) {
  uint32_t zero = 0;
  lab_config cfg{faults};
  Check(bpf_map_update_elem(map_fd(LAB_MAP_CONFIG), &zero, &cfg, BPF_ANY), "km_lab_config update");
}

}  // namespace kmesh::lab
