/* Kmesh's kernel ABI where the harness looks: map names, key and value layouts, verdicts.
 *
 * The one definition shared by BPF C (the lab's reference datapath, test programs) and C++ (bpf_probe's
 * readers), in the spirit of libbpf-tools' name.h. Facts: shared/kmesh-facts.md §1 (Kmesh ec501a98).
 * Plain C, includable from `clang -target bpf` and from C++.
 */
#ifndef KMESH_E2E_BPF_PROBE_KMESH_ABI_H_
#define KMESH_E2E_BPF_PROBE_KMESH_ABI_H_

#include <linux/types.h>

/* Kernel (and pin) names; all <= 15 characters, so never truncated. */
#define KM_MAP_AUTH_RES "km_auth_res"         /* HASH  tuple(36) -> u32 verdict, 8192 */
#define KM_MAP_AUTH_REQ "km_auth_req"         /* RINGBUF 4096 bytes; never consume it */
#define KM_MAP_AUTHZ_POLICY "km_authz_policy" /* HASH  u32 policy id -> policy, 512 */
#define KM_MAP_WLPOLICY "km_wlpolicy"         /* HASH  u32 workload id -> 4 x u32 policy ids, 512 */
#define KM_MAP_FRONTEND "km_frontend"         /* HASH  ip_addr(16) -> u32 upstream id, 105000 */
#define KM_MAP_TCARGS "km_tcargs"             /* HASH  tuple(36) -> match_context(40), 100000 */
#define KM_MAP_XDP_TAILCALL "km_xdp_tailcall" /* PROG_ARRAY, 8 */
#define KM_MAP_NODEINFO "km_nodeinfo"         /* LPM_TRIE 20-byte key -> u32, 8192 */
#define KM_PROG_XDP_AUTHZ "xdp_authz"

/* Default pin folder of Kmesh's workload maps. */
#define KM_PIN_DIR "/sys/fs/bpf/bpf_kmesh_workload/map"

#define KM_AUTH_RES_MAX_ENTRIES 8192
#define KM_AUTHZ_POLICY_MAX_ENTRIES 512
#define KM_WLPOLICY_MAX_ENTRIES 512
#define KM_FRONTEND_MAX_ENTRIES 105000
#define KM_MAX_MEMBER_NUM_PER_POLICY 4

/* km_auth_res value. Userspace only ever writes KM_AUTH_DENY. */
#define KM_AUTH_ALLOW 0
#define KM_AUTH_DENY 1

/* km_authz_policy action as Kmesh stores it. */
#define KM_ACTION_ALLOW 0
#define KM_ACTION_DENY 1

/* km_auth_res / km_tcargs key: Linux's struct bpf_sock_tuple, 36 bytes, zero-filled.
 * IPs in network order (raw packet bytes). Ports: host order in current Kmesh (after 1c2ccfa2 and
 * 3b352445, 2026-01-30), network order in Kmesh v1.2.0 and earlier. src = client, dst = server pod. */
struct km_tuple {
  union {
    struct {
      __u32 saddr; /* network order */
      __u32 daddr; /* network order */
      __u16 sport;
      __u16 dport;
    } ipv4;
    struct {
      __u32 saddr[4];
      __u32 daddr[4];
      __u16 sport;
      __u16 dport;
    } ipv6;
  };
};
#define KM_TUPLE_SIZE 36

/* km_wlpolicy value: up to 4 policy ids, 0 = empty slot. */
struct km_wl_policies {
  __u32 policy_ids[KM_MAX_MEMBER_NUM_PER_POLICY];
};

/* km_frontend key: IPv4 in bytes 0..3 (network order), the rest 0; IPv6 in all 16 bytes. */
struct km_ip_addr {
  union {
    __u32 ip4;
    __u32 ip6[4];
  };
};

/* km_frontend value: backend uid (pod IP) or service id. */
struct km_frontend_value {
  __u32 upstream_id;
};

/* km_auth_req record (sockops -> userspace): u32 type then the tuple. */
#define KM_MSG_TYPE_IPV4 0
#define KM_MSG_TYPE_IPV6 1
struct km_auth_req_record {
  __u32 type;
  struct km_tuple tuple;
};

