#!/bin/sh
# //tools/report launcher: Debian's python3 (report.py is stdlib only) on report.py, found in the runfiles
# under `bazel run` or bazel-bin/tools/report/report, else beside this file in the source tree.
set -eu
here=$(dirname "$0")
runfiles=${RUNFILES_DIR:-$0.runfiles}
for f in "$runfiles/kmesh_e2e/tools/report/report.py" "$here/report.py"; do
  if [ -f "$f" ]; then exec /usr/bin/python3 "$f" "$@"; fi
done
echo "tools/report: cannot find report.py (looked in $runfiles/kmesh_e2e/tools/report and $here)" >&2
exit 2
