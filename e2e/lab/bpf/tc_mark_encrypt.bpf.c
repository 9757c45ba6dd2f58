// The lab's stand-in for Kmesh's tc_mark_encrypt: on the host side of a pod's veth (clsact ingress =
// traffic leaving the pod), mark packets to another node's pod CIDR with 0xe0 so the xfrm out policy
// (mark 0xe0/0xffffffff) encrypts them. km_nodeinfo holds the other nodes' pod CIDRs, as in Kmesh.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf_probe/kmesh_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct km_nodeinfo_key);
  __type(value, __u32);
} km_nodeinfo SEC(".maps");

SEC("tc")
int tc_mark_encrypt(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end) return TC_ACT_OK;
  struct km_nodeinfo_key key = {.prefixlen = 32};
  key.ip[0] = ip->daddr;
  if (bpf_map_lookup_elem(&km_nodeinfo, &key)) skb->mark = KM_XFRM_ENCRYPT_MARK;
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