/* km_nodeinfo key (LPM trie): prefix length then 16-byte IP. */
struct km_nodeinfo_key {
  __u32 prefixlen;
  __u32 ip[4];
};

/* Size of Kmesh's km_authz_policy value (protobuf-c Istio__Security__Authorization, x86-64). */
#define KM_AUTHZ_POLICY_VALUE_SIZE 64
#define KM_TCARGS_VALUE_SIZE 40

/* km_authz_policy value: the numeric fields of protobuf-c's Istio__Security__Authorization at their
 * x86-64 offsets. name and namespace_ hold Kmesh "outer keys" (map type in the top byte: 0 kmesh_map64,
 * 1 kmesh_map192, 2 kmesh_map296, 3 kmesh_map1600; index in the low 24 bits), not addresses. */
struct km_authz_policy_value {
  __u8 protobuf_base[24];
  __u64 name;
  __u64 namespace_;
  __u32 scope;  /* 0 GLOBAL, 1 NAMESPACE, 2 WORKLOAD_SELECTOR */
  __u32 action; /* KM_ACTION_ALLOW / KM_ACTION_DENY */
  __u64 n_rules;
  __u64 rules;
};

/* Kmesh's policy blobs (bpf/include/inner_map_defs.h, bpf/deserialization_to_bpf_map/): every pointer of
 * the protobuf-c policy is stored as an "outer key", map type in bits 24..31 and index in bits 0..23, into
 * one of four HASH maps of fixed-size blobs (u32 index key, 1,000,000 entries each). The deserializer puts
 * a message in the smallest map it fits (sizeof_message), a string in kmesh_map192 (NUL-terminated), a
 * bytes field in kmesh_map64 and a repeated field in kmesh_map1600 (8-byte outer keys for messages and
 * strings, the raw elements for scalars such as uint32 ports). The XDP programs read them back the same way
 * (KMESH_GET_PTR_VAL, bpf/include/bpf_common.h:195-233). */
#define KM_INNER_MAP_64 0
#define KM_INNER_MAP_192 1
#define KM_INNER_MAP_296 2
#define KM_INNER_MAP_1600 3
#define KM_INNER_MAP_COUNT 4
#define KM_INNER_MAP_NAME_64 "kmesh_map64"
#define KM_INNER_MAP_NAME_192 "kmesh_map192"
#define KM_INNER_MAP_NAME_296 "kmesh_map296"
#define KM_INNER_MAP_NAME_1600 "kmesh_map1600"
#define KM_INNER_MAP_MAX_ENTRIES 1000000
#define KM_OUTER_KEY_TYPE(k) ((__u32)(k) >> 24)
#define KM_OUTER_KEY_INDEX(k) ((__u32)(k)&0xFFFFFF)

/* protobuf-c message layouts of api/v2-c/workloadapi/security/authorization.pb-c.h on x86-64 (pointers
 * and size_t 8 bytes; every message starts with a 24-byte ProtobufCMessage). Offsets in bytes; checked
 * against Kmesh's generated header by //bpf_probe:kmesh_abi_test. */
