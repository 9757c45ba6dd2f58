"""Unit tier for tools/report (no browser): finding bundles in folders and zips, counting each once, pairing
them with JUnit, bad inputs, secrets, escaping, unknown sections, and the --summary text.

The fixtures (testdata/report, see its README) are real bundles of //e2e/authz:authz_test on Kmesh's datapath
(four reproduce Kmesh defects; one failed under an injected lab fault), of the same suite against a Kmesh checkout
that fixes D8, and of //e2e/ipsec:ipsec_test, plus three hand-written edge cases.
"""
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import unittest
import zipfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when run directly
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testing  # noqa: E402
import report  # noqa: E402
from testing import (EDGE, EXPECTED, EXPECTED_FIXED, KMESH_FIXED, MUTATION, MUTATION_CONTROL_BUNDLES,  # noqa: E402
                     MUTATION_FAULT_BUNDLES, MUTATION_OUTPUTS, RAW_KEY, REPORT_PY, TESTLOGS, bazel_layout, status_of,
                     step_timeout_s, tmpdir, zip_outputs)


def cli(*args, cwd=None):
    p = subprocess.run([sys.executable, REPORT_PY, *args], capture_output=True, text=True,
                       timeout=step_timeout_s(), cwd=cwd)
    return p.returncode, p.stdout, p.stderr


class Discovery(unittest.TestCase):
    def test_fixture_table_matches_the_files(self):
        for root, table in ((TESTLOGS, EXPECTED), (KMESH_FIXED, EXPECTED_FIXED)):
            self.assertEqual(testing.fixture_statuses(root), table, root)

    def test_testlogs_folder(self):
        run = report.collect([TESTLOGS])
        got = {b.title: (b.suite, status_of(b)) for b in run.bundles}
        self.assertEqual(got, EXPECTED)
        by_title = {b.title: b for b in run.bundles}
        self.assertEqual(by_title["port-deny: listed port"].target, "//e2e/authz:authz_test")
        self.assertEqual(by_title["connectivity"].target, "//e2e/ipsec:ipsec_test")
        # JUnit pairs each bundle with its Catch2 test case (folder name mangling included: "Kmesh's").
        self.assertEqual(by_title["connectivity"].catch2_case, "ipsec: connectivity across nodes is encrypted in Kmesh's layout")
        self.assertEqual(by_title["wlpolicy-residue"].catch2_case,
                         "authz/wlpolicy-residue: removing a workload's last policy removes its km_wlpolicy entry")
        self.assertEqual(by_title["port-deny: listed port"].junit.failures[0],
                         "e2e/authz/authz_test.cc:513: CHECK( j.ok ) with expansion false\n  with port-deny: listed port")
        self.assertEqual(run.junit_counts, {"//e2e/authz:authz_test": (7, 1), "//e2e/ipsec:ipsec_test": (3, 2)})
        self.assertEqual([w for w in run.warnings if "Kmesh defect" in w], [])  # bundles and Catch2 tags agree
        # fault recovery failed in Catch2 and none of its bundles is in the fixtures: reported on its own.
        self.assertEqual([(t, c.name) for t, c in run.junit_orphans],
                         [("//e2e/ipsec:ipsec_test", "ipsec: fault recovery after a dataplane restart and a deleted state")])
        # pcaps beside a bundle are found
        self.assertEqual(sorted(a.name for a in by_title["connectivity"].artifacts),
                         ["request-node1-underlay.pcap", "request-node2-underlay.pcap", "request-sanity-httpbin.pcap"])

    def test_outputs_zip_alone_and_in_testlogs(self):
        d = tmpdir()
        out = bazel_layout(d)
        zip_path = os.path.join(out, "test.outputs", "outputs.zip")
        for path in (zip_path, os.path.join(d, "testlogs")):
            run = report.collect([path])
            self.assertEqual({b.title for b in run.bundles}, {"connectivity", "key-rotation"}, path)
            self.assertTrue(all(b.target == "//e2e/ipsec:ipsec_test" for b in run.bundles), path)
            conn = next(b for b in run.bundles if b.title == "connectivity")
            self.assertIn(" › ipsec__connectivity_across_nodes_is_encrypted_in_Kmesh_s_layout/connectivity/evidence.json",
                          conn.where)
            self.assertEqual(len(conn.artifacts), 3)
            self.assertTrue(all(a.zip_path and a.member.endswith(".pcap") for a in conn.artifacts))
            self.assertEqual(len(run.junit_orphans), 1)

    def test_same_bundle_unzipped_and_zipped_counts_once(self):
        d = tmpdir()
        bazel_layout(d, keep_folder=True)
        run = report.collect([os.path.join(d, "testlogs")])
        self.assertEqual(sorted(b.title for b in run.bundles), ["connectivity", "key-rotation"])
        # ... and the folder copy wins, so pcap links point at plain files
        self.assertTrue(all(a.path for b in run.bundles for a in b.artifacts))
        # the same input twice is still one run
        self.assertEqual(len(report.collect([TESTLOGS, TESTLOGS]).bundles), len(EXPECTED))

    def test_shard_folders_keep_the_label(self):
        self.assertEqual(report.target_label("/x/bazel-out/k8-fastbuild/testlogs/e2e/authz/authz_test/test.outputs"),
                         "//e2e/authz:authz_test")
        self.assertEqual(report.target_label("/x/testlogs/e2e/authz/authz_test/shard_2_of_4/test.outputs"),
                         "//e2e/authz:authz_test (shard_2_of_4)")

    def test_case_folder_name_matches_the_cc_one(self):
        # e2e/framework/case_output.cc: [A-Za-z0-9._-] kept, anything else '_'
        cases = [("authz: a/b x", "authz__a_b_x"), ("Kmesh's", "Kmesh_s"), ("..", "_.."), ("", "_"), ("a.b-c_d", "a.b-c_d")]
        for name, folder in cases:
            self.assertEqual(report.case_folder_name(name), folder, name)


