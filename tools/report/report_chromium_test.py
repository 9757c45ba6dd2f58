"""The report as a browser sees it: the fixtures (authz unzipped, ipsec only as Bazel's outputs.zip, and the
hand-written edge bundles) rendered by report.py, loaded in headless Chromium, and the DOM Chromium built
after running the page's script checked: every case is there under its title, pass/fail/Kmesh defect marked
right, the totals right, failures open and explained, the datapath named in the header, the reproduced Kmesh
defects listed apart with their evidence, markup from a bundle shown as text.

Needs Debian's chromium (tools/bootstrap installs it); without it the test fails and says so.
"""
import html.parser
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree when run directly
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testing  # noqa: E402
from testing import (EDGE, EDGE_EXPECTED, EXPECTED, REPORT_PY, TESTLOGS, bazel_layout, step_timeout_s,  # noqa: E402
                     tmpdir)

BADGE = {"passed": "PASS", "failed": "FAIL"}  # and "DEFECT Dn" for a reproduced Kmesh defect

CHROMIUM = "/usr/bin/chromium"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find_all(self, tag=None, cls=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes())
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, *a, **kw):
        found = self.find_all(*a, **kw)
        return found[0] if found else None


class Dom(html.parser.HTMLParser):
    """The serialized DOM Chromium prints (well-formed: every non-void element is closed) as a tree."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {})
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def run_chromium(args, profile):
    """One headless Chromium run, bounded; its whole process group is gone afterwards, pass or fail."""
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} not found: the report's browser test needs Debian's chromium "
                             f"(tools/bootstrap installs it)")
    timeout = step_timeout_s()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    env = dict(os.environ, HOME=profile, DBUS_SESSION_BUS_ADDRESS="disabled:")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError(f"chromium did not finish within {timeout:g} s (REPORT_TEST_STEP in base/defaults.h, "
                             f"KMESH_E2E_REPORT_TEST_STEP_MS to override): {' '.join(cmd)}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # helpers (zygote, GPU) it may have left behind
        except ProcessLookupError:
            pass
    if p.returncode != 0:
        raise AssertionError(f"chromium exited {p.returncode}: {' '.join(cmd)}\n{err.decode(errors='replace')[-3000:]}")
    return out.decode("utf-8", errors="replace")


class BrowserView(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        work = tmpdir()
        # authz as an unzipped test.outputs folder, ipsec as a sandboxed test leaves it: outputs.zip only.
        logs = os.path.join(work, "testlogs")
        shutil.copytree(os.path.join(TESTLOGS, "e2e", "authz"), os.path.join(logs, "e2e", "authz"))
        bazel_layout(work, "e2e/ipsec/ipsec_test")
        cls.page = os.path.join(work, "report.html")
        p = subprocess.run([sys.executable, REPORT_PY, "--out", cls.page, logs, EDGE], capture_output=True,
                           text=True, timeout=step_timeout_s())
        if p.returncode != 0:
            raise AssertionError(f"report.py exited {p.returncode}: {p.stderr}")
        cls.dom_text = run_chromium(["--dump-dom", "file://" + cls.page], os.path.join(work, "profile"))
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs:  # for a person looking at a failure: the page and what Chromium made of it
            shutil.copy(cls.page, outputs)
            with open(os.path.join(outputs, "report.dom.html"), "w") as f:
                f.write(cls.dom_text)
        cls.dom = Dom(cls.dom_text).root
        cls.cases = {c.attrs.get("data-title"): c for c in cls.dom.find_all("details", cls="case")}

    def expected(self):
        """title -> "passed" | "failed" | "defect Dn", read from the fixture files themselves (and the hand-kept
        table must agree)."""
        want = {t: st for t, (_, st) in testing.fixture_statuses(TESTLOGS).items()}
        self.assertEqual(want, {t: st for t, (_, st) in EXPECTED.items()})
        want[EDGE_EXPECTED["raw-key-and-new-sections"][0]] = "passed"
        return want

    def test_the_page_script_ran(self):
        body = self.dom.find("body")
        self.assertIsNotNone(body, self.dom_text[:500])
        self.assertEqual(body.attrs.get("data-ready"), "1", "the inline script did not finish")
        self.assertEqual(self.dom.find(id="shown").text(), "12 of 12 shown")

    def test_every_case_is_there_with_its_status(self):
        want = self.expected()
        for title, status in want.items():
            c = self.cases.get(title)
            self.assertIsNotNone(c, f"case {title!r} not in the DOM (cases: {sorted(self.cases, key=str)})")
            summary = c.find("summary")
            self.assertIn(title, summary.find("span", cls="title").text())
            kind, _, code = status.partition(" ")
            self.assertEqual(c.attrs.get("data-status"), kind, title)
            self.assertIn(kind, c.classes(), title)
            self.assertEqual(summary.find("span", cls="badge").text(), BADGE.get(kind, f"DEFECT {code}"), title)
            if code:
                self.assertEqual(c.attrs.get("data-defect"), code, title)
            # failures are open and explained; passes and reproduced defects stay folded
            self.assertEqual("open" in c.attrs, kind == "failed", title)
        # the two broken edge bundles: failed, and saying why
        broken = [c for c in self.dom.find_all("details", cls="case") if c.attrs.get("data-title") == "(untitled)"]
        self.assertEqual(len(broken), 2)
        whys = sorted(c.find("pre", cls="failure").text() for c in broken)
        self.assertIn("no-title/evidence.json: missing title", whys[0])
        self.assertIn("truncated/evidence.json: not valid JSON at line 5", whys[1])

    def test_totals(self):
        failed = [c for c in self.dom.find_all("details", cls="case") if c.attrs.get("data-status") == "failed"]
        self.assertEqual(len(self.dom.find_all("details", cls="case")), 12)
        self.assertEqual(len(failed), 4)  # port-deny, key-rotation, and the two broken edge bundles
        tile = lambda i: self.dom.find(id=i).find("div", cls="v").text()  # noqa: E731
        self.assertEqual((tile("total-cases"), tile("total-passed"), tile("total-failed"), tile("total-defects")),
                         ("12", "4", "4", "4 / 4"))
        self.assertEqual(self.dom.find(id="verdict").text(), "4 of 12 cases failed; 4 reproduced a known Kmesh defect")
        self.assertIn("verdict", self.dom.find(id="verdict").classes())
        self.assertIn("bad", self.dom.find(id="verdict").classes())
        self.assertEqual(tile("envs"), "kube, lab")

    def test_failed_case_shows_the_pairing(self):
        c = self.cases["port-deny: listed port"]
        why = c.find("section", cls="failures")
        self.assertEqual(why.find("h3").text(), "Why it failed")
        text = why.text()
        self.assertIn("client saw ok(200), expected connect_timeout (SYN dropped by XDP)", text)
        self.assertIn("no XDP program attached to eth0", text)
        probes = c.find("section", cls="probes")
        rows = [r for r in probes.find_all("tr") if r.find("td") and r.find("span", cls="badge")]
        self.assertEqual([r.find("span", cls="badge").text() for r in rows], ["FAIL"])
        self.assertEqual(len(probes.find_all("ul", cls="disagree")[0].find_all("li")), 2)
        self.assertEqual([x.text() for x in probes.find_all("span", cls="code")], ["syn_not_dropped", "xdp_not_attached"])
        # Kmesh's userspace half is part of what the kernel side held
        self.assertIn("userspace: deny (DENY policy test-ns1/port-deny-policy matched)", probes.text())
        self.assertIn("0xe972794e", c.find("section", cls="policies").text())

    def test_header_names_the_datapath(self):
        dp = self.dom.find("section", id="datapath")
        self.assertIsNotNone(dp, "no datapath section in the header")
        self.assertIsNotNone(self.dom.find("header").find("section", id="datapath"))
        text = dp.text()
        for want in ("ec501a9887b53899ba2760f69740d3d78434d7c8", "/work/shared/kmesh",
                     "the machine's snapshot at the pinned commit", "matches pinned snapshot",
                     "40f5830c90763c6acb81ed1083abe448248df8e8fdd6b09a98634db4242c7a8b", "Debian clang version 19.1.7",
                     "the lab's stand-in for Kmesh's Go daemon", "the lab's stand-in (no Envoy here)"):
            self.assertIn(want, text)
        tables = dp.find_all("table", cls="programs")
        self.assertEqual(len(tables), 2)  # the suite's lab, and the lab of the run with a fault injected
        rows = [[td.text() for td in tr.find_all("td")] for tr in tables[0].find_all("tr")[1:]]
        # node1's programs as the ip-deny bundle recorded them (the first lab on the page), in its order
        with open(os.path.join(TESTLOGS, "e2e/authz/authz_test/test.outputs/authz_ip-deny__selected_client/"
                                         "ip-deny__selected_client/evidence.json")) as f:
            progs = json.load(f)["datapath"]["nodes"]["node1"]["programs"]
        self.assertEqual([p["name"] for p in progs], ["xdp_authz", "policies_check", "policy_check",
                                                      "xdp_shutdown_in_userspace", "sockops_prog"])
        self.assertEqual([r[-4:-1] for r in rows[:5]], [[p["name"], str(p["id"]), p["tag"]] for p in progs])
        self.assertEqual(rows[0][-1], str(progs[0]["verified_insns"]))
        self.assertEqual(len(rows), 10)  # two nodes, five programs each

    def test_kmesh_defects_are_listed_apart_with_their_evidence(self):
        sec = self.dom.find("section", id="defects")
        self.assertIsNotNone(sec)
        self.assertEqual(sec.find("h2").text(),
                         "Kmesh defects reproduced: 4 cases, 4 defects (D2, D5, D6, D7); see docs/kmesh-offload-contract.md")
        rows = {tr.attrs["id"]: tr for tr in sec.find_all("tr") if tr.attrs.get("id")}
        self.assertEqual(sorted(rows), ["defect-D2", "defect-D5", "defect-D6", "defect-D7"])
        d5 = rows["defect-D5"]
        cells = d5.find_all("td")
        self.assertIn("XDP reads only the first address of an ipBlocks list", cells[1].text())
        self.assertEqual(cells[2].text(), "bpf/kmesh/workload/include/authz.h:361 and 393")
        link = cells[3].find("a")
        self.assertEqual(link.text(), "authz / ip-list-deny-4th: client 4th in the list")
        target = self.dom.find("details", id=link.attrs["href"][1:])
        self.assertEqual(target.attrs.get("data-title"), "ip-list-deny-4th: client 4th in the list")
        self.assertIn("disagree:    client saw read_timeout, expected connect_timeout (SYN dropped by XDP)",
                      cells[3].find("pre").text())
        # the case itself opens to the defect, then the evidence
        body = target.find("div", cls="body")
        self.assertEqual([s.find("h3").text() for s in body.find_all("section")][:2],
                         ["Kmesh defect D5", "Evidence: what the case saw instead of Kmesh's contract"])

    def test_ipsec_case_from_the_zip(self):
        c = self.cases["connectivity"]
        caps = c.find("section", cls="captures")
        self.assertIn("Captures (3)", caps.find("h3").text())
        self.assertIn("request-node1-underlay.pcap", caps.text())
        self.assertIn("unzip -p", caps.text())  # pcaps inside a zip come with the command that extracts them
        lay = c.find("section", cls="layouts")
        self.assertEqual([b.text() for b in lay.find_all("span", cls="badge")], ["as expected", "agree", "agree"])
        k = self.cases["key-rotation"]
        self.assertIn("DISAGREE", k.find("section", cls="layouts").text())
        self.assertIsNotNone(k.find("div", cls="strip"))  # continuity: one cell per request
        self.assertGreaterEqual(len(k.find("div", cls="strip").find_all("i", cls="bad")), 1)

    def test_bundle_markup_is_text(self):
        title = EDGE_EXPECTED["raw-key-and-new-sections"][0]
        c = self.cases[title]
        span = c.find("summary").find("span", cls="title")
        self.assertIsNone(span.find("b"), "a <b> from the bundle became an element")
        self.assertTrue(span.text().startswith(title))

    def test_catch2_failure_without_a_bundle_is_shown(self):
        alerts = [a.text() for a in self.dom.find_all("div", cls="alert")]
        self.assertTrue(any('"ipsec: fault recovery after a dataplane restart and a deleted state" failed' in a
                            for a in alerts), alerts)


if __name__ == "__main__":
    testing.main()
