"""Unit tier for tools/test_summary.py: a target Bazel failed counts as failed even when its JUnit file
shows only passed cases.

The input is a build event file recorded from a real `bazel test` (testdata/bep, see its README): a target
that aborts at exit and one that hangs at exit until its timeout, both after Catch2 wrote a JUnit file in
which every case passed, beside a plainly passing target.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
SUMMARY = os.path.join(HERE, "test_summary.py")
RECORDED = os.path.join(ROOT, "testdata", "bep")
CRASHED = "//testdata/bep:crashes_after_junit_test"
TIMED_OUT = "//testdata/bep:hangs_after_junit_test"
PASSED = "//e2e/framework:case_output_test"


def run_summary(*args):
    p = subprocess.run([sys.executable, SUMMARY, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


class RecordedRun(unittest.TestCase):
    def setUp(self):
        # The recording with @TESTLOGS@ pointing at a private copy of its JUnit files.
        self.dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.testlogs = os.path.join(self.dir, "testlogs")
        shutil.copytree(os.path.join(RECORDED, "testlogs"), self.testlogs)
        self.bep = os.path.join(self.dir, "run.bep.json")
        with open(os.path.join(RECORDED, "exit_after_junit.bep.json")) as f:
            text = f.read()
        self.assertIn("file://@TESTLOGS@/", text)
        with open(self.bep, "w") as f:
            f.write(text.replace("@TESTLOGS@", self.testlogs))

    def test_recording_is_what_the_test_says(self):
        # Bazel failed two targets whose JUnit shows only passes: the case this tool must not miss.
        status = {}
        with open(self.bep) as f:
            for line in f:
                ev = json.loads(line)
                if "testResult" in ev:
                    status[ev["id"]["testResult"]["label"]] = ev["testResult"]["status"]
        self.assertEqual(status, {CRASHED: "FAILED", TIMED_OUT: "TIMEOUT", PASSED: "PASSED"})
        for label in (CRASHED, TIMED_OUT):
            with open(os.path.join(self.testlogs, label[2:].replace(":", "/"), "test.xml")) as f:
                xml = f.read()
            self.assertIn('tests="2" failures="0"', xml)

    def test_failed_and_timed_out_targets_count_as_failed(self):
        rc, out, err = run_summary(self.bep, "3")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertIn(f"FAILED {CRASHED}: FAILED although its JUnit file shows 2 passed test cases "
                      "(the test crashed or hung after writing it; see its test.log)", lines)
        self.assertIn(f"FAILED {TIMED_OUT}: TIMEOUT although its JUnit file shows 2 passed test cases "
                      "(the test crashed or hung after writing it; see its test.log)", lines)
        self.assertFalse(any(PASSED in l for l in lines), out)
        self.assertEqual(lines[-2], "Catch2 test cases in 3 test targets:")
        passed_cases = 2 + 2 + self.cases_of(PASSED)
        self.assertEqual(lines[-1], f"{passed_cases} passed, 2 failed")

    def test_without_junit_a_failed_target_is_one_failure(self):
        os.remove(os.path.join(self.testlogs, "testdata", "bep", "hangs_after_junit_test", "test.xml"))
        rc, out, _ = run_summary(self.bep, "3")
        self.assertIn(f"FAILED {TIMED_OUT}: TIMEOUT (no test cases recorded)", out.splitlines())
        self.assertTrue(out.endswith(", 2 failed\n"), out)

    def test_target_dirs(self):
        rc, out, _ = run_summary("--target-dirs", self.bep)
        self.assertEqual(rc, 0)
        self.assertEqual(sorted(out.split()), sorted(os.path.join(self.testlogs, l[2:].replace(":", "/"))
                                                     for l in (CRASHED, TIMED_OUT, PASSED)))

    def test_a_build_that_failed_before_any_test_is_never_zero_failed(self):
        empty = os.path.join(self.dir, "empty.bep.json")
        open(empty, "w").close()
        rc, out, _ = run_summary(empty, "1")
        self.assertIn("FAILED bazel exited 1 before tests could run (see the errors above)", out)
        self.assertTrue(out.endswith("0 passed, 1 failed\n"), out)

    def cases_of(self, label):
        with open(os.path.join(self.testlogs, label[2:].replace(":", "/"), "test.xml")) as f:
            return f.read().count("<testcase ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