class BadInput(unittest.TestCase):
    def test_unusable_paths_are_named_with_what_was_expected(self):
        d = tmpdir()
        empty = os.path.join(d, "empty")
        os.makedirs(os.path.join(empty, "sub"))
        with open(os.path.join(empty, "sub", "notes.txt"), "w") as f:
            f.write("x")
        text = os.path.join(d, "run.log")
        with open(text, "w") as f:
            f.write("not a bundle\n")
        corrupt = os.path.join(d, "outputs.zip")
        with open(corrupt, "wb") as f:
            f.write(b"PK\x03\x04 truncated")
        nobundle = os.path.join(d, "other.zip")
        with zipfile.ZipFile(nobundle, "w") as z:
            z.writestr("readme.txt", "hello")
        missing = os.path.join(d, "no-such-dir")
        table = [
            (missing, [missing, "no such file or folder", "bazel-testlogs"]),
            (empty, [empty, "no evidence.json under this folder", "1 files"]),
            (text, [text, "neither a zip nor a .json bundle"]),
            (corrupt, [corrupt, "neither a zip nor a .json bundle"]),  # zipfile does not even see a zip here
            (nobundle, [nobundle, "1 files, none named evidence.json"]),
        ]
        for path, words in table:
            rc, out, err = cli("--summary", path)
            self.assertEqual(rc, 2, f"{path}: rc {rc}, stderr {err}")
            self.assertEqual(out, "", path)
            for w in words:
                self.assertIn(w, err, f"{path}: {err!r} lacks {w!r}")

    def test_a_zip_that_breaks_while_reading(self):
        d = tmpdir()
        good = os.path.join(d, "outputs.zip")
        with zipfile.ZipFile(good, "w") as z:
            z.writestr("c/r/evidence.json", '{"suite":"s","title":"t","passed":true}')
        with open(good, "rb") as f:
            data = bytearray(f.read())
        data[-10:] = b"\0" * 10  # the central directory's end record is damaged
        with open(good, "wb") as f:
            f.write(data)
        rc, _, err = cli("--summary", good)
        self.assertEqual(rc, 2)
        self.assertIn(good, err)

    def test_broken_bundles_become_failed_cases_that_say_why(self):
        run = report.collect([EDGE])
        by = {os.path.basename(os.path.dirname(b.where)): b for b in run.bundles}
        self.assertEqual(set(by), {"raw-key-and-new-sections", "truncated", "no-title"})
        self.assertFalse(by["truncated"].passed)
        self.assertRegex(by["truncated"].problem, r"truncated/evidence\.json: not valid JSON at line 5, column \d+")
        self.assertFalse(by["no-title"].passed)
        self.assertIn("no-title/evidence.json: missing title", by["no-title"].problem)
        self.assertTrue(by["raw-key-and-new-sections"].passed)
        # a bundle that says passed but lists failures is failed
        b = report.Bundle(doc={"suite": "s", "title": "t", "passed": True, "failures": ["x"]}, where="w", target="t")
        self.assertFalse(b.passed)
        doc, problem = report.parse_bundle(b'{"suite":"s","title":"t","passed":"yes"}', "here")
        self.assertIn("here: 'passed' is \"yes\", expected true or false", problem)


