#!/usr/bin/env bash
# Re-records exit_after_junit.bep.json and testlogs/ from a real `bazel test` (run from anywhere in the
# workspace, as root, like the tests): two targets whose Catch2 cases all pass and whose JUnit file is
# written, one aborting at exit (FAILED) and one hanging at exit (TIMEOUT), next to a plain passing test.
# Kept from the build event file: only the events tools/test_summary.py reads (testResult, testSummary,
# buildFinished), verbatim, except that the absolute testlogs folder in file:// URIs becomes @TESTLOGS@
# (the test substitutes its own copy). Other events hold the command line and the machine's environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=testdata/bep
targets=(//testdata/bep:crashes_after_junit_test //testdata/bep:hangs_after_junit_test //e2e/framework:case_output_test)
bep=$(mktemp /tmp/kmesh-e2e-capture-bep.XXXXXX.json)
trap 'rm -f "$bep"' EXIT
set +e
bazel test --build_event_json_file="$bep" --test_timeout=5 --nocache_test_results -- "${targets[@]}"
rc=$?
set -e
if [ "$rc" != 3 ]; then
  echo "capture.sh: expected bazel test to exit 3 (tests failed), got $rc" >&2
  exit 1
fi
testlogs=$(bazel info bazel-testlogs 2>/dev/null)
rm -rf "$here/testlogs"
python3 - "$bep" "$testlogs" "$here" <<'PY'
import json, os, shutil, sys
from urllib.parse import unquote, urlparse
bep, testlogs, here = sys.argv[1:]
kept = []
for line in open(bep):
    ev = json.loads(line)
    if not ({"testResult", "testSummary", "buildFinished"} & set(ev["id"])):
        continue
    for out in ev.get("testResult", {}).get("testActionOutput", []):
        path = unquote(urlparse(out["uri"]).path)
        if out["name"] == "test.xml":
            dest = os.path.join(here, "testlogs", os.path.relpath(path, testlogs))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(path, dest)
    kept.append(line.replace("file://" + testlogs + "/", "file://@TESTLOGS@/"))
with open(os.path.join(here, "exit_after_junit.bep.json"), "w") as f:
    f.writelines(kept)
print(f"capture.sh: kept {len(kept)} events in {here}/exit_after_junit.bep.json")
PY