#define KM_PB_AUTHZ_NAME 24
#define KM_PB_AUTHZ_NAMESPACE 32
#define KM_PB_AUTHZ_SCOPE 40
#define KM_PB_AUTHZ_ACTION 44
#define KM_PB_AUTHZ_N_RULES 48
#define KM_PB_AUTHZ_RULES 56
#define KM_PB_RULE_SIZE 40 /* Istio__Security__Rule: n_clauses @24, clauses @32 -> kmesh_map64 */
#define KM_PB_RULE_N_CLAUSES 24
#define KM_PB_RULE_CLAUSES 32
#define KM_PB_CLAUSE_SIZE 40 /* Istio__Security__Clause: n_matches @24, matches @32 -> kmesh_map64 */
#define KM_PB_CLAUSE_N_MATCHES 24
#define KM_PB_CLAUSE_MATCHES 32
#define KM_PB_MATCH_SIZE 184 /* Istio__Security__Match: ten (n, list) pairs from @24 -> kmesh_map192 */
#define KM_PB_MATCH_N_NAMESPACES 24
#define KM_PB_MATCH_NAMESPACES 32
#define KM_PB_MATCH_N_NOT_NAMESPACES 40
#define KM_PB_MATCH_NOT_NAMESPACES 48
#define KM_PB_MATCH_N_PRINCIPALS 56
#define KM_PB_MATCH_PRINCIPALS 64
#define KM_PB_MATCH_N_NOT_PRINCIPALS 72
#define KM_PB_MATCH_NOT_PRINCIPALS 80
#define KM_PB_MATCH_N_SOURCE_IPS 88
#define KM_PB_MATCH_SOURCE_IPS 96
#define KM_PB_MATCH_N_NOT_SOURCE_IPS 104
#define KM_PB_MATCH_NOT_SOURCE_IPS 112
#define KM_PB_MATCH_N_DESTINATION_IPS 120
#define KM_PB_MATCH_DESTINATION_IPS 128
#define KM_PB_MATCH_N_NOT_DESTINATION_IPS 136
#define KM_PB_MATCH_NOT_DESTINATION_IPS 144
#define KM_PB_MATCH_N_DESTINATION_PORTS 152
#define KM_PB_MATCH_DESTINATION_PORTS 160
#define KM_PB_MATCH_N_NOT_DESTINATION_PORTS 168
#define KM_PB_MATCH_NOT_DESTINATION_PORTS 176
#define KM_PB_ADDRESS_SIZE 48 /* Istio__Security__Address: address {len @24, data @32}, length @40 -> kmesh_map64 */
#define KM_PB_ADDRESS_LEN 24
#define KM_PB_ADDRESS_DATA 32
#define KM_PB_ADDRESS_LENGTH 40
#define KM_PB_STRING_MATCH_SIZE 40 /* Istio__Security__StringMatch: match_type_case @24, string @32 -> kmesh_map64 */
#define KM_PB_STRING_MATCH_CASE 24
#define KM_PB_STRING_MATCH_STRING 32
#define KM_PB_STRING_MATCH_EXACT 1
#define KM_PB_STRING_MATCH_PREFIX 2
#define KM_PB_STRING_MATCH_SUFFIX 3

/* km_tcargs value, struct match_context (bpf/kmesh/workload/include/authz.h:32-41) on x86-64: the state
 * xdp_authz, policies_check and policy_check pass on through their tail calls. */
#define KM_TCARGS_ACTION 0
#define KM_TCARGS_POLICY_NAME 8
#define KM_TCARGS_POLICY_INDEX 16
#define KM_TCARGS_NEED_TAILCALL_TO_USERSPACE 17
#define KM_TCARGS_N_RULES 18
#define KM_TCARGS_AUTH_RESULT 20
#define KM_TCARGS_POLICIES 24
#define KM_TCARGS_RULES_PTR 32

/* XDP tail-call slots in km_xdp_tailcall. */
#define KM_TAIL_CALL_POLICIES_CHECK 0
#define KM_TAIL_CALL_POLICY_CHECK 1
#define KM_TAIL_CALL_AUTH_IN_USER_SPACE 2

/* IPsec xfrm marks (pkg/constants). */
#define KM_XFRM_ENCRYPT_MARK 0x00e0
#define KM_XFRM_DECRYPTED_MARK 0x00d0
#define KM_XFRM_MARK_MASK 0xffffffff

#ifdef __cplusplus
static_assert(sizeof(struct km_tuple) == KM_TUPLE_SIZE, "km_tuple must be Kmesh's 36-byte tuple");
static_assert(sizeof(struct km_wl_policies) == 16, "km_wlpolicy value is 4 x u32");
static_assert(sizeof(struct km_ip_addr) == 16, "km_frontend key is 16 bytes");
static_assert(sizeof(struct km_auth_req_record) == 40, "km_auth_req record is 40 bytes");
static_assert(sizeof(struct km_nodeinfo_key) == 20, "km_nodeinfo key is 20 bytes");
static_assert(sizeof(struct km_authz_policy_value) == KM_AUTHZ_POLICY_VALUE_SIZE, "km_authz_policy value is 64 bytes");
#endif

#endif /* KMESH_E2E_BPF_PROBE_KMESH_ABI_H_ */
