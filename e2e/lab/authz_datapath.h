// The lab's reference XDP authorization datapath for one node: the xdp_authz program and its maps
// (Kmesh's names and keys), attached in native mode to the interface of each enrolled pod on the node,
// as Kmesh's CNI does. Each lab node has its own program and maps (a real node has its own kernel), so
// evidence readers find the maps through the program attached to the pod's interface, never by name.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "e2e/lab/bpf/lab_policy.h"
#include "e2e/lab/topology.h"

struct bpf_object;

namespace kmesh::lab {

class AuthzDatapath {
 public:
  AuthzDatapath();  // loads e2e/lab/bpf/xdp_authz.o from runfiles
  ~AuthzDatapath();
  AuthzDatapath(const AuthzDatapath&) = delete;
  AuthzDatapath& operator=(const AuthzDatapath&) = delete;

  // Attaches xdp_authz (native mode) to the pod's eth0 and registers its IP -> workload id in
  // km_frontend. Detach undoes the attachment only (a fault: the maps keep the pod).
  void Enroll(const Pod& pod, uint32_t workload_id);
  void AttachXdp(const Pod& pod);
  void DetachXdp(const Pod& pod);
  bool Attached(const Pod& pod) const;

  // km_wlpolicy[workload] = ids (at most 4; an empty list deletes the entry).
  void SetWorkloadPolicies(uint32_t workload_id, const std::vector<uint32_t>& policy_ids);
  void PutPolicy(uint32_t policy_id, const lab_policy& policy);
  void DeletePolicy(uint32_t policy_id);
  // km_lab_config.faults (LAB_FAULT_* bits).
  void SetFaults(uint32_t faults);

  int prog_fd() const;
  uint32_t prog_id() const;
  int map_fd(const char* name) const;
  uint32_t map_id(const char* name) const;

 private:
  bpf_object* obj_ = nullptr;
  std::map<std::string, std::string> attached_;  // pod netns path -> pod name
};

}  // namespace kmesh::lab
