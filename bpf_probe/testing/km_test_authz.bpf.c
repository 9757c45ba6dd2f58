// A stand-in for Kmesh's XDP authorization datapath, for bpf_probe's own tests: maps named, typed and
// sized like Kmesh's (kmesh_abi.h, with BTF), and an XDP program that keys km_auth_res the way Kmesh's
// xdp_authz does (IPs network order; ports host order, or network order like Kmesh <= v1.2.0 when
// kmt_config[0] == 1) and drops when the cached verdict is non-zero. On a miss it follows Kmesh's path
// (km_frontend -> km_wlpolicy) and tail-calls slot 0 (like xdp_authz reaching policies_check), whose
// program reads km_authz_policy: the maps of a program and its tail calls are what
// MapCatalog::FromProgram must find.
//
// Program names start with kmt_ so they never pass for the lab's (or Kmesh's) xdp_authz.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf_probe/kmesh_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, KM_AUTH_RES_MAX_ENTRIES);
  __type(key, struct km_tuple);
  __type(value, __u32);
} km_auth_res SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, KM_WLPOLICY_MAX_ENTRIES);
  __type(key, __u32);
  __type(value, struct km_wl_policies);
} km_wlpolicy SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, KM_AUTHZ_POLICY_MAX_ENTRIES);
  __type(key, __u32);
  __type(value, struct km_authz_policy_value);
} km_authz_policy SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, KM_FRONTEND_MAX_ENTRIES);
  __type(key, struct km_ip_addr);
  __type(value, struct km_frontend_value);
} km_frontend SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
  __uint(max_entries, 8);
  __type(key, __u32);
  __type(value, __u32);
} km_xdp_tailcall SEC(".maps");

// [0]: 1 = ports in network order (Kmesh <= v1.2.0); written by the test before it runs packets.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} kmt_config SEC(".maps");

static __always_inline __u16 port_as_keyed(__u16 wire, int network_order) {
  return network_order ? wire : bpf_ntohs(wire);
}

SEC("xdp")
int kmt_xdp_authz(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) + 1 > end) return XDP_PASS;

  __u32 zero = 0;
  __u32 *cfg = bpf_map_lookup_elem(&kmt_config, &zero);
  int net_order = cfg && *cfg == 1;

  struct km_tuple key;
  __builtin_memset(&key, 0, sizeof key);
  struct tcphdr *tcp;
  __u8 version = (*(__u8 *)(eth + 1)) >> 4;  // like Kmesh: the IP nibble, not the ethertype
  if (version == 4) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP) return XDP_PASS;
    tcp = (void *)(ip + 1);  // a 20-byte header is assumed, as Kmesh does
    if ((void *)(tcp + 1) > end) return XDP_PASS;
    key.ipv4.saddr = ip->saddr;
    key.ipv4.daddr = ip->daddr;
    key.ipv4.sport = port_as_keyed(tcp->source, net_order);
    key.ipv4.dport = port_as_keyed(tcp->dest, net_order);
  } else if (version == 6) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP) return XDP_PASS;
    tcp = (void *)(ip6 + 1);
    if ((void *)(tcp + 1) > end) return XDP_PASS;
    __builtin_memcpy(key.ipv6.saddr, &ip6->saddr, 16);
    __builtin_memcpy(key.ipv6.daddr, &ip6->daddr, 16);
    key.ipv6.sport = port_as_keyed(tcp->source, net_order);
    key.ipv6.dport = port_as_keyed(tcp->dest, net_order);
  } else {
    return XDP_PASS;
  }

  __u32 *verdict = bpf_map_lookup_elem(&km_auth_res, &key);
  if (verdict) return *verdict != KM_AUTH_ALLOW ? XDP_DROP : XDP_PASS;

  // Miss: like Kmesh, dst IP -> km_frontend -> workload -> km_wlpolicy; no policies -> pass.
  struct km_ip_addr dst;
  __builtin_memset(&dst, 0, sizeof dst);
  if (version == 4) dst.ip4 = key.ipv4.daddr;
  else __builtin_memcpy(dst.ip6, key.ipv6.daddr, 16);
  struct km_frontend_value *fe = bpf_map_lookup_elem(&km_frontend, &dst);
  if (!fe) return XDP_PASS;
  __u32 workload = fe->upstream_id;
  if (!bpf_map_lookup_elem(&km_wlpolicy, &workload)) return XDP_PASS;
  bpf_tail_call(ctx, &km_xdp_tailcall, KM_TAIL_CALL_POLICIES_CHECK);
  return XDP_PASS;  // slot empty
}

// Tail-call target: touches km_authz_policy (as Kmesh's policies_check does) and passes.
SEC("xdp")
int kmt_policies(struct xdp_md *ctx) {
  __u32 id = 0;
  struct km_authz_policy_value *p = bpf_map_lookup_elem(&km_authz_policy, &id);
  if (p && p->action == KM_ACTION_DENY) return XDP_DROP;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
