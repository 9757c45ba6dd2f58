#!/usr/bin/env bash
# Re-records the kubectl outputs that need no cluster (README.md, "Recorded here"): the machine's kubectl
# with a kubeconfig naming https://127.0.0.1:1, where nothing listens, and a private HOME (no cache, no
# ~/.kube/config). Usage: testdata/kubectl/capture_client.sh [KUBECTL]   (default: kubectl on PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kubectl=${1:-kubectl}
command -v "$kubectl" >/dev/null || { echo "capture_client.sh: no $kubectl on PATH" >&2; exit 1; }
tmp=$(mktemp -d /tmp/kmesh-e2e-kubectl-capture.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kubeconfig" <<'YAML'
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
  name: nowhere
contexts:
- context:
    cluster: nowhere
    user: nobody
  name: nowhere
current-context: nowhere
users:
- name: nobody
  user:
    token: not-a-token
YAML

# capture NAME EXPECTED_EXIT ARGS...: stdout to NAME.stdout (or NAME.json when it is JSON), stderr to NAME.stderr.
capture() {
  local name=$1 want=$2
  shift 2
  local rc=0
  env -i PATH="$PATH" HOME="$tmp" KUBECONFIG="$tmp/kubeconfig" timeout 60 "$kubectl" "$@" \
    >"$tmp/$name.stdout" 2>"$tmp/$name.stderr" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "capture_client.sh: kubectl $* exited $rc, expected $want: $(cat "$tmp/$name.stderr")" >&2
    exit 1
  fi
  echo "capture_client.sh: $name: kubectl $* exited $rc"
}

capture version_client 0 version --client -o json
mv "$tmp/version_client.stdout" "$here/version_client.json"
capture version_unreachable 1 version -o json
mv "$tmp/version_unreachable.stdout" "$tmp/version_unreachable.stderr" "$here/"
capture exec_unreachable 1 exec -n test-ns2 sleep-a-7f6d9c8b5-p4w8n -c sleep -- curl -sS http://10.244.1.7:8080/
[ -s "$tmp/exec_unreachable.stdout" ] && { echo "capture_client.sh: exec printed on stdout" >&2; exit 1; }
mv "$tmp/exec_unreachable.stderr" "$here/"
echo "capture_client.sh: kubectl $("$kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p')"
