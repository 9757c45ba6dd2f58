#!/usr/bin/python3
"""tools/report: turns a run's evidence bundles into one self-contained HTML page, or a one-screen summary.

    report.py [--out FILE.html] [--summary] PATH...
    bazel run //tools/report -- [--out FILE.html] [--summary] PATH...

PATH is a bazel-testlogs folder (after `bazel test`), one test's test.outputs/outputs.zip, a folder of
bundles, or one evidence.json. Every evidence.json found (inside zips too) becomes one case; the same
bundle seen both unzipped and in outputs.zip counts once. When a test's JUnit file (test.xml) sits beside
its outputs, Catch2 failures that no bundle explains are reported too.

The page needs nothing but a browser: CSS and JS are inline, nothing is fetched. It never shows more of a
secret than the bundle does; a raw key a bundle holds anyway (KMESH_E2E_REVEAL_KEYS) is replaced by its
fingerprint. Python 3 standard library only.

Exit status: 0 when the report was written (whatever the cases' results), 2 when the input was unusable.
"""
import argparse
import os
import sys

from typing import List

sys.dont_write_bytecode = True  # run directly from the source tree: no __pycache__ beside the modules
# The three modules, and the names the tests and other tools use through `report.X`.
try:
    from collect import (Bundle, InputError, Run, case_folder_name, collect, parse_bundle,  # noqa: E402,F401
                         redact, target_label)
    from render import Page  # noqa: E402
    from summary import datapaths, defects_line, first_lines, summary_text  # noqa: E402,F401
except Exception as e:  # collect.InputError: the evidence schema is missing or unreadable
    if type(e).__name__ != "InputError":
        raise
    sys.stderr.write(f"report.py: {e}\n")
    sys.exit(2)

PROG = "report.py"


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description="One HTML page (or a text summary) from kmesh-e2e evidence bundles.")
    ap.add_argument("paths", nargs="+", metavar="PATH",
                    help="bazel-testlogs folder, a test's outputs.zip, a folder of bundles, or one evidence.json")
    ap.add_argument("--out", metavar="FILE.html", help="where to write the page (default kmesh-e2e-report.html "
                    "unless --summary alone is asked; '-' for stdout)")
    ap.add_argument("--summary", action="store_true", help="print per-suite counts and each failed case's first lines")
    args = ap.parse_args(argv)
    # `bazel run` starts us in the runfiles tree; paths the user typed are relative to where they typed them.
    wd = os.environ.get("BUILD_WORKING_DIRECTORY")
    if wd:
        os.chdir(wd)
    try:
        run = collect(args.paths)
    except InputError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    if args.summary:
        sys.stdout.write(summary_text(run))
    out = args.out or (None if args.summary else "kmesh-e2e-report.html")
    if out:
        page = Page(run, None if out == "-" else out).render()
        if out == "-":
            sys.stdout.write(page)
        else:
            try:
                with open(out, "w", encoding="utf-8") as f:
                    f.write(page)
            except OSError as e:
                sys.stderr.write(f"{PROG}: cannot write {out}: {e.strerror}\n")
                return 2
            failed = sum(1 for b in run.bundles if b.failed)
            reproduced = sum(1 for b in run.bundles if b.reproduced)
            apart = f", {reproduced} reproduced a Kmesh defect" if reproduced else ""
            sys.stderr.write(f"{PROG}: wrote {os.path.abspath(out)} ({len(run.bundles)} cases, {failed} failed{apart})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

