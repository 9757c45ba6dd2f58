"""What tools/report's tests share: where the fixtures are, what they hold, and Bazel's outputs layout."""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT_PY = os.path.join(HERE, "report.py")
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "testdata", "report")
TESTLOGS = os.path.join(FIXTURES, "testlogs")
EDGE = os.path.join(FIXTURES, "edge")

# The real bundles (testdata/report/README.md): title -> (suite, status as the report must see it: "passed",
# "failed", or "defect Dn" for a case that reproduced Kmesh defect Dn). Kept by hand; a test checks it against
# the files, so a changed fixture cannot silently change what the other tests expect.
EXPECTED = {
    "ip-deny: selected client": ("authz", "passed"),
    "port-deny: listed port": ("authz", "failed"),
    "header-deny: header present": ("authz", "passed"),
    "namespace-deny: selected namespace": ("authz", "defect D2"),
    "ip-list-deny-4th: client 4th in the list": ("authz", "defect D5"),
    "five-policies: client denied by the 5th": ("authz", "defect D6"),
    "wlpolicy-residue": ("authz", "defect D7"),
    "connectivity": ("ipsec", "passed"),
    "key-rotation": ("ipsec", "failed"),
}
# The same suite run against a Kmesh checkout that fixes D8 (testdata/report/kmesh-fixed).
KMESH_FIXED = os.path.join(FIXTURES, "kmesh-fixed", "testlogs")
EXPECTED_FIXED = {
    "ip-deny: selected client": ("authz", "passed"),
    "zero-byte-id-deny: selected client": ("authz", "failed"),  # D8 no longer reproduces
}


def fixture_statuses(root) -> dict:
    """title -> (suite, status in EXPECTED's terms) as the evidence.json files under `root` say it: a bundle that
    reproduced its defect failed; one whose defect is fixed passed (the case then fails: "no longer reproduces")."""
    found = {}
    for dirpath, _, files in os.walk(root):
        if "evidence.json" in files:
            with open(os.path.join(dirpath, "evidence.json")) as f:
                d = json.load(f)
            ok = d["passed"] and not d["failures"] and not d.get("catch2_failures")
            code = (d.get("kmesh_defect") or {}).get("code")
            found[d["title"]] = (d["suite"], ("passed" if ok else "failed") if not code else
                                 ("failed" if ok else f"defect {code}"))
    return found


def status_of(b) -> str:
    """A report.Bundle's status in EXPECTED's terms."""
    return f"defect {b.defect.code}" if b.reproduced else b.status


# A run of //e2e/mutation:mutation_test (testdata/report/mutation, cut down to a few of its bundles; mutation.json
# as recorded): fault id -> the bundles of its run kept in the fixture (their titles).
MUTATION = os.path.join(FIXTURES, "mutation", "testlogs")
MUTATION_OUTPUTS = os.path.join(MUTATION, "e2e", "mutation", "mutation_test", "test.outputs")
MUTATION_FAULT_BUNDLES = {
    "xdp-detached": ["ip-deny: selected client"],
    "port-byte-order": ["port-deny: listed port"],
    "shutdown-no-rst": ["namespace-allow: other namespace"],
    "userspace-tailcall-to-pass": ["namespace-and-ip-allow: other namespace and address"],
}
MUTATION_CONTROL_BUNDLES = ["ip-deny: selected client"]

# The hand-written edge bundles: folder -> (title as the report shows it, passed).
EDGE_EXPECTED = {
    "raw-key-and-new-sections": ('markup <b>in</b> a title & "quotes"', True),
    "truncated": ("(untitled)", False),
    "no-title": ("(untitled)", False),
}
RAW_KEY = "00112233445566778899aabbccddeeff0badcafe"  # in edge/raw-key-and-new-sections, as KMESH_E2E_REVEAL_KEYS writes it


def tmpdir():
    return tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))


def zip_outputs(outputs_dir, zip_path):
    """Zips a test.outputs folder the way Bazel 4 does (paths relative to the folder)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, _, files in os.walk(outputs_dir):
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                z.write(full, os.path.relpath(full, outputs_dir))


def bazel_layout(dest, target="e2e/ipsec/ipsec_test", keep_folder=False):
    """dest/testlogs/<target> as Bazel leaves it: test.xml and test.outputs/outputs.zip (and the unzipped
    folder too when asked, as after a no-sandbox test). Returns the target's folder."""
    src = os.path.join(TESTLOGS, target)
    out = os.path.join(dest, "testlogs", target)
    os.makedirs(os.path.join(out, "test.outputs"))
    shutil.copy(os.path.join(src, "test.xml"), out)
    zip_outputs(os.path.join(src, "test.outputs"), os.path.join(out, "test.outputs", "outputs.zip"))
    if keep_folder:
        for name in os.listdir(os.path.join(src, "test.outputs")):
            shutil.copytree(os.path.join(src, "test.outputs", name), os.path.join(out, "test.outputs", name))
    return out


def step_timeout_s():
    """REPORT_TEST_STEP from base/defaults.h (the one place for timeouts), with its KMESH_E2E_*_MS override."""
    header = os.path.join(ROOT, "base", "defaults.h")
    try:
        with open(header) as f:
            text = f.read()
    except OSError as e:
        raise AssertionError(f"cannot read {header} ({e.strerror}); add //base:defaults.h to the test's data")
    m = re.search(r'Tunable\("REPORT_TEST_STEP",\s*Millis\((\d+)\)\)', text)
    if not m:
        raise AssertionError(f'{header} has no Tunable("REPORT_TEST_STEP", Millis(N)); the report tests need it')
    ms = int(m.group(1))
    override = os.environ.get("KMESH_E2E_REPORT_TEST_STEP_MS", "")
    if re.fullmatch(r"[0-9]+", override) and int(override) > 0:  # garbage keeps the default, as in C++
        ms = int(override)
    return ms / 1000.0


class _Recorder(unittest.TextTestResult):
    """Keeps (test, seconds, failure text or None) for the JUnit file."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.records = []
        self._t0 = 0.0

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def _keep(self, test, failure):
        self.records.append((test, time.monotonic() - self._t0, failure))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._keep(test, None)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._keep(test, self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._keep(test, self.errors[-1][1])


def main():
    """unittest.main, plus one JUnit <testcase> per test in $XML_OUTPUT_FILE (what tools/test counts)."""
    prog = unittest.main(verbosity=2, exit=False, testRunner=unittest.TextTestRunner(resultclass=_Recorder, verbosity=2))
    result = prog.result
    path = os.environ.get("XML_OUTPUT_FILE")
    if path:
        suite = ET.Element("testsuite", name=os.environ.get("TEST_TARGET", "tools/report"), tests=str(result.testsRun),
                           failures=str(len(result.failures) + len(result.errors)), errors="0")
        for test, seconds, failure in getattr(result, "records", []):
            tc = ET.SubElement(suite, "testcase", name=test.id().split(".", 1)[-1], classname=suite.get("name"),
                               time=f"{seconds:.3f}")
            if failure is not None:
                ET.SubElement(tc, "failure", message=failure.strip().splitlines()[-1][:200]).text = failure
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
