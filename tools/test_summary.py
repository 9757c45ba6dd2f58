#!/usr/bin/env python3
"""Counts the Catch2 test cases of one Bazel test run, cached results included.

Reads the run's build event file (bazel test --build_event_json_file=F) for each test target's JUnit file,
prints one line per failed case, the Kmesh defects reproduced (cases tagged [kmesh-defect][Dn][!shouldfail]
that failed as they should: counted apart, neither passed nor failed), then "N passed, N failed" on a line of
its own (the form CI reads).
A target that failed without a readable JUnit file (crash, timeout, missing root) counts as one failure,
and so does a target Bazel failed although its JUnit file shows no failed case: the process crashed or
hung after Catch2 wrote the file (e.g. in teardown at exit), and Bazel's verdict is the one that counts.
"""
import json
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlparse, unquote

# What Bazel counts as a passed test target (FLAKY: failed, then passed on a retry).
PASSING = ("PASSED", "FLAKY")


def junit_files(bep_path):
    """(target label, test.xml path or None, status) for each test result in the event file."""
    with open(bep_path) as f:
        for line in f:
            ev = json.loads(line)
            tr = ev.get("testResult")
            if tr is None:
                continue
            label = ev["id"]["testResult"]["label"]
            xml = None
            for out in tr.get("testActionOutput", []):
                if out.get("name") == "test.xml":
                    xml = unquote(urlparse(out["uri"]).path)
            yield label, xml, tr.get("status", "")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--target-dirs":
        # One line per test target of the run: the folder holding its test.xml and test.outputs.
        import os
        for _label, xml, _status in junit_files(sys.argv[2]):
            if xml:
                print(os.path.dirname(xml))
        return 0
    if len(sys.argv) not in (2, 3):
        print("usage: test_summary.py BUILD_EVENTS.json [BAZEL_EXIT_CODE] | --target-dirs BUILD_EVENTS.json", file=sys.stderr)
        return 2
    bazel_rc = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    passed = failed = 0
    failures = []
    defects = []  # (label, case name, defect code)
    labels = set()
    for label, xml, status in junit_files(sys.argv[1]):
        labels.add(label)
        cases = []
        if xml:
            try:
                cases = list(ET.parse(xml).getroot().iter("testcase"))
            except (OSError, ET.ParseError):
                cases = []
        if not cases:
            if status not in PASSING:
                failed += 1
                failures.append(f"{label}: {status or 'no result'} (no test cases recorded)")
            continue
        case_failed = 0
        for case in cases:
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            if props.get("outcome") == "failed as expected" and case.find("failure") is None:
                defects.append((label, case.get("name"), props.get("kmesh_defect", "?")))
                continue
            if case.find("failure") is not None or case.find("error") is not None:
                case_failed += 1
                failures.append(f"{label}: {case.get('name')}")
            else:
                passed += 1
        failed += case_failed
        if status not in PASSING and case_failed == 0:
            failed += 1
            failures.append(f"{label}: {status or 'no result'} although its JUnit file shows {len(cases)} passed "
                            f"test cases (the test crashed or hung after writing it; see its test.log)")
    if bazel_rc not in (0, 3) and failed == 0:
        # The build (or Bazel itself) failed before any test could: count it, never "0 failed".
        failed += 1
        failures.append(f"bazel exited {bazel_rc} before tests could run (see the errors above)")
    for f in failures:
        print(f"FAILED {f}")
    if defects:
        codes = sorted({d[2] for d in defects}, key=lambda c: (len(c), c))
        print(f"Kmesh defects reproduced: {len(defects)} cases, {len(codes)} defects ({', '.join(codes)}); "
              f"see docs/kmesh-offload-contract.md")
        for label, name, code in defects:
            print(f"  {code} {label}: {name}")
    print(f"Catch2 test cases in {len(labels)} test targets:")
    print(f"{passed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