class Page(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tmpdir()
        cls.out = os.path.join(cls.dir, "r.html")
        rc, cls.stdout, cls.stderr = cli("--out", cls.out, TESTLOGS, EDGE)
        assert rc == 0, cls.stderr
        with open(cls.out, encoding="utf-8") as f:
            cls.html = f.read()

    def test_raw_keys_never_reach_the_page(self):
        self.assertNotIn(RAW_KEY, self.html)
        self.assertNotIn(RAW_KEY, self.html.lower())
        fp = hashlib.sha256(bytes.fromhex(RAW_KEY)).hexdigest()[:16]
        self.assertIn(f"sha256:{fp}", self.html)
        self.assertIn("secrets[0].aeadKey", self.html)  # the warning names where it was
        # redaction leaves fingerprints and ids alone
        doc = {"id_key": "ns/p", "aead": {"key": "sha256:466879dfcb54b93b", "key_bits": 128},
               "raw": {"key": "0x" + RAW_KEY}, "note": RAW_KEY}
        found = []
        red = report.redact(doc, "", found)
        self.assertEqual(found, ["raw.key"])
        self.assertEqual(red["aead"], doc["aead"])
        self.assertEqual(red["id_key"], "ns/p")
        self.assertTrue(red["raw"]["key"].startswith("sha256:"))

    def test_bundle_text_is_escaped(self):
        self.assertNotIn("markup <b>in</b> a title", self.html)
        self.assertIn("markup &lt;b&gt;in&lt;/b&gt; a title &amp; &quot;quotes&quot;", self.html)

    def test_unknown_sections_show_as_json(self):
        self.assertRegex(self.html, r"<details class=\"json\"><summary>future_section</summary><pre>\{\s*&quot;answer&quot;: 42")
        self.assertIn("rotation_ms", self.html)
        self.assertIn("XfrmInNoStates", self.html)

    def test_nothing_is_fetched(self):
        for pattern in (r"<link\b", r"<img\b", r"@import", r"(src|href)=\"(https?:)?//", r"url\("):
            self.assertIsNone(re.search(pattern, self.html), pattern)

    def test_pcaps_are_linked_relative_to_the_page(self):
        rel = os.path.relpath(os.path.join(TESTLOGS, "e2e/ipsec/ipsec_test/test.outputs/"
                                           "ipsec__connectivity_across_nodes_is_encrypted_in_Kmesh_s_layout/connectivity/"
                                           "request-node1-underlay.pcap"), self.dir)
        self.assertIn(f'href="{rel}"', self.html)
        self.assertIn("elsewhere-node1-underlay.pcap</span> <span class=\"muted\">(not among the outputs)", self.html)

    def test_counts_and_stderr_line(self):
        self.assertIn(f"wrote {self.out} (12 cases, 4 failed, 4 reproduced a Kmesh defect)", self.stderr)
        self.assertIn('data-cases="12" data-failed="4" data-defects="4"', self.html)

    def test_bazel_run_paths_are_relative_to_where_the_user_typed(self):
        d = tmpdir()
        env = dict(os.environ, BUILD_WORKING_DIRECTORY=d)
        shutil.copytree(EDGE, os.path.join(d, "bundles"))
        p = subprocess.run([sys.executable, REPORT_PY, "--out", "x.html", "bundles"], capture_output=True, text=True,
                           env=env, cwd="/", timeout=step_timeout_s())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.isfile(os.path.join(d, "x.html")))


class Summary(unittest.TestCase):
    def test_one_screen(self):
        rc, out, err = cli("--summary", TESTLOGS)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^kmesh-e2e evidence: 9 cases, 3 passed, 2 failed, 4 reproduced a Kmesh defect "
                                   r"\(env lab; ")
        self.assertIn("  suite  passed  failed  defects", lines)
        self.assertIn("  authz       2       1        4  FAIL", lines)
        self.assertIn("  ipsec       1       1        0  FAIL", lines)
        self.assertIn("FAILED authz / port-deny: listed port: [listed port] sleep-a -> httpbin (10.244.1.2:50100 -> "
                      "10.244.2.2:9090)  (+1 more)", lines)
        self.assertIn("         disagree: client saw ok(200), expected connect_timeout (SYN dropped by XDP) [syn_not_dropped]",
                      lines)
        self.assertTrue(any(l.startswith("FAILED ipsec / key-rotation: [after rotation] xfrm layout did not converge")
                            for l in lines), out)
        self.assertIn('FAILED //e2e/ipsec:ipsec_test "ipsec: fault recovery after a dataplane restart and a deleted state" '
                      "(Catch2) without a failed bundle: e2e/ipsec/ipsec_test.cc:261: REQUIRE( WaitLayout(w, c, w.spi, "
                      '"before restart").report.ok() ) with expansion false', lines)
        self.assertLess(len(lines), 30)
        self.assertFalse(os.path.exists("kmesh-e2e-report.html"))  # --summary alone writes no page

    def test_all_passed_and_long_failure_lists_stay_short(self):
        b = [report.Bundle(doc={"suite": "s", "title": f"t{i}", "passed": False, "failures": [f"why {i}"]}, where="w",
                           target="t") for i in range(30)]
        text = report.summary_text(report.Run(b, [], {}, [], []))
        self.assertEqual(text.count("\nFAILED "), 20)
        self.assertIn("... and 10 more failed cases (see the HTML report)", text)
        ok = report.Run([report.Bundle(doc={"suite": "s", "title": "t", "passed": True}, where="w", target="t")], [], {}, [], [])
        self.assertNotIn("FAILED", report.summary_text(ok))


def section_html(page: str, section_id: str) -> str:
    m = re.search(rf'<section id="{section_id}".*?</section>', page, re.S)
    assert m, f"no <section id={section_id}> on the page"
    return html.unescape(m.group(0))


def case_html(page: str, title: str):
    """A case's <details> on the page, up to the next case (its body holds <details> of its own)."""
    return re.search(rf'<details class="case [a-z]+"[^>]*data-title="{re.escape(html.escape(title))}"[^>]*>.*?'
                     rf'(?=<details class="case |</main>)', page, re.S)


