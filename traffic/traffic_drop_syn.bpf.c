// Test program for the connect_timeout and read_timeout outcomes: drops TCP SYNs to one port, the way
// Kmesh's xdp_authz drops a denied client's SYN (no RST, no ICMP, so the client's connect times out), and
// segments carrying data to another port, the way it drops an established connection's request once Kmesh's
// userspace cached a deny (the handshake passed, the request hangs).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// [0] = the port whose SYNs are dropped (host order); [1] = SYNs dropped so far; [2] = the port whose
// data segments are dropped (0 = none).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 3);
  __type(key, __u32);
  __type(value, __u64);
} drop_syn_cfg SEC(".maps");

SEC("xdp")
int drop_syn(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5) return XDP_PASS;
  struct tcphdr *tcp = (void *)(ip + 1);
  if ((void *)(tcp + 1) > end) return XDP_PASS;
  __u32 k = 2;
  __u64 *data_port = bpf_map_lookup_elem(&drop_syn_cfg, &k);
  if (data_port && *data_port != 0 && bpf_ntohs(tcp->dest) == *data_port &&
      bpf_ntohs(ip->tot_len) > sizeof(*ip) + tcp->doff * 4) {
    return XDP_DROP;
  }
  if (!tcp->syn || tcp->ack) return XDP_PASS;
  k = 0;
  __u64 *port = bpf_map_lookup_elem(&drop_syn_cfg, &k);
  if (!port || bpf_ntohs(tcp->dest) != *port) return XDP_PASS;
  k = 1;
  __u64 *dropped = bpf_map_lookup_elem(&drop_syn_cfg, &k);
  if (dropped) __sync_fetch_and_add(dropped, 1);
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
