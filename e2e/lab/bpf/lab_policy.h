/* The lab's compiled AuthorizationPolicy form: the value of km_authz_policy in the reference datapath.
 *
 * Kmesh stores a protobuf-c struct with pointers into inner maps there; the harness only ever reads the
 * map's *keys* (policy ids) as evidence, so the lab keeps a flat, fixed-size form its XDP program can
 * evaluate directly. One definition for BPF C and C++ (the compiler in e2e/lab/policy_compiler.cc).
 *
 * Semantics (Istio): a rule matches when any of its matches matches; a match is the AND of
 * (source IP in src, not in not_src) and (dst port in ports, not in not_ports); an empty list matches
 * anything. An Istio rule `from: [s1, s2], to: [o1, o2]` compiles to the cross product s×o.
 */
#ifndef KMESH_E2E_LAB_BPF_LAB_POLICY_H_
#define KMESH_E2E_LAB_BPF_LAB_POLICY_H_

#include <linux/types.h>

#define LAB_MAX 4 /* Kmesh's MAX_MEMBER_NUM_PER_POLICY */

struct lab_cidr {
  __u32 addr; /* network order, already masked */
  __u32 mask; /* network order */
};

struct lab_match {
  __u8 n_src;
  __u8 n_not_src;
  __u8 n_ports;
  __u8 n_not_ports;
  struct lab_cidr src[LAB_MAX];
  struct lab_cidr not_src[LAB_MAX];
  __u16 ports[LAB_MAX]; /* host order */
  __u16 not_ports[LAB_MAX];
};

struct lab_rule {
  __u32 n_matches;
  struct lab_match matches[LAB_MAX];
};

struct lab_policy {
  __u32 action; /* KM_ACTION_ALLOW / KM_ACTION_DENY */
  __u32 n_rules;
  struct lab_rule rules[LAB_MAX];
};

/* km_lab_config (ARRAY, 1 entry): switches for fault injection. */
#define LAB_FAULT_POLICY_IGNORED (1u << 0)  /* XDP passes everything although policies are in the maps */
#define LAB_FAULT_DENY_NOT_CACHED (1u << 1) /* a DENY match drops but writes no km_auth_res entry */

struct lab_config {
  __u32 faults;
};

#define LAB_MAP_CONFIG "km_lab_config"

#endif /* KMESH_E2E_LAB_BPF_LAB_POLICY_H_ */