class KmeshDefects(unittest.TestCase):
    """Cases tagged [kmesh-defect][Dn][!shouldfail] are counted apart; one that passes is a failure; the header
    names the datapath every case ran on. Real bundles: the pinned Kmesh, and a checkout that fixes D8."""

    @classmethod
    def setUpClass(cls):
        cls.found = report.collect([TESTLOGS, KMESH_FIXED])
        cls.page = report.Page(cls.found, None).render()
        cls.summary = report.summary_text(cls.found)

    def fixed(self, title):
        return next(b for b in self.found.bundles if b.title == title and b.datapath and "KMESH_SRC" in b.datapath["tree_found_by"])

    def test_reproduced_defects_are_neither_passed_nor_failed(self):
        statuses = sorted(status_of(b) for b in self.found.bundles)
        self.assertEqual(statuses, ["defect D2", "defect D5", "defect D6", "defect D7", "failed", "failed", "failed",
                                    "passed", "passed", "passed", "passed"])
        for b in self.found.bundles:
            if b.reproduced:
                self.assertFalse(b.bundle_passed, b.title)
                self.assertFalse(b.defect.from_junit, b.title)
                self.assertRegex(b.defect.kmesh_source, r"\.(h|c|go):\d+", b.title)  # a Kmesh file:line
                self.assertTrue(b.defect.what, b.title)
                self.assertEqual(b.junit.properties, {"kmesh_defect": b.defect.code, "outcome": "failed as expected"})
        self.assertIn("Kmesh defects reproduced: 4 cases, 4 defects (D2, D5, D6, D7); see docs/kmesh-offload-contract.md",
                      self.summary.splitlines())

    def test_a_defect_that_no_longer_reproduces_is_a_failure(self):
        b = self.fixed("zero-byte-id-deny: selected client")
        self.assertTrue(b.bundle_passed)  # the case passed: Kmesh at a994e77 stores the policy id whole
        self.assertEqual(b.status, "failed")
        self.assertEqual(b.defect.code, "D8")
        self.assertTrue(b.explanations[0].startswith("Kmesh defect D8 no longer reproduces: the case passed"))
        self.assertEqual(b.junit.properties["outcome"], "passed although expected to fail")
        self.assertNotIn(b.junit.name, [c.name for _, c in self.found.junit_orphans])  # its JUnit failure is explained
        lines = self.summary.splitlines()
        i = lines.index("FAILED authz / zero-byte-id-deny: selected client: Kmesh defect D8 no longer reproduces: the "
                        "case passed (fixed in Kmesh? then drop its [!shouldfail] tag and its defect from "
                        "docs/kmesh-offload-contract.md)")
        self.assertEqual(lines[i + 1], "         D8: " + b.defect.what + " [" + b.defect.kmesh_source + "]")
        sec = section_html(self.page, "defects")
        self.assertIn("1 defect cases no longer reproduce (failures)", sec)
        row = re.search(r'<tr id="defect-D8">.*?</tr>', self.page, re.S).group(0)
        self.assertIn("NO LONGER REPRODUCES", row)
        self.assertRegex(self.page, r'<details class="case failed"[^>]*data-title="zero-byte-id-deny: selected client" '
                                    r'data-defect="D8" open>')

    def test_summary_lists_each_defect_with_what_source_and_evidence(self):
        lines = self.summary.splitlines()
        for b in (b for b in self.found.bundles if b.reproduced):
            d = b.defect
            self.assertIn(f"  {d.code} {d.what} [{d.kmesh_source}]", lines)
            self.assertIn(f"      authz / {b.title}: {report.first_lines(b)[-1].strip()}", lines)
        self.assertIn("      authz / ip-list-deny-4th: client 4th in the list: disagree: client saw read_timeout, "
                      "expected connect_timeout (SYN dropped by XDP) [syn_not_dropped]", lines)

    def test_the_defects_line_is_the_one_tools_test_prints(self):
        # tools/test_summary.py counts the same cases from JUnit alone: the two must say the same.
        bep = os.path.join(tmpdir(), "bep.json")
        with open(bep, "w") as f:
            for label, xml in (("//e2e/authz:authz_test", "e2e/authz/authz_test/test.xml"),
                               ("//e2e/ipsec:ipsec_test", "e2e/ipsec/ipsec_test/test.xml")):
                f.write(json.dumps({"id": {"testResult": {"label": label}},
                                    "testResult": {"status": "PASSED", "testActionOutput": [
                                        {"name": "test.xml", "uri": "file://" + os.path.join(TESTLOGS, xml)}]}}) + "\n")
        p = subprocess.run([sys.executable, os.path.join(testing.ROOT, "tools", "test_summary.py"), bep],
                           capture_output=True, text=True, timeout=step_timeout_s())
        self.assertEqual(p.returncode, 0, p.stderr)
        theirs = [l for l in p.stdout.splitlines() if l.startswith("Kmesh defects reproduced:")]
        self.assertEqual(theirs, [report.defects_line(report.collect([TESTLOGS]))])

    def test_header_names_the_datapath_of_every_case(self):
        sec = section_html(self.page, "datapath")
        self.assertIn("Datapath 1: ", sec)
        self.assertIn("Datapath 2: ", sec)  # the pinned Kmesh and the D8-fixed checkout
        labs = 0
        for b in self.found.bundles:
            d = b.datapath
            if d is None:
                self.assertEqual(b.suite, "ipsec")  # the ipsec fixtures predate the field
                continue
            for key in ("pinned_commit", "tree", "tree_found_by", "tree_digest", "object", "object_sha256", "clang",
                        "userspace", "waypoint"):
                self.assertIn(d[key], sec, f"{b.title}: {key}")
            if d["kmesh_commit"] != "snapshot":
                self.assertIn(d["kmesh_commit"], sec)
            for node, info in d["nodes"].items():
                self.assertIn(info["pin_dir"], sec)
                for prog in info["programs"]:
                    # one row per program: name, id, tag (and the verifier's count for the XDP ones)
                    self.assertRegex(sec, rf'{re.escape(prog["name"])}</td><td class="num">{prog["id"]}</td>'
                                          rf'<td class="mono">{prog["tag"]}</td>', f"{node} {prog}")
                    labs += 1
        self.assertIn("the lab's stand-in for Kmesh's Go daemon", sec)
        self.assertIn("2 cases name no datapath (ipsec)", sec)
        dps, unnamed = report.datapaths(self.found)
        self.assertEqual([len(dp.labs) for dp in dps], [2, 1])  # the fault run had its own lab
        self.assertEqual(len(unnamed), 2)
        self.assertIn("datapath: Kmesh snapshot of the pinned commit ec501a9887b5 (/work/shared/kmesh, the machine's "
                      "snapshot at the pinned commit; digest sha256:90b4fec5cf3b3666 matches pinned snapshot); "
                      "third_party/kmesh/xdp.o sha256:40f5830c90763c6a, Debian clang version 19.1.7 (3~deb12u1)",
                      self.summary.splitlines())
        self.assertIn("datapath: Kmesh a994e77b8446 (pinned: ec501a9887b5) (/tmp/h6-kmesh-d8fixed, KMESH_SRC; digest "
                      "sha256:de0be2c6cb051289 differs)", self.summary)
        # each case says which datapath it ran on
        self.assertEqual(self.page.count('class="muted small datapath-line"'), 9)

    def test_page_lists_each_defect_with_its_evidence(self):
        sec = section_html(self.page, "defects")
        self.assertIn("Kmesh defects reproduced: 4 cases, 4 defects (D2, D5, D6, D7)", sec)
        idx = {id(b): i for i, b in enumerate(self.found.bundles)}
        for b in self.found.bundles:
            if b.defect is None:
                continue
            row = html.unescape(re.search(rf'<tr id="defect-{b.defect.code}">.*?</tr>', self.page, re.S).group(0))
            self.assertIn(b.defect.what, row)
            self.assertIn(b.defect.kmesh_source, row)
            self.assertIn(f'href="#case-{idx[id(b)]}"', row)
            self.assertIn(b.explanations[0], row)  # the evidence paragraph, whole
        # a reproduced case is folded, marked as the defect, and opens to the defect and its evidence
        m = case_html(self.page, "namespace-deny: selected namespace")
        self.assertIsNotNone(m)
        self.assertTrue(m.group(0).startswith('<details class="case defect"'))
        self.assertNotRegex(m.group(0)[:300], r"data-defect=\"D2\" open")
        self.assertIn('<span class="badge defect" title="Kmesh defect D2 reproduced">DEFECT D2</span>', m.group(0))
        self.assertIn("Evidence: what the case saw instead of Kmesh&#x27;s contract", m.group(0))
        self.assertNotIn("kmesh_defect", m.group(0))  # rendered as its own section, not as unknown evidence

    def test_disagreement_codes_are_chips(self):
        # e2e/framework/expect.h's machine-readable codes: the case's list, and each probe's
        for b in self.found.bundles:
            codes = b.doc.get("disagreements") or []
            m = case_html(self.page, b.title)
            self.assertIsNotNone(m, b.title)
            chips = re.findall(r'<span class="chip code">([^<]*)</span>', m.group(0))
            probe_codes = [c for p in b.probes for c in (p.get("disagreement_codes") or [])]
            self.assertEqual(chips, codes + probe_codes, b.title)
            self.assertNotIn("Other evidence", m.group(0) if codes else "")
        by = {b.title: b for b in self.found.bundles}
        self.assertEqual(by["namespace-deny: selected namespace"].doc["disagreements"], ["decided_in_xdp"])

    def test_bundle_and_catch2_tag_disagreements_are_named(self):
        d = tmpdir()
        target = os.path.join(d, "testlogs", "e2e", "x", "x_test")
        cases = {  # Catch2 case name -> (bundle's kmesh_defect code or None, JUnit property or None, bundle passed)
            "x/tag-differs": ("D3", "D4", False),
            "x/untagged": ("D5", None, False),
            "x/junit-only": (None, "D9", False),
        }
        tcs = ""
        for name, (code, prop, passed) in cases.items():
            folder = os.path.join(target, "test.outputs", report.case_folder_name(name), "row")
            os.makedirs(folder)
            doc = {"suite": "x", "title": name, "passed": passed, "failures": [] if passed else ["why " + name]}
            if code:
                doc["kmesh_defect"] = {"code": code, "what": "w", "kmesh_source": "k.c:1"}
            with open(os.path.join(folder, "evidence.json"), "w") as f:
                json.dump(doc, f)
            props = (f'<properties><property name="kmesh_defect" value="{prop}"/><property name="outcome" '
                     f'value="failed as expected"/></properties>') if prop else ""
            fail = "" if prop else "<failure message='m'>m</failure>"
            tcs += f'<testcase name="{name}">{props}{fail}</testcase>'
        with open(os.path.join(target, "test.xml"), "w") as f:
            f.write(f"<testsuites><testsuite>{tcs}</testsuite></testsuites>")
        run = report.collect([os.path.join(d, "testlogs")])
        text = "\n".join(run.warnings)
        self.assertIn('"x/tag-differs": its bundle reproduces Kmesh defect D3, its Catch2 tag says D4', text)
        self.assertIn('"x/untagged": its bundle names Kmesh defect D5 but the Catch2 case has no '
                      "[kmesh-defect][D5][!shouldfail] tag", text)
        by = {b.title: b for b in run.bundles}
        self.assertEqual(status_of(by["x/junit-only"]), "defect D9")  # the tag alone makes it a defect case
        self.assertTrue(by["x/junit-only"].defect.from_junit)
        self.assertIn("(the bundle does not say what; see docs/kmesh-offload-contract.md)", report.summary_text(run))


