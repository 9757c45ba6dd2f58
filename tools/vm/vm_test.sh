#!/usr/bin/env bash
# The test runner of kmesh_vm_test (tools/bazel/defs.bzl): runs the test's binary through tools/vm/run.
# Usage (from Bazel, cwd = the test's runfiles): vm_test.sh auto|host|vm <binary rootpath> [args...]
set -euo pipefail
kernel=$1
binary=$2
shift 2
# On a cluster (KMESH_E2E_ENV=kube, --config=kind) the kernel under test is the cluster nodes', reached
# through kubectl and the node containers: this machine's kernel needs nothing, so no VM ever boots.
if [ "${KMESH_E2E_ENV:-lab}" = kube ]; then
  exec "$PWD/$binary" "$@"
fi
runner="$PWD/tools/vm/run"
[ -x "$runner" ] || { echo "vm_test.sh: $runner missing (is //tools/vm:runner in data?)" >&2; exit 1; }
# Stop the guest a little before Bazel's own timeout, so the log says what happened instead of a bare
# TIMEOUT; Bazel sets TEST_TIMEOUT (seconds) from the target's size.
opts=()
if [ -n "${TEST_TIMEOUT:-}" ] && [ "$TEST_TIMEOUT" -gt 30 ]; then
  opts=(--timeout "$((TEST_TIMEOUT - 15))")
fi
exec "$runner" --kernel "$kernel" "${opts[@]}" -- "$PWD/$binary" "$@"
