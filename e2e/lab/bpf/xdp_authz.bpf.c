// The lab's reference XDP authorization datapath. It keeps Kmesh's ABI where the harness looks (program
// name xdp_authz; maps km_auth_res, km_authz_policy, km_wlpolicy, km_frontend with Kmesh's keys) and
// evaluates ipBlocks and ports with Istio's semantics: any DENY match drops (and caches 1 in km_auth_res);
// with ALLOW policies present, a match passes (and caches 0) and no match drops (not cached, as Kmesh).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf_probe/kmesh_abi.h"
#include "e2e/lab/bpf/lab_policy.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KM_AUTH_RES_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct km_tuple);
  __type(value, __u32);
} km_auth_res SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KM_AUTHZ_POLICY_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct lab_policy);
} km_authz_policy SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, KM_WLPOLICY_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct km_wl_policies);
} km_wlpolicy SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct km_ip_addr);
  __type(value, struct km_frontend_value);
} km_frontend SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lab_config);
} km_lab_config SEC(".maps");

static __always_inline int cidr_hit(const struct lab_cidr *c, __u8 n, __u32 ip) {
  for (int i = 0; i < LAB_MAX; i++) {
    if (i >= n) break;
    if ((ip & c[i].mask) == c[i].addr) return 1;
  }
  return 0;
}

static __always_inline int port_hit(const __u16 *p, __u8 n, __u16 port) {
  for (int i = 0; i < LAB_MAX; i++) {
    if (i >= n) break;
    if (p[i] == port) return 1;
  }
  return 0;
}

static __always_inline int match_hit(const struct lab_match *m, __u32 saddr, __u16 dport) {
  if (m->n_src && !cidr_hit(m->src, m->n_src, saddr)) return 0;
  if (m->n_not_src && cidr_hit(m->not_src, m->n_not_src, saddr)) return 0;
  if (m->n_ports && !port_hit(m->ports, m->n_ports, dport)) return 0;
  if (m->n_not_ports && port_hit(m->not_ports, m->n_not_ports, dport)) return 0;
  return 1;
}

static __always_inline int policy_hit(const struct lab_policy *p, __u32 saddr, __u16 dport) {
  for (int r = 0; r < LAB_MAX; r++) {
    if (r >= p->n_rules) break;
    const struct lab_rule *rule = &p->rules[r];
    for (int m = 0; m < LAB_MAX; m++) {
      if (m >= rule->n_matches) break;
      if (match_hit(&rule->matches[m], saddr, dport)) return 1;
    }
  }
  return 0;
}

SEC("xdp")
int xdp_authz(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5) return XDP_PASS;
  struct tcphdr *tcp = (void *)(ip + 1);
  if ((void *)(tcp + 1) > end) return XDP_PASS;

  struct km_tuple tuple = {};
  tuple.ipv4.saddr = ip->saddr;
  tuple.ipv4.daddr = ip->daddr;
  tuple.ipv4.sport = bpf_ntohs(tcp->source); /* host order, as current Kmesh */
  tuple.ipv4.dport = bpf_ntohs(tcp->dest);

  __u32 zero = 0;
  struct lab_config *cfg = bpf_map_lookup_elem(&km_lab_config, &zero);
  __u32 faults = cfg ? cfg->faults : 0;

  __u32 *cached = bpf_map_lookup_elem(&km_auth_res, &tuple);
  if (cached) return *cached ? XDP_DROP : XDP_PASS;
  if (faults & LAB_FAULT_POLICY_IGNORED) return XDP_PASS;

  struct km_ip_addr dst = {};
  dst.ip4 = ip->daddr;
  struct km_frontend_value *fe = bpf_map_lookup_elem(&km_frontend, &dst);
  if (!fe) return XDP_PASS;
  struct km_wl_policies *wl = bpf_map_lookup_elem(&km_wlpolicy, &fe->upstream_id);
  if (!wl) return XDP_PASS;

  int has_allow = 0, allow_hit = 0;
  for (int i = 0; i < LAB_MAX; i++) {
    __u32 id = wl->policy_ids[i];
    if (id == 0) continue;
    struct lab_policy *p = bpf_map_lookup_elem(&km_authz_policy, &id);
    if (!p) continue;
    int hit = policy_hit(p, tuple.ipv4.saddr, tuple.ipv4.dport);
    if (p->action == KM_ACTION_DENY) {
      if (hit) {
        if (!(faults & LAB_FAULT_DENY_NOT_CACHED)) {
          __u32 deny = KM_AUTH_DENY;
          bpf_map_update_elem(&km_auth_res, &tuple, &deny, BPF_ANY);
        }
        return XDP_DROP;
      }
    } else {
      has_allow = 1;
      allow_hit |= hit;
    }
  }
  if (!has_allow) return XDP_PASS;
  if (!allow_hit) return XDP_DROP; /* unmatched ALLOW: dropped, not cached (Kmesh's fall-through) */
  __u32 allow = KM_AUTH_ALLOW;
  bpf_map_update_elem(&km_auth_res, &tuple, &allow, BPF_ANY);
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