class Mutation(unittest.TestCase):
    """e2e/mutation's score (mutation.json of a real run, testdata/report/mutation) as a section of the page; the
    bundles its fault runs wrote are never ordinary cases, the control run's are, labelled."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MUTATION_OUTPUTS, "mutation.json")) as f:
            cls.doc = json.load(f)
        cls.got = report.collect([MUTATION])
        cls.page = report.Page(cls.got, None).render()

    def test_fixture_is_the_recorded_score(self):
        # As the test wrote it: the score block agrees with the rows (no row was edited or dropped).
        faults = self.doc["faults"]
        score = self.doc["score"]
        self.assertEqual(self.doc["kind"], "kmesh-e2e mutation score")
        self.assertEqual(score["killed"], sum(1 for f in faults if f["killed"]))
        self.assertEqual(score["total"], len(faults) - score["equivalent"])
        self.assertEqual(score["known_survivors"], sum(1 for f in faults if f["status"] == "survived (known)"))
        self.assertTrue(self.doc["control"]["passed"])
        kept = {}
        for dirpath, _, files in os.walk(os.path.join(MUTATION_OUTPUTS, "mutation")):
            if "evidence.json" in files:
                with open(os.path.join(dirpath, "evidence.json")) as f:
                    b = json.load(f)
                kept.setdefault(b["fault_run"], []).append(b["title"])
        self.assertEqual(kept, dict(MUTATION_FAULT_BUNDLES, control=MUTATION_CONTROL_BUNDLES))

    def test_the_score_is_found_with_its_fault_runs(self):
        self.assertEqual(len(self.got.mutations), 1)
        m = self.got.mutations[0]
        self.assertEqual(m.problem, "")
        self.assertEqual(m.target, "//e2e/mutation:mutation_test")
        self.assertEqual(m.score_line(), self.doc["score"]["text"])
        self.assertEqual({k: sorted(b.title for b in v) for k, v in m.fault_bundles.items()}, MUTATION_FAULT_BUNDLES)
        self.assertEqual([b.title for b in m.control_bundles], MUTATION_CONTROL_BUNDLES)

    def test_fault_run_bundles_are_not_cases_the_control_run_is(self):
        # Ordinary cases: the mutation test's own bundle and the control run's, nothing from a fault run.
        self.assertEqual(sorted((b.suite, b.title, b.fault_run) for b in self.got.bundles),
                         [("authz", t, "control") for t in MUTATION_CONTROL_BUNDLES] + [("mutation", "score", "")])
        self.assertEqual(sorted(b.fault_run for b in self.got.fault_runs),
                         sorted(k for k, v in MUTATION_FAULT_BUNDLES.items() for _ in v))
        cases = re.findall(r'<details class="case [^"]*"[^>]*data-title="([^"]*)"', self.page)
        self.assertEqual(sorted(html.unescape(t) for t in cases), sorted(MUTATION_CONTROL_BUNDLES + ["score"]))
        control = case_html(self.page, MUTATION_CONTROL_BUNDLES[0]).group(0)
        self.assertIn("mutation control run", control)
        self.assertRegex(control, r'<summary><span><span class="badge ok">PASS</span> <span class="badge warn"[^>]*>control</span>')
        # The score bundle's copy of the document points at the section instead of dumping it.
        score = case_html(self.page, "score").group(0)
        self.assertIn('href="#mutation"', score)
        self.assertNotIn("Other evidence", score)

    def test_table_has_every_fault_with_case_code_and_expected_code(self):
        m = re.search(r'<section id="mutation" class="mutation">.*?</section>', self.page, re.S)
        self.assertIsNotNone(m, "no Mutation testing section")
        sec = m.group(0)
        self.assertIn(html.escape(self.doc["score"]["text"]), sec)
        self.assertIn(f'<div class="v">{self.doc["score"]["killed"]} / {self.doc["score"]["total"]}</div>', sec)
        for f in self.doc["faults"]:
            row = re.search(r'<tr id="mutation-fault-%s"[^>]*>(.*?)</tr>' % re.escape(f["id"]), sec, re.S)
            self.assertIsNotNone(row, f["id"])
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
            self.assertEqual(len(cells), 7, f["id"])
            self.assertEqual(cells[1], f["kind"], f["id"])
            self.assertIn(html.escape(f["status"]), cells[2], f["id"])
            for k in f["caught_by"]:
                self.assertIn(html.escape(k["case"]), cells[3], f["id"])
            got = re.findall(r'<span class="chip code">([^<]*)</span>', cells[4])
            self.assertEqual(got, [c for k in f["caught_by"] for c in k["codes"]], f["id"])
            self.assertEqual(re.findall(r'<span class="chip code">([^<]*)</span>', cells[5]), f["expected_codes"])
            # A fault whose run's bundles are in the fixture opens to them.
            n = len(MUTATION_FAULT_BUNDLES.get(f["id"], []))
            self.assertEqual(f"bundle of this fault" in cells[0], n == 1, f["id"])

    def test_survivors_and_equivalents_are_apart_with_their_reasons(self):
        surv = [f for f in self.doc["faults"] if f["status"] == "survived (known)"]
        equi = [f for f in self.doc["faults"] if f["status"] == "equivalent"]
        self.assertTrue(surv and equi, "the recorded run has a known survivor and an equivalent mutant")
        for kind, faults in (("survivor", surv), ("equivalent", equi)):
            for f in faults:
                li = re.search(r'<li id="%s-%s">.*?</li>' % (kind, re.escape(f["id"])), self.page, re.S)
                self.assertIsNotNone(li, f["id"])
                self.assertIn(html.escape(f[kind]), li.group(0))
        self.assertIn(f'id="mutation-survivors"><div class="v">{len(surv)}</div>', self.page)
        self.assertIn(f'id="mutation-equivalents"><div class="v">{len(equi)}</div>', self.page)

    def test_summary_line(self):
        text = report.summary_text(self.got)
        self.assertIn(f"mutation (//e2e/mutation:mutation_test): {self.doc['score']['text']}; control run passed "
                      f"({len(self.doc['control']['cases'])} cases)", text)
        self.assertIn("known survivor shutdown-no-rst: ", text)
        self.assertIn("4 bundles of the mutation runs' fault runs are not counted above", text)
        self.assertIn("kmesh-e2e evidence: 2 cases, 2 passed, 0 failed", text)

    def test_zipped_outputs_and_the_bundle_alone(self):
        d = tmpdir()
        out = os.path.join(d, "testlogs", "e2e", "mutation", "mutation_test")
        os.makedirs(os.path.join(out, "test.outputs"))
        zip_outputs(MUTATION_OUTPUTS, os.path.join(out, "test.outputs", "outputs.zip"))
        run = report.collect([os.path.join(d, "testlogs")])
        self.assertEqual([m.score_line() for m in run.mutations], [self.doc["score"]["text"]])
        self.assertIn("outputs.zip › mutation.json", run.mutations[0].where)
        self.assertEqual(len(run.fault_runs), 4)
        # Unzipped and zipped: one score.
        shutil.copy(os.path.join(MUTATION_OUTPUTS, "mutation.json"), os.path.join(out, "test.outputs"))
        run = report.collect([os.path.join(d, "testlogs")])
        self.assertEqual(len(run.mutations), 1)
        self.assertFalse(run.mutations[0].where.endswith("outputs.zip › mutation.json"))
        # Only the mutation test's bundle: the score comes from its "mutation" field.
        score = next(os.path.join(p, "evidence.json") for p, _, fs in os.walk(MUTATION_OUTPUTS)
                     if "evidence.json" in fs and os.path.basename(p) == "score")
        run = report.collect([score])
        self.assertEqual([m.score_line() for m in run.mutations], [self.doc["score"]["text"]])
        self.assertTrue(run.mutations[0].where.endswith("score/evidence.json"), run.mutations[0].where)
        self.assertIn('<section id="mutation" class="mutation">', report.Page(run, None).render())

    def test_a_mutation_json_of_another_shape_is_shown_raw_and_named(self):
        d = tmpdir()
        with open(os.path.join(d, "mutation.json"), "w") as f:
            json.dump({"kind": "kmesh-e2e mutation score", "faults": "?"}, f)
        rc, out, err = cli("--summary", "--out", os.path.join(d, "r.html"), d)
        self.assertEqual(rc, 0, err)
        self.assertIn("'control' is missing or not an object", out)
        with open(os.path.join(d, "r.html")) as f:
            page = f.read()
        self.assertIn("shown raw", page)


class Schema(unittest.TestCase):
    """The evidence schema is declared once (e2e/framework/evidence_schema.h); the report reads the JSON it prints
    and shows every section it declares."""

    @classmethod
    def setUpClass(cls):
        import collect  # noqa: E402
        import render  # noqa: E402
        cls.collect, cls.render = collect, render
        with open(collect.SCHEMA_PATH, encoding="utf-8") as f:
            cls.text = f.read()
        cls.schema = json.loads(cls.text)

    def test_the_json_is_what_the_header_says(self):
        binary = os.path.join(testing.ROOT, "e2e", "framework", "evidence_schema")
        p = subprocess.run([binary], capture_output=True, text=True, timeout=step_timeout_s())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.text, "e2e/framework/evidence_schema.json is stale: "
                         "bazel run //e2e/framework:evidence_schema > e2e/framework/evidence_schema.json")

    def test_every_section_has_a_place_on_the_page(self):
        self.assertEqual(set(self.render.SECTION_PLACES), set(self.collect.BUNDLE_SECTIONS))
        # What the page reads of a probe and of a policy is the schema's list.
        self.assertIn("disagreement_codes", self.collect.fields_of("probes"))
        self.assertIn("manifest", self.collect.fields_of("policies"))
        self.assertEqual(self.schema["bundle_identity"], ["suite", "title", "passed"])

    def test_real_bundles_hold_only_declared_sections_and_codes(self):
        codes = set(self.schema["disagreement_codes"])
        seen = 0
        for root in (TESTLOGS, KMESH_FIXED, MUTATION):
            for dirpath, _, files in os.walk(root):
                if "evidence.json" not in files:
                    continue
                with open(os.path.join(dirpath, "evidence.json")) as f:
                    d = json.load(f)
                seen += 1
                self.assertEqual(sorted(set(d) - set(self.collect.BUNDLE_SECTIONS)), [], dirpath)
                used = set(d.get("disagreements", [])) | {c for p in d.get("probes", []) if isinstance(p, dict)
                                                          for c in p.get("disagreement_codes", [])}
                self.assertEqual(sorted(used - codes), [], dirpath)
        self.assertGreater(seen, 10)
        with open(os.path.join(MUTATION_OUTPUTS, "mutation.json")) as f:
            m = json.load(f)
        self.assertEqual(m["kind"], self.schema["mutation_kind"])
        self.assertEqual(sorted(set(m) - set(self.collect.MUTATION_SECTIONS)), [])
        row_fields = set(self.collect.MUTATION_SECTIONS["faults"]["fields"])
        for f in m["faults"]:
            self.assertEqual(sorted(set(f) - row_fields), [], f["id"])
            self.assertEqual(sorted(set(f["expected_codes"]) - codes), [], f["id"])

    def test_a_section_outside_the_schema_is_named(self):
        rc, _, err = cli("--out", os.path.join(tmpdir(), "r.html"), EDGE)
        self.assertEqual(rc, 0, err)
        page = report.Page(report.collect([EDGE]), None).render()
        self.assertIn("not in the evidence schema (e2e/framework/evidence_schema.h): future_section", page)

    def test_a_missing_schema_is_an_input_error(self):
        d = tmpdir()
        here = os.path.join(d, "tools", "report")
        os.makedirs(here)
        for n in ("collect.py", "render.py", "report.py", "summary.py"):
            shutil.copy(os.path.join(testing.HERE, n), here)
        p = subprocess.run([sys.executable, os.path.join(here, "report.py"), "--summary", EDGE], capture_output=True,
                           text=True, timeout=step_timeout_s())
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("evidence_schema.json: the evidence schema cannot be read", p.stderr)


class Catch2Failures(unittest.TestCase):
    """Bundles written by a real Catch2 binary whose cases fail on purpose (//e2e/framework:case_catch2_fixture):
    a failed CHECK/REQUIRE or an exception inside a Case shows as a failed case that says what Catch2 saw."""

    @classmethod
    def setUpClass(cls):
        fixture = os.path.join(testing.ROOT, "e2e", "framework", "case_catch2_fixture")
        cls.testlogs = os.path.join(tmpdir(), "testlogs")
        target = os.path.join(cls.testlogs, "e2e", "framework", "case_catch2_fixture")
        os.makedirs(os.path.join(target, "test.outputs"))
        env = dict(os.environ, TEST_UNDECLARED_OUTPUTS_DIR=os.path.join(target, "test.outputs"),
                   XML_OUTPUT_FILE=os.path.join(target, "test.xml"), TESTBRIDGE_TEST_ONLY="")
        p = subprocess.run([fixture, "~[.crash]"], env=env, capture_output=True, text=True, timeout=step_timeout_s())
        assert p.returncode == 6, f"the fixture should fail 6 of its test cases, exited {p.returncode}: {p.stderr}"
        cls.fixture_run = report.collect([cls.testlogs])

    def test_each_failed_catch2_case_is_a_failed_bundle(self):
        got = {b.title: b.passed for b in self.fixture_run.bundles}
        self.assertEqual(got, {"passes": True, "first-passes": True, "check-fails": False, "require-fails": False,
                               "exception-escapes": False, "exception-in-check": False, "fail-and-check": False,
                               "exception-caught-by-test": False, "second-fails": False})
        self.assertEqual(self.fixture_run.junit_orphans, [])  # every failed Catch2 case has a failed bundle

    def test_summary_says_what_catch2_saw(self):
        text = report.summary_text(self.fixture_run)
        self.assertIn("kmesh-e2e evidence: 9 cases, 2 passed, 7 failed", text)
        self.assertRegex(text, r"FAILED fixture / check-fails: Catch2 assertion at e2e/framework/case_catch2_fixture.cc:\d+: "
                               r"CHECK\( Answer\(\) == 42 \) with expansion 41 == 42\n")
        self.assertRegex(text, r"FAILED fixture / exception-escapes: Catch2 exception at [^:]+:\d+: "
                               r"policy 7 never showed up in km_authz_policy\n")
        # An explanation of Case::Fail comes first; the CHECK that followed it is counted as one more.
        self.assertIn("FAILED fixture / fail-and-check: [probe] expected ok(200), client saw connect_timeout  (+1 more)",
                      text)

    def test_page_shows_the_case_failed_with_catch2_text(self):
        page = report.Page(self.fixture_run, None).render()
        m = re.search(r'<details class="case failed"[^>]*data-title="require-fails".*?</details>', page, re.S)
        self.assertIsNotNone(m, "require-fails is not a failed case on the page")
        self.assertIn("Why it failed", m.group(0))
        self.assertIn("REQUIRE( Answer() == 42 ) with expansion 41 == 42", html.unescape(m.group(0)))
        self.assertNotIn("catch2_failures", m.group(0))  # rendered as failures, not as unknown evidence

    def test_a_bundle_claiming_passed_with_catch2_failures_is_failed(self):
        b = report.Bundle(doc={"suite": "s", "title": "t", "passed": True,
                               "catch2_failures": [{"kind": "assertion", "where": "a.cc:3", "text": "CHECK( x )"}]},
                          where="w", target="t")
        self.assertFalse(b.passed)
        self.assertEqual(report.first_lines(b), ["Catch2 assertion at a.cc:3: CHECK( x )"])


if __name__ == "__main__":
    testing.main()
