// The pipe protocol between KmeshPolicyWriter (the client, in the harness) and kmesh-lab-daemon (one per
// lab node): one JSON object per line each way. The client writes requests on the daemon's stdin; the
// daemon answers each, in order, on the reply descriptor (fd 3), because Kmesh's deserializer prints its
// own log lines on stdout (deserialization_to_bpf_map.c:25-39), which goes to the daemon's log file.
//
// Every reply has "ok" (bool) and, when false, "error" (a sentence). Requests ("op" and its members):
//   apply_authorization   wire_hex: the workload API Authorization's proto3 bytes (what istiod sends)
//                         -> policy_id, stored_key, ret
//   remove_authorization  resource: "<namespace>/<name>"                -> policy_id, ret
//   lookup_authorization  resource or policy_id                         -> found, authorization (JSON)
//   store_workload        uid, node, addresses ["10.244.2.7"], policies ["ns/name"], host_network,
//                         and for the authorizer's workload cache: name, namespace, service_account,
//                         trust_domain, network
//                         -> workload_id, wlpolicy {written, policy_ids, dropped}, frontends,
//                         removed_frontends
//   remove_workload       uid                                           -> known, workload_id,
//                                                                          removed_frontend
//   ids                   names: [...]  (no allocation)                 -> ids {name: id or null}
//   ping                                                                -> pid
//   decisions                                                           -> decisions (kDecisions below)
// On start, before any request, the daemon writes {"ok": true, "ready": true, "pid": n} (or ok false and
// exits) on the reply descriptor.
#pragma once

#include <cstdint>
#include <cstring>

namespace kmesh::lab::daemon_protocol {

inline constexpr int kReplyFd = 3;

// The maps the daemon writes, by the kernel (and pin) name Kmesh gives them: the writer passes each one's
// id (--map NAME=ID), the daemon requires them all.
inline constexpr const char* kDaemonMaps[] = {"km_authz_policy", "kmesh_map64",   "kmesh_map192",
                                              "kmesh_map296",    "kmesh_map1600", "km_frontend",
                                              "km_wlpolicy"};

inline constexpr const char* kApplyAuthorization = "apply_authorization";
inline constexpr const char* kRemoveAuthorization = "remove_authorization";
inline constexpr const char* kLookupAuthorization = "lookup_authorization";
inline constexpr const char* kStoreWorkload = "store_workload";
inline constexpr const char* kRemoveWorkload = "remove_workload";
inline constexpr const char* kIds = "ids";
inline constexpr const char* kPing = "ping";
// -> decisions: what the node's authorizer decided since the last request (each: verdict, reason,
// policy, tuple, received_us, written_us, write_error), oldest first; [] without --pin-dir.
inline constexpr const char* kDecisions = "decisions";

// The key deserial_update_elem really writes for policy id `id`: normalize_key copies every key but a
// Listener's with strncpy (deserialization_to_bpf_map.c:91-106), so the id's bytes (little-endian) stop
// at the first zero byte and the rest of the key is zero. XDP looks the policy up by the full id
// (authz.h:572-577), so such a policy is never found there.
inline uint32_t DeserializerStoredKey(uint32_t id) {
  uint8_t in[4], out[4] = {0, 0, 0, 0};
  std::memcpy(in, &id, 4);
  for (int i = 0; i < 4 && in[i] != 0; ++i) out[i] = in[i];
  uint32_t key = 0;
  std::memcpy(&key, out, 4);
  return key;
}

}  // namespace kmesh::lab::daemon_protocol
