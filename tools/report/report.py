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
import datetime
import hashlib
import html
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

PROG = "report.py"
BUNDLE_NAME = "evidence.json"
ZIP_NAME = "outputs.zip"
# e2e/mutation's score (its README, "mutation.json"), at its test's output root; its own bundle carries the same
# document under "mutation".
MUTATION_NAME = "mutation.json"
MUTATION_KIND = "kmesh-e2e mutation score"
# The suite run of e2e/mutation with no fault: its bundles are ordinary cases (labelled); every other fault_run's
# bundles ran with a fault on purpose and are never counted as the run's results.
CONTROL_RUN = "control"


class InputError(Exception):
    """An input the report cannot use: says what was wrong and where."""


# ---------------------------------------------------------------------------------------------------------
# Bundles and where they came from.

@dataclass
class Artifact:
    """A file beside a bundle (a .pcap): a link when it is a plain file, an unzip hint when it is in a zip."""
    name: str
    path: str = ""      # plain file
    zip_path: str = ""  # or member `member` of this zip
    member: str = ""


@dataclass
class JunitCase:
    name: str
    failures: List[str]
    # <properties> the Catch2 listener writes for a [!shouldfail] case (e2e/framework/catch_main.cc):
    # kmesh_defect = "D5", outcome = "failed as expected" | "passed although expected to fail".
    properties: Dict[str, str] = field(default_factory=dict)


# A case tagged [kmesh-defect][Dn][!shouldfail] reproduces a known Kmesh defect: failing is what it must do
# (counted apart, neither passed nor failed), and passing means the defect no longer reproduces, a failure.
STATUS_PASSED, STATUS_FAILED, STATUS_DEFECT = "passed", "failed", "defect"
CONTRACT_DOC = "docs/kmesh-offload-contract.md"


@dataclass
class Defect:
    code: str          # "D5"
    what: str          # what Kmesh does
    kmesh_source: str  # Kmesh file:line
    from_junit: bool = False  # the bundle did not say; the Catch2 tag did


def defect_order(code: str):
    m = re.fullmatch(r"D(\d+)", code)
    return (0, int(m.group(1)), code) if m else (1, 0, code)


@dataclass
class Bundle:
    doc: dict
    where: str                  # for people: file, or "zip › member"
    target: str                 # Bazel label when known, else the folder the bundle came from
    case_folder: str = ""       # the Catch2 test case's evidence folder
    artifacts: List[Artifact] = field(default_factory=list)
    problem: str = ""           # why the bundle could not be read (then doc is nearly empty)
    redacted: List[str] = field(default_factory=list)  # JSON paths of raw keys withheld
    junit: Optional[JunitCase] = None
    junit_unexplained: bool = False  # its Catch2 test case failed and no bundle of that case did

    def text(self, key, default="") -> str:
        v = self.doc.get(key, default)
        return v if isinstance(v, str) else json.dumps(v)

    @property
    def suite(self) -> str:
        return self.text("suite") or "(no suite)"

    @property
    def title(self) -> str:
        return self.text("title") or "(untitled)"

    @property
    def env(self) -> str:
        return self.text("env")

    @property
    def bundle_passed(self) -> bool:
        """What the bundle itself says: passed, with no failure of its own or of Catch2's."""
        return (not self.problem and self.doc.get("passed") is True and not self.failures
                and not self.catch2_failures)

    @property
    def defect(self) -> Optional[Defect]:
        """The Kmesh defect the case reproduces (its bundle's kmesh_defect, else its JUnit property)."""
        d = self.doc.get("kmesh_defect")
        if isinstance(d, dict) and isinstance(d.get("code"), str) and d["code"]:
            return Defect(d["code"], str(d.get("what", "")), str(d.get("kmesh_source", "")))
        code = self.junit.properties.get("kmesh_defect") if self.junit else None
        if code:
            return Defect(code, "", "", from_junit=True)
        return None

    @property
    def status(self) -> str:
        if self.problem:
            return STATUS_FAILED
        if self.defect is not None:
            return STATUS_FAILED if self.bundle_passed else STATUS_DEFECT
        return STATUS_PASSED if self.bundle_passed else STATUS_FAILED

    @property
    def passed(self) -> bool:
        return self.status == STATUS_PASSED

    @property
    def failed(self) -> bool:
        return self.status == STATUS_FAILED

    @property
    def reproduced(self) -> bool:
        return self.status == STATUS_DEFECT

    @property
    def no_longer_reproduces(self) -> Optional[str]:
        """For a defect case whose bundle passed: the failure that is."""
        d = self.defect
        if d is None or self.problem or not self.bundle_passed:
            return None
        return (f"Kmesh defect {d.code} no longer reproduces: the case passed (fixed in Kmesh? then drop its "
                f"[!shouldfail] tag and its defect from {CONTRACT_DOC})"
                + (f"\n  {d.code}: {d.what}" if d.what else "") + (f"\n  Kmesh source: {d.kmesh_source}" if d.kmesh_source else ""))

    @property
    def explanations(self) -> List[str]:
        """Why the case failed (or, for a reproduced defect, its evidence), most telling first."""
        first = [self.problem] if self.problem else []
        nlr = self.no_longer_reproduces
        return first + ([nlr] if nlr else []) + self.failures + self.catch2_failures

    @property
    def datapath(self) -> Optional[dict]:
        d = self.doc.get("datapath")
        return d if isinstance(d, dict) else None

    @property
    def failures(self) -> List[str]:
        f = self.doc.get("failures") or []
        return [x if isinstance(x, str) else json.dumps(x, indent=2) for x in f] if isinstance(f, list) else [str(f)]

    @property
    def catch2_failures(self) -> List[str]:
        """What Catch2 reported while the bundle was open (failed CHECK/REQUIRE, exception, fatal signal)."""
        f = self.doc.get("catch2_failures") or []
        if not isinstance(f, list):
            return [str(f)]
        out = []
        for x in f:
            if isinstance(x, dict):
                where = f" at {x['where']}" if x.get("where") else ""
                out.append(f"Catch2 {x.get('kind', 'failure')}{where}: {x.get('text', '')}")
            else:
                out.append(json.dumps(x))
        return out

    @property
    def started(self) -> Optional[int]:
        v = self.doc.get("started")
        return v if isinstance(v, int) else None

    @property
    def finished(self) -> Optional[int]:
        v = self.doc.get("finished")
        return v if isinstance(v, int) else None

    @property
    def duration_ms(self) -> Optional[int]:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def probes(self) -> list:
        p = self.doc.get("probes")
        return p if isinstance(p, list) else []

    @property
    def mechanism(self) -> str:
        m = self.doc.get("mechanism")
        if isinstance(m, str) and m:
            return m
        pols = self.doc.get("policies")
        found = []
        if isinstance(pols, list):
            for p in pols:
                if isinstance(p, dict) and isinstance(p.get("mechanism"), str) and p["mechanism"] not in found:
                    found.append(p["mechanism"])
        return ", ".join(found) or "—"

    @property
    def catch2_case(self) -> str:
        return self.junit.name if self.junit else self.case_folder

    @property
    def fault_run(self) -> str:
        """KMESH_E2E_FAULT_RUN the bundle was written under (e2e/mutation's suite runs), else ""."""
        v = self.doc.get("fault_run")
        return v if isinstance(v, str) else ""

    @property
    def under_fault(self) -> bool:
        """Written with a fault injected on purpose: a mutation fault run, or lab faults without one."""
        if self.fault_run:
            return self.fault_run != CONTROL_RUN
        return bool(self.doc.get("lab_faults"))

    @property
    def control_run(self) -> bool:
        return self.fault_run == CONTROL_RUN


@dataclass
class MutationRun:
    """One e2e/mutation score (mutation.json), with the bundles its fault runs wrote."""
    doc: dict
    where: str
    target: str
    problem: str = ""  # the document's shape is not what e2e/mutation writes: shown raw, with this note
    fault_bundles: Dict[str, List[Bundle]] = field(default_factory=dict)  # fault id -> bundles of its run
    control_bundles: List[Bundle] = field(default_factory=list)

    @property
    def score(self) -> dict:
        v = self.doc.get("score")
        return v if isinstance(v, dict) else {}

    @property
    def control(self) -> dict:
        v = self.doc.get("control")
        return v if isinstance(v, dict) else {}

    @property
    def faults(self) -> List[dict]:
        v = self.doc.get("faults")
        return [f for f in v if isinstance(f, dict)] if isinstance(v, list) else []

    def score_line(self) -> str:
        """"mutation score: killed 36 / 37, ..." as the test printed it, or why there is none."""
        if self.problem:
            return f"unreadable mutation score ({self.problem})"
        text = self.score.get("text")
        if isinstance(text, str) and text:
            return text
        return f"mutation score: killed {self.score.get('killed', '?')} / {self.score.get('total', '?')}"


def parse_mutation(data: bytes, where: str) -> Tuple[dict, str]:
    """(document, problem) of a mutation.json: e2e/mutation's fields (its README) or a problem naming the first gap."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return {}, f"{where}: not a readable JSON document ({e})"
    if not isinstance(doc, dict):
        return {}, f"{where}: expected a JSON object, found {type(doc).__name__}"
    if doc.get("kind") != MUTATION_KIND:
        return doc, f"{where}: kind is {json.dumps(doc.get('kind'))}, expected {json.dumps(MUTATION_KIND)}"
    for key, typ in (("control", dict), ("faults", list), ("score", dict)):
        if not isinstance(doc.get(key), typ):
            return doc, f"{where}: '{key}' is missing or not a{'n object' if typ is dict else ' list'} " \
                        f"(e2e/mutation/score.cc ToJson writes it)"
    return doc, ""


@dataclass
class Run:
    bundles: List[Bundle]
    junit_orphans: List[Tuple[str, JunitCase]]  # (target, case) failed in JUnit with no bundle in its folder
    junit_counts: Dict[str, Tuple[int, int]]    # target -> (test cases, failed)
    sources: List[str]
    warnings: List[str]
    # Bundles of suite runs with faults injected on purpose (e2e/mutation's fault runs): their failures are the
    # point, so they are shown with the fault they ran under and never counted as the run's results.
    fault_runs: List[Bundle] = field(default_factory=list)
    mutations: List[MutationRun] = field(default_factory=list)

    def mutation_of(self, b: Bundle) -> Optional[MutationRun]:
        """The mutation score whose fault (or control) run wrote bundle b."""
        for m in self.mutations:
            if any(b is x for bs in m.fault_bundles.values() for x in bs) or any(b is x for x in m.control_bundles):
                return m
        return None


# ---------------------------------------------------------------------------------------------------------
# Secrets: a bundle written with KMESH_E2E_REVEAL_KEYS holds raw keys ("0x" + hex). The report shows the
# same fingerprint kmesh::ipsec::KeyMaterial::Fingerprint computes (first 8 bytes of SHA-256, hex).

_RAW_KEY = re.compile(r"(0x)?([0-9a-fA-F]{32,})")


def _fingerprint(hexkey: str) -> str:
    return hashlib.sha256(bytes.fromhex(hexkey if len(hexkey) % 2 == 0 else "0" + hexkey)).hexdigest()[:16]


def redact(value, path="", found=None):
    """Returns value with raw key material in key-named fields replaced; appends the JSON paths to found."""
    if found is None:
        found = []
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            p = f"{path}.{k}" if path else str(k)
            m = _RAW_KEY.fullmatch(v) if isinstance(v, str) and "key" in str(k).lower() else None
            if m:
                out[k] = f"sha256:{_fingerprint(m.group(2))} (raw key in the bundle, withheld by the report)"
                found.append(p)
            else:
                out[k] = redact(v, p, found)
        return out
    if isinstance(value, list):
        return [redact(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------------------------------------
# Finding bundles.

def case_folder_name(name: str) -> str:
    """Mirror of kmesh::e2e::CaseFolderName: the folder a Catch2 test case's evidence goes to."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" + out if out in ("", ".", "..") else out


def target_label(outputs_dir: str) -> str:
    """//pkg:target for <...>/testlogs/<pkg>/<target>[/shard_1_of_2]/test.outputs, else the folder."""
    parts = os.path.realpath(outputs_dir).split(os.sep)
    if "testlogs" in parts:
        i = len(parts) - 1 - parts[::-1].index("testlogs")
        rel = [p for p in parts[i + 1:] if p != "test.outputs"]
        run = [p for p in rel if re.fullmatch(r"(shard|run|attempt)_\d+(_of_\d+)?", p)]
        rel = [p for p in rel if p not in run]
        if len(rel) >= 2:
            return "//" + "/".join(rel[:-1]) + ":" + rel[-1] + ("" if not run else " (" + ", ".join(run) + ")")
        if len(rel) == 1:
            return "//:" + rel[0]
    return os.path.dirname(os.path.realpath(outputs_dir)) if os.path.basename(outputs_dir) == "test.outputs" \
        else os.path.realpath(outputs_dir)


def outputs_root_of(path: str) -> Optional[str]:
    """The test.outputs folder a file sits in, if any."""
    d = os.path.dirname(os.path.realpath(path))
    while True:
        if os.path.basename(d) == "test.outputs":
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def read_junit(target_dir: str) -> Optional[List[JunitCase]]:
    xml_path = os.path.join(target_dir, "test.xml")
    if not os.path.isfile(xml_path):
        return None
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as e:
        raise InputError(f"{xml_path}: not a readable JUnit file ({e})")
    cases = []
    for tc in root.iter("testcase"):
        msgs = [(f.text or f.get("message") or "").strip() for f in list(tc.iter("failure")) + list(tc.iter("error"))]
        props = {p.get("name", ""): p.get("value", "") for p in tc.iter("property")}
        cases.append(JunitCase(tc.get("name", "?"), [m or "(no message)" for m in msgs], props))
    return cases


def parse_bundle(data: bytes, where: str) -> Tuple[dict, str]:
    """(document, problem). A bundle that is not JSON, or lacks the fields every Case writes, is a problem."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return {}, f"{where}: not UTF-8 text (byte {e.start})"
    except json.JSONDecodeError as e:
        return {}, f"{where}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg} (a test that crashed " \
                   f"while writing it leaves a truncated bundle)"
    if not isinstance(doc, dict):
        return {}, f"{where}: expected a JSON object, found {type(doc).__name__}"
    missing = [k for k in ("suite", "title", "passed") if k not in doc]
    if missing:
        return doc, f"{where}: missing {', '.join(missing)} (every kmesh::e2e::Case writes suite, title, passed)"
    if not isinstance(doc["passed"], bool):
        return doc, f"{where}: 'passed' is {json.dumps(doc['passed'])}, expected true or false"
    return doc, ""


class Collector:
    def __init__(self):
        self.found: Dict[Tuple[str, str], Bundle] = {}   # (outputs root, relative path) -> bundle
        self.mutations: Dict[Tuple[str, str], MutationRun] = {}  # (outputs root, relative path) -> score
        self.junit_dirs: Dict[str, str] = {}             # test target folder -> label
        self.sources: List[str] = []
        self.warnings: List[str] = []
        self.looked_at = 0

    def _add(self, key, data: bytes, where: str, target: str, rel: str, artifacts: List[Artifact], prefer: bool):
        if key in self.found and not prefer:
            return
        doc, problem = parse_bundle(data, where)
        found: List[str] = []
        doc = redact(doc, "", found)
        parts = rel.split("/")
        b = Bundle(doc=doc, where=where, target=target, case_folder=parts[0] if len(parts) >= 3 else "",
                   artifacts=artifacts, problem=problem, redacted=found)
        if problem:
            self.warnings.append(problem)
        if found:
            self.warnings.append(f"{where}: raw key material in {', '.join(found)}; the report shows fingerprints only")
        self.found[key] = b

    def _add_mutation(self, key, data: bytes, where: str, target: str, prefer: bool):
        if key in self.mutations and not prefer:
            return
        doc, problem = parse_mutation(data, where)
        if problem:
            self.warnings.append(problem)
        self.mutations[key] = MutationRun(doc=doc, where=where, target=target, problem=problem)

    def add_file(self, path: str, base: Optional[str] = None):
        root = outputs_root_of(path)
        anchor = root or base or os.path.dirname(os.path.realpath(path))
        rel = os.path.relpath(os.path.realpath(path), anchor).replace(os.sep, "/")
        target = target_label(root) if root else (base or os.path.dirname(os.path.realpath(path)))
        if root:
            self.junit_dirs[os.path.dirname(root)] = target
        if os.path.basename(path) == MUTATION_NAME:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise InputError(f"{path}: cannot read ({e.strerror})")
            self._add_mutation((root or anchor, rel), data, path, target, prefer=True)
            return
        folder = os.path.dirname(path)
        arts = [Artifact(n, path=os.path.join(folder, n)) for n in sorted(os.listdir(folder))
                if n.endswith((".pcap", ".pcapng"))]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror})")
        self._add((root or anchor, rel), data, path, target, rel, arts, prefer=True)

    def add_zip(self, path: str, explicit: bool) -> int:
        """Adds the bundles in a zip; returns how many it holds."""
        real = os.path.realpath(path)
        root = os.path.dirname(real)
        is_outputs = os.path.basename(root) == "test.outputs"
        target = target_label(root) if is_outputs else real
        if is_outputs:
            self.junit_dirs[os.path.dirname(root)] = target
        try:
            with zipfile.ZipFile(real) as z:
                names = z.namelist()
                bundles = [n for n in names if n == BUNDLE_NAME or n.endswith("/" + BUNDLE_NAME)]
                if MUTATION_NAME in names:  # e2e/mutation's score sits at the outputs' root
                    try:
                        self._add_mutation((root if is_outputs else real, MUTATION_NAME), z.read(MUTATION_NAME),
                                           f"{path} › {MUTATION_NAME}", target, prefer=False)
                    except (zipfile.BadZipFile, OSError, RuntimeError) as e:
                        self.warnings.append(f"{path} › {MUTATION_NAME}: cannot be read from the zip ({e})")
                if explicit and not bundles:
                    raise InputError(f"{path}: a zip with {len(names)} files, none named {BUNDLE_NAME} "
                                     f"(expected a test's test.outputs/outputs.zip)")
                for n in bundles:
                    folder = n[: -len(BUNDLE_NAME)]
                    arts = [Artifact(m[len(folder):], zip_path=real, member=m) for m in names
                            if m.startswith(folder) and "/" not in m[len(folder):] and m.endswith((".pcap", ".pcapng"))]
                    try:
                        data = z.read(n)
                    except (zipfile.BadZipFile, OSError, RuntimeError) as e:
                        data = b""
                        self.warnings.append(f"{path} › {n}: cannot be read from the zip ({e})")
                    self._add((root if is_outputs else real, n), data, f"{path} › {n}", target, n, arts, prefer=False)
                return len(bundles)
        except zipfile.BadZipFile as e:
            msg = f"{path}: not a readable zip ({e})"
            if explicit:
                raise InputError(msg)
            self.warnings.append(msg)
            return 0

    def add_path(self, p: str):
        if not os.path.exists(p):
            raise InputError(f"{p}: no such file or folder (expected a bazel-testlogs folder, a test's "
                             f"test.outputs/outputs.zip, a folder of {BUNDLE_NAME} bundles, or one {BUNDLE_NAME})")
        self.sources.append(p)
        if os.path.isfile(p):
            if zipfile.is_zipfile(p):
                self.add_zip(p, explicit=True)
            elif p.endswith(".json"):
                self.add_file(p)
            else:
                raise InputError(f"{p}: neither a zip nor a .json bundle ({os.path.getsize(p)} bytes); expected a "
                                 f"bazel-testlogs folder, an outputs.zip, or a folder of {BUNDLE_NAME} bundles")
            return
        files = zips = bundles = 0
        base = os.path.realpath(p)
        for dirpath, dirnames, filenames in os.walk(p):  # a symlinked top (bazel-testlogs) is followed
            dirnames.sort()
            for n in sorted(filenames):
                files += 1
                full = os.path.join(dirpath, n)
                if n in (BUNDLE_NAME, MUTATION_NAME):
                    bundles += n == BUNDLE_NAME
                    self.add_file(full, base)
                elif n == ZIP_NAME:
                    zips += 1
                    bundles += self.add_zip(full, explicit=False)
        if bundles == 0 and not self.mutations and not any(w.startswith(p) for w in self.warnings):
            raise InputError(f"{p}: no {BUNDLE_NAME} under this folder ({files} files, {zips} {ZIP_NAME} looked at). "
                             f"Pass bazel-testlogs after `bazel test //e2e/...`, or a folder that holds bundles")

    def check_defect_tag(self, label: str, c: JunitCase, b: Bundle):
        """The bundle's kmesh_defect and the Catch2 tag ([kmesh-defect][Dn], JUnit property) must agree."""
        tag = c.properties.get("kmesh_defect", "")
        mine = b.doc.get("kmesh_defect")
        code = mine.get("code") if isinstance(mine, dict) else None
        if code and tag and code != tag:
            self.warnings.append(f"{label} \"{c.name}\": its bundle reproduces Kmesh defect {code}, its Catch2 tag says "
                                 f"{tag}; one of them is wrong (authz_test.cc's Defect and the [Dn] tag)")
        elif code and not tag:
            self.warnings.append(f"{label} \"{c.name}\": its bundle names Kmesh defect {code} but the Catch2 case has no "
                                 f"[kmesh-defect][{code}][!shouldfail] tag, so Catch2 and CI count it as an ordinary case")
        if (c.properties.get("outcome") == "failed as expected" and not c.failures and b.defect is not None
                and b.bundle_passed):
            self.warnings.append(f"{label} \"{c.name}\": Catch2 says it failed as expected, but its bundle passed: "
                                 f"what failed happened outside the bundle, so the defect is shown as no longer "
                                 f"reproducing")

    def run(self) -> Run:
        bundles = list(self.found.values())
        orphans: List[Tuple[str, JunitCase]] = []
        counts: Dict[str, Tuple[int, int]] = {}
        by_target: Dict[str, List[Bundle]] = {}
        for b in bundles:
            by_target.setdefault(b.target, []).append(b)
        for tdir, label in sorted(self.junit_dirs.items()):
            try:
                cases = read_junit(tdir)
            except InputError as e:
                self.warnings.append(str(e))
                continue
            if cases is None:
                continue
            counts[label] = (len(cases), sum(1 for c in cases if c.failures))
            folders = {}
            for b in by_target.get(label, []):
                folders.setdefault(b.case_folder, []).append(b)
            for c in cases:
                mine = folders.get(case_folder_name(c.name), [])
                for b in mine:
                    b.junit = c
                    self.check_defect_tag(label, c, b)
                if c.failures and not any(b.failed for b in mine):
                    orphans.append((label, c))
                    for b in mine:
                        b.junit_unexplained = True
        fault_runs = [b for b in bundles if b.under_fault]
        bundles = [b for b in bundles if not b.under_fault]
        bundles.sort(key=lambda b: (b.suite, b.target, b.started or 0, b.title))
        fault_runs.sort(key=lambda b: (b.fault_run or str(b.doc.get("lab_faults")), b.suite, b.title))
        return Run(bundles, orphans, counts, self.sources, self.warnings, fault_runs, self.mutation_runs(bundles, fault_runs))

    def mutation_runs(self, bundles: List[Bundle], fault_runs: List[Bundle]) -> List[MutationRun]:
        """Each score with the bundles its suite runs wrote (same test target). A score passed only as the
        mutation test's own bundle (its "mutation" field) counts when no mutation.json of that target was found."""
        by_target = {m.target: m for m in self.mutations.values()}
        for b in bundles:
            doc = b.doc.get("mutation")
            if isinstance(doc, dict) and b.target not in by_target:
                parsed, problem = parse_mutation(json.dumps(doc).encode(), f"{b.where} (its \"mutation\" field)")
                if problem:
                    self.warnings.append(problem)
                by_target[b.target] = MutationRun(doc=parsed, where=b.where, target=b.target, problem=problem)
        for b in fault_runs:
            m = by_target.get(b.target)
            if m is not None and b.fault_run:
                m.fault_bundles.setdefault(b.fault_run, []).append(b)
        for b in bundles:
            m = by_target.get(b.target)
            if m is not None and b.control_run:
                m.control_bundles.append(b)
        return sorted(by_target.values(), key=lambda m: m.target)


def collect(paths: List[str]) -> Run:
    c = Collector()
    for p in paths:
        c.add_path(p)
    return c.run()


# ---------------------------------------------------------------------------------------------------------
# Text helpers shared by the summary and the page.

def fmt_ms(ms: Optional[float]) -> str:
    if ms is None:
        return "—"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.3f} ms" if ms < 1 else f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_time(ms: Optional[int]) -> str:
    if ms is None:
        return "?"
    return datetime.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def run_span(run: Run) -> Tuple[Optional[int], Optional[int]]:
    starts = [b.started for b in run.bundles if b.started is not None]
    ends = [b.finished for b in run.bundles if b.finished is not None]
    return (min(starts) if starts else None, max(ends) if ends else None)


def suite_counts(run: Run) -> Dict[str, List[int]]:
    """suite -> [passed, failed, Kmesh defects reproduced]."""
    out: Dict[str, List[int]] = {}
    for b in run.bundles:
        c = out.setdefault(b.suite, [0, 0, 0])
        c[{STATUS_PASSED: 0, STATUS_FAILED: 1, STATUS_DEFECT: 2}[b.status]] += 1
    return out


def first_lines(b: Bundle) -> List[str]:
    """A failed case (or a reproduced defect's evidence) in two lines at most: its first explanation line,
    and the first 'disagree' line."""
    explanations = b.explanations
    if not explanations:
        return ["marked failed (passed is not true) without an explanation"]
    if b.no_longer_reproduces:
        d = b.defect
        return [explanations[0].splitlines()[0]] + ([f"{d.code}: {d.what} [{d.kmesh_source}]"] if d.what else [])
    lines = explanations[0].splitlines() or [""]
    out = [lines[0]]
    for i, l in enumerate(lines[1:], 1):
        if l.strip().startswith("disagree"):
            text = re.sub(r"^disagree:\s+", "disagree: ", l.strip())
            if text.endswith(":") and i + 1 < len(lines):  # "disagree:" with the reasons on the lines below
                text += " " + lines[i + 1].strip()
            out.append(text)
            break
    more = len(explanations) - 1
    if more > 0:
        out[0] += f"  (+{more} more)"
    return out


# ---------------------------------------------------------------------------------------------------------
# The datapath the cases ran on: each bundle's "datapath" (Env::DatapathIdentity: the Kmesh tree, the
# object, clang, and per lab node the programs' ids and tags). One build can serve several labs (one per
# test binary), so the page groups by build, then by lab.

# Fields of the build, in the order a person reads them; "nodes" and "describe" are per lab.
BUILD_FIELDS = ["datapath", "kmesh_commit", "pinned_commit", "tree", "tree_found_by", "tree_digest", "object",
                "object_sha256", "clang", "patches", "userspace", "waypoint"]
PER_LAB_FIELDS = {"nodes", "describe"}


@dataclass
class LabInstance:
    nodes: dict
    bundles: List[Bundle] = field(default_factory=list)


@dataclass
class Datapath:
    build: dict                       # every field but the per-lab ones
    labs: List[LabInstance] = field(default_factory=list)

    @property
    def bundles(self) -> List[Bundle]:
        return [b for lab in self.labs for b in lab.bundles]

    @property
    def mutant(self) -> bool:
        return bool(self.build.get("patches")) or any("MUTANT" in str(b.datapath.get("describe", ""))
                                                      for b in self.bundles)

    def commit_text(self, short: bool = False) -> str:
        c, pinned = self.build.get("kmesh_commit"), self.build.get("pinned_commit")
        if not c:
            return ""
        if c == "snapshot":
            return f"snapshot of the pinned commit {pinned[:12] if short else pinned}" if pinned else "snapshot (no git)"
        c, pinned = (c[:12], (pinned or "")[:12]) if short else (c, pinned)
        return c + ("" if not pinned or c == pinned else f" (pinned: {pinned})")

    def one_line(self) -> str:
        """"Kmesh <commit> (tree, found by; digest); object sha256:..., clang" for the summary."""
        b = self.build
        if "kmesh_commit" not in b and "object_sha256" not in b:
            rest = "; ".join(f"{k} {json.dumps(v) if not isinstance(v, str) else v}" for k, v in b.items()
                             if k != "datapath")
            return (str(b.get("datapath", "datapath")) + (f" ({rest})" if rest else ""))
        where = ", ".join(str(b[k]) for k in ("tree", "tree_found_by") if b.get(k))
        # "sha256:90b4...(64 hex) (matches pinned snapshot)" -> "digest sha256:90b4fec5cf3b3666 matches pinned snapshot"
        m = re.fullmatch(r"(sha256:[0-9a-f]{16})[0-9a-f]*\s*(?:\((.*)\))?", str(b.get("tree_digest", "")))
        digest = (f"; digest {m.group(1)}" + (f" {m.group(2)}" if m.group(2) else "")) if m else (
            f"; {b['tree_digest']}" if b.get("tree_digest") else "")
        obj = f"{b.get('object', 'object')} sha256:{str(b.get('object_sha256', '?'))[:16]}"
        patches = f"; MUTANT with {', '.join(map(str, b['patches']))}" if b.get("patches") else ""
        return f"Kmesh {self.commit_text(short=True)} ({where}{digest}); {obj}, {b.get('clang', 'clang ?')}{patches}"


def datapaths(run: Run) -> Tuple[List[Datapath], List[Bundle]]:
    """(datapaths with their labs and cases, bundles that name no datapath)."""
    out: Dict[str, Datapath] = {}
    none: List[Bundle] = []
    for b in run.bundles:
        d = b.datapath
        if d is None:
            none.append(b)
            continue
        build = {k: v for k, v in d.items() if k not in PER_LAB_FIELDS}
        key = json.dumps(build, sort_keys=True)
        dp = out.setdefault(key, Datapath(build))
        nodes = d.get("nodes") if isinstance(d.get("nodes"), dict) else {}
        lab = next((l for l in dp.labs if l.nodes == nodes), None)
        if lab is None:
            lab = LabInstance(nodes)
            dp.labs.append(lab)
        lab.bundles.append(b)
    return list(out.values()), none


def program_text(p) -> str:
    """"xdp_authz id 3005 tag 3e0ad724ef51b61c"."""
    if not isinstance(p, dict):
        return json.dumps(p)
    return f"{p.get('name', '?')} id {p.get('id', '?')} tag {p.get('tag', '?')}"


def defect_groups(run: Run) -> List[Tuple[Defect, List[Bundle]]]:
    """Cases tagged with a Kmesh defect (reproduced or not), by defect code."""
    groups: Dict[str, Tuple[Defect, List[Bundle]]] = {}
    for b in run.bundles:
        d = b.defect
        if d is None:
            continue
        if d.code not in groups:
            groups[d.code] = (d, [])
        elif not groups[d.code][0].what and d.what:
            groups[d.code] = (d, groups[d.code][1])
        groups[d.code][1].append(b)
    return [groups[c] for c in sorted(groups, key=defect_order)]


def defects_line(run: Run) -> str:
    """"Kmesh defects reproduced: 18 cases, 13 defects (D1, ...)", as tools/test_summary.py prints it."""
    rep = [b for b in run.bundles if b.reproduced]
    codes = sorted({b.defect.code for b in rep}, key=defect_order)
    return (f"Kmesh defects reproduced: {len(rep)} cases, {len(codes)} defects ({', '.join(codes)}); "
            f"see {CONTRACT_DOC}")


# Fault statuses that are what a fault's row promises (e2e/mutation/score.cc AsExpected).
MUTATION_AS_EXPECTED = {"killed", "equivalent", "survived (known)"}


def mutation_summary_lines(run: Run) -> List[str]:
    """Each mutation score in a line, each fault not as its row promises in another, and the fault runs' bundles."""
    out = []
    for m in run.mutations:
        c = m.control
        control = ("control run passed" if c.get("passed") is True else
                   "CONTROL RUN FAILED: " + "; ".join(map(str, c.get("problems") or [])) if c else "no control run")
        out.append(f"mutation ({m.target}): {m.score_line()}; {control}"
                   + (f" ({len(c.get('cases') or [])} cases)" if c.get("passed") is True else ""))
        for f in m.faults:
            status = str(f.get("status", "?"))
            if status not in MUTATION_AS_EXPECTED:
                out.append(f"  {status} {f.get('id', '?')} ({f.get('kind', '?')}): "
                           + (str(f.get("detail") or "").splitlines() or [""])[0])
        for f in m.faults:
            if f.get("status") == "survived (known)":
                out.append(f"  known survivor {f.get('id', '?')}: {str(f.get('survivor', '')).splitlines()[0][:160] if f.get('survivor') else ''}")
    orphans = [b for b in run.fault_runs if run.mutation_of(b) is None]
    mine = len(run.fault_runs) - len(orphans)
    if mine:
        out.append(f"  {mine} bundles of the mutation runs' fault runs are not counted above (their failures are the point)")
    if orphans:
        caught = sum(1 for b in orphans if not b.bundle_passed)
        out.append(f"{len(orphans)} cases ran with lab faults injected and no mutation score beside them (not counted "
                   f"above); {caught} of them failed")
    return out


def summary_text(run: Run, max_failed: int = 20) -> str:
    n = len(run.bundles)
    failed = [b for b in run.bundles if b.failed]
    reproduced = [b for b in run.bundles if b.reproduced]
    passed = n - len(failed) - len(reproduced)
    envs = sorted({b.env for b in run.bundles if b.env})
    start, end = run_span(run)
    span = f"; {fmt_time(start)}, {fmt_ms(end - start)}" if start is not None and end is not None else ""
    out = [f"kmesh-e2e evidence: {n} cases, {passed} passed, {len(failed)} failed"
           + (f", {len(reproduced)} reproduced a Kmesh defect" if reproduced else "")
           + f" (env {', '.join(envs) or '?'}{span})"]
    dps, unnamed = datapaths(run)
    for dp in dps:
        out.append(f"datapath: {dp.one_line()}")
        for k in ("userspace", "waypoint"):
            if dp.build.get(k):
                out.append(f"  {k}: {dp.build[k]}")
        if len(dp.labs) <= 2:
            for lab in dp.labs:
                for node, info in sorted(lab.nodes.items()):
                    progs = info.get("programs") if isinstance(info, dict) else None
                    if isinstance(progs, list):
                        out.append(f"  {node}: " + ", ".join(program_text(p) for p in progs))
        else:
            out.append(f"  {len(dp.labs)} labs (one per test binary); their programs' ids and tags: see the HTML report")
    if unnamed and dps:
        suites = sorted({b.suite for b in unnamed})
        out.append(f"  ({len(unnamed)} cases name no datapath: {', '.join(suites)})")
    counts = suite_counts(run)
    width = max([len(s) for s in counts] + [5])
    any_defect = any(c[2] for c in counts.values())
    out.append(f"  {'suite':<{width}}  passed  failed" + ("  defects" if any_defect else ""))
    for s, (p, f, d) in sorted(counts.items()):
        out.append(f"  {s:<{width}}  {p:>6}  {f:>6}" + (f"  {d:>7}" if any_defect else "") + ("  FAIL" if f else ""))
    for b in failed[:max_failed]:
        lines = first_lines(b)
        out.append(f"FAILED {b.suite} / {b.title}: {lines[0]}")
        out.extend("         " + l for l in lines[1:])
    if len(failed) > max_failed:
        out.append(f"... and {len(failed) - max_failed} more failed cases (see the HTML report)")
    if reproduced:
        out.append(defects_line(run))
        for d, bs in defect_groups(run):
            mine = [b for b in bs if b.reproduced]
            if not mine:
                continue
            src = f" [{d.kmesh_source}]" if d.kmesh_source else ""
            out.append(f"  {d.code} {d.what or '(the bundle does not say what; see ' + CONTRACT_DOC + ')'}{src}")
            for b in mine:
                lines = first_lines(b)
                out.append(f"      {b.suite} / {b.title}: {lines[-1].strip()}")
    for target, c in run.junit_orphans:
        out.append(f"FAILED {target} \"{c.name}\" (Catch2) without a failed bundle: {c.failures[0].splitlines()[0]}")
    out.extend(mutation_summary_lines(run))
    for w in run.warnings:
        if not any(w == b.problem for b in run.bundles):
            out.append(f"warning: {w}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------
# The page. Everything is rendered here (the page works without JS); the inline script only filters and
# expands. Every bundle string goes through esc().

def esc(v) -> str:
    return html.escape(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False), quote=True)


def pretty(v) -> str:
    return esc(json.dumps(v, indent=2, ensure_ascii=False, sort_keys=False))


def badge(ok: bool, yes="PASS", no="FAIL") -> str:
    return f'<span class="badge {"ok" if ok else "bad"}">{yes if ok else no}</span>'


def raw_json(title: str, value, open_=False, note="") -> str:
    size = f'<span class="muted"> {esc(note)}</span>' if note else ""
    return (f'<details class="json"{" open" if open_ else ""}><summary>{esc(title)}{size}</summary>'
            f'<pre>{pretty(value)}</pre></details>')


def kv_table(pairs: List[Tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def scalar_html(v) -> str:
    if isinstance(v, bool):
        return badge(v, "true", "false")
    if isinstance(v, str) and "\n" in v:
        return f"<pre>{esc(v)}</pre>"
    return esc(v)


def leftover(obj: dict, known: set, title="more") -> str:
    """Fields a renderer does not know: scalars as a table, the rest as JSON."""
    rest = {k: v for k, v in obj.items() if k not in known}
    if not rest:
        return ""
    scal = [(k, scalar_html(v)) for k, v in rest.items() if not isinstance(v, (dict, list))]
    comp = [(k, v) for k, v in rest.items() if isinstance(v, (dict, list))]
    return (kv_table(scal) if scal else "") + "".join(raw_json(f"{title}: {k}" if title else k, v) for k, v in comp)


def codes_html(codes) -> str:
    """Machine-readable disagreement codes (e2e/framework/expect.h disagreement::) as chips."""
    if not codes:
        return ""
    codes = codes if isinstance(codes, list) else [codes]
    return ('<div class="codes small">disagreement codes: ' +
            "".join(f'<span class="chip code">{esc(c)}</span>' for c in codes) + "</div>")


def section(title: str, body: str, cls="") -> str:
    return f'<section class="{cls}"><h3>{esc(title)}</h3>{body}</section>'


def is_capture(v) -> bool:
    return isinstance(v, dict) and "packets" in v and "esp_packets" in v


def fmt_tuple(t) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, dict) and {"src_ip", "src_port", "dst_ip", "dst_port"} <= set(t):
        return f'{t["src_ip"]}:{t["src_port"]} -> {t["dst_ip"]}:{t["dst_port"]}'
    return json.dumps(t) if t is not None else ""


class Page:
    def __init__(self, run: Run, out_path: Optional[str]):
        self.run = run
        self.out_dir = os.path.dirname(os.path.abspath(out_path)) if out_path else None
        self.dps, self.unnamed = datapaths(run)
        self.datapath_index = {id(b): i for i, dp in enumerate(self.dps) for b in dp.bundles}

    # -- sections of a case

    def failures(self, b: Bundle) -> str:
        items = b.explanations
        if not items and not b.bundle_passed:
            items = ["The bundle says passed = false but gives no explanation."]
        if b.junit_unexplained and b.bundle_passed:
            items.append("The bundle passed, but its Catch2 test case failed (assertions outside the bundle's "
                         "expectations):\n" + "\n".join(b.junit.failures))
        if not items:
            return ""
        if b.reproduced:
            title, cls = "Evidence: what the case saw instead of Kmesh's contract", "failures evidence"
        else:
            title, cls = ("Why it failed" if b.failed else "Catch2 failure"), "failures"
        return section(title, "".join(f'<pre class="{"evidence-text" if b.reproduced else "failure"}">{esc(x)}</pre>'
                                      for x in items), cls)

    def defect(self, b: Bundle) -> str:
        d = b.defect
        if d is None:
            return ""
        state = ("reproduced (the case failed as it must while Kmesh has this defect)" if b.reproduced else
                 "NO LONGER REPRODUCES (the case passed: a failure until its [!shouldfail] tag is removed)")
        rows = [("code", f'<a href="#defect-{esc(d.code)}">{esc(d.code)}</a> {esc(state)}'),
                ("what Kmesh does", esc(d.what) if d.what else '<span class="muted">the bundle does not say (its '
                 f'Catch2 tag does); see {esc(CONTRACT_DOC)}</span>'),
                ("Kmesh source", f'<span class="mono">{esc(d.kmesh_source)}</span>' if d.kmesh_source else "—")]
        return section(f"Kmesh defect {d.code}", kv_table(rows), "defect")

    def datapath_line(self, b: Bundle) -> str:
        d = b.datapath
        if d is None:
            return ""
        i = self.datapath_index.get(id(b))
        label = f"datapath {i + 1}" if i is not None and len(self.dps) > 1 else "datapath"
        sha = d.get("object_sha256")
        text = (f'Kmesh {d.get("kmesh_commit", "?")}, {d.get("object", "object")} sha256:{str(sha)[:16]}…'
                if sha else str(d.get("datapath", "")))
        return (f'<div class="muted small datapath-line">ran on <a href="#datapath">{esc(label)}</a>: '
                f'{esc(text)}</div>')

    def notes(self, b: Bundle) -> str:
        n = b.doc.get("notes")
        if not n:
            return ""
        if not isinstance(n, list):
            n = [n]
        return section("Notes", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in n) + "</ul>", "notes")

    def policies(self, pols) -> str:
        cards = []
        for p in pols:
            if not isinstance(p, dict):
                cards.append(raw_json("policy", p, True))
                continue
            pid = p.get("policy_id")
            pid_text = f"{pid} (0x{pid:08x})" if isinstance(pid, int) else esc(pid) if pid is not None else "—"
            head = (f'<div class="card-head"><b>{esc(p.get("id_key", "(no id_key)"))}</b>'
                    f'<span class="chip">{esc(p.get("mechanism", "?"))}</span></div>')
            rows = [("policy id", pid_text)]
            if "origin" in p:
                rows.append(("template", esc(p["origin"])))
            if "realized" in p:
                rows.append(("realized", f'<span class="evidence">{esc(p["realized"])}</span>'))
            if "waited_ms" in p:
                rows.append(("waited", fmt_ms(p["waited_ms"]) if isinstance(p["waited_ms"], (int, float))
                             else esc(p["waited_ms"])))
            body = head + kv_table(rows)
            if "manifest" in p:
                body += (f'<details class="manifest"><summary>manifest</summary>'
                         f'<pre>{esc(p["manifest"])}</pre></details>')
            body += leftover(p, {"id_key", "policy_id", "mechanism", "origin", "realized", "waited_ms", "manifest"})
            cards.append(f'<div class="card">{body}</div>')
        return section(f"Policy applied ({len(pols)})", "".join(cards), "policies")

    def probes(self, probes) -> str:
        rows = []
        known = {"label", "client", "server", "expected", "outcome", "tuple", "km_auth_res_after", "xdp", "passed",
                 "disagree", "userspace", "disagreement_codes"}
        for p in probes:
            if not isinstance(p, dict):
                rows.append(f'<tr><td colspan="8">{raw_json("probe", p, True)}</td></tr>')
                continue
            o = p.get("outcome") if isinstance(p.get("outcome"), dict) else {}
            ok = p.get("passed")
            status = badge(ok) if isinstance(ok, bool) else '<span class="muted">—</span>'
            who = (f'{esc(p.get("client", "?"))} → {esc(p.get("server", "?"))}'
                   if "client" in p or "server" in p else '<span class="muted">—</span>')
            tuple_text = fmt_tuple(p.get("tuple") or o.get("tuple"))
            saw = esc(o.get("summary") or o.get("outcome") or (p.get("outcome") if isinstance(p.get("outcome"), str)
                                                                 else ""))
            if o.get("detail"):
                saw += f'<div class="muted">{esc(o["detail"])}</div>'
            if o.get("via"):
                saw += f'<div class="muted">via {esc(o["via"])}</div>'
            t = o.get("timings_us") if isinstance(o.get("timings_us"), dict) else {}
            timing = "<br>".join(f"{esc(k)} {fmt_ms(v / 1000)}" for k, v in t.items() if isinstance(v, (int, float)))
            kernel = []
            if "km_auth_res_after" in p:
                kernel.append(f'km_auth_res: <b>{esc(p["km_auth_res_after"])}</b>')
            if "xdp" in p:
                kernel.append(f'XDP: {esc(p["xdp"])}')
            us = p.get("userspace")
            if isinstance(us, list):
                # What Kmesh's userspace half (the lab's authorizer, rbac.go's port) decided for this connection.
                said = [esc(u.get("describe") or json.dumps(u)) if isinstance(u, dict) else esc(u) for u in us]
                kernel.append("userspace: " + ("<br>".join(said) if said else
                                               '<span class="muted">no record of this connection</span>'))
            elif us is not None:
                kernel.append(f"userspace: {esc(us)}")
            rows.append(
                f'<tr class="{"" if ok is not False else "bad-row"}"><td>{status}</td>'
                f'<td>{esc(p.get("label", ""))}</td><td>{who}<div class="mono">{esc(tuple_text)}</div></td>'
                f'<td>{esc(p.get("expected", ""))}</td><td>{saw}</td><td class="mono">{timing}</td>'
                f'<td>{"<br>".join(kernel) or "—"}</td></tr>')
            extra = ""
            dis = p.get("disagree")
            if dis:
                extra += '<ul class="disagree">' + "".join(f"<li>{esc(d)}</li>" for d in
                                                          (dis if isinstance(dis, list) else [dis])) + "</ul>"
            extra += codes_html(p.get("disagreement_codes"))
            rest = {k: v for k, v in p.items() if k not in known}
            caps = [k for k, v in rest.items() if is_capture(v) or (isinstance(v, list) and v and all(map(is_capture, v)))]
            if caps:
                extra += f'<div class="muted">captures ({", ".join(map(esc, caps))}): see Captures below</div>'
            o_rest = {k: v for k, v in o.items() if k not in {"summary", "outcome", "detail", "via", "timings_us",
                                                             "tuple", "http_status"}}
            extra += leftover({k: v for k, v in rest.items() if k not in caps}, set(), "probe")
            extra += leftover(o_rest, set(), "outcome")
            if extra:
                rows.append(f'<tr class="probe-extra"><td></td><td colspan="6">{extra}</td></tr>')
        head = ("<tr><th></th><th>probe</th><th>client → server, tuple</th><th>expected</th><th>client saw</th>"
                "<th>timings</th><th>kernel held</th></tr>")
        return section(f"Probes ({len(probes)})", f'<table class="grid">{head}{"".join(rows)}</table>', "probes")

    def find_captures(self, doc: dict) -> List[Tuple[str, dict]]:
        """Every capture summary in the bundle, labelled by where it sits."""
        out: List[Tuple[str, dict]] = []

        def walk(v, where):
            if is_capture(v):
                out.append((where, v))
            elif isinstance(v, dict):
                for k, x in v.items():
                    walk(x, f"{where} {k}".strip())
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    lab = x.get("label") if isinstance(x, dict) and isinstance(x.get("label"), str) else f"#{i + 1}"
                    walk(x, f"{where} [{lab}]".strip())

        for key in ("captures", "probes"):
            if key in doc:
                walk(doc[key], key)
        return out

    def artifact_link(self, a: Artifact) -> str:
        if a.path:
            target = os.path.abspath(a.path)
            href = os.path.relpath(target, self.out_dir) if self.out_dir else target
            return f'<a href="{esc(href.replace(os.sep, "/"))}">{esc(a.name)}</a>'
        hint = f"unzip -p '{a.zip_path}' '{a.member}' > {os.path.basename(a.member)}"
        return f'<span class="mono" title="{esc(hint)}">{esc(a.name)}</span> <span class="muted">in {esc(os.path.basename(a.zip_path))}: {esc(hint)}</span>'

    def captures(self, b: Bundle) -> str:
        caps = self.find_captures(b.doc)
        if not caps:
            return ""
        by_name = {a.name: a for a in b.artifacts}
        rows = []
        for where, c in caps:
            spis = c.get("esp_spis") or {}
            spi_text = ", ".join(f"{esc(k)} ×{esc(v)}" for k, v in spis.items()) if isinstance(spis, dict) else esc(spis)
            plain = c.get("plaintext") or []
            marker = c.get("marker_hits") or []
            n_plain = len(plain) if isinstance(plain, list) else plain
            n_marker = len(marker) if isinstance(marker, list) else marker
            pcap = c.get("pcap") or ""
            art = by_name.get(os.path.basename(pcap)) if isinstance(pcap, str) else None
            pcap_html = self.artifact_link(art) if art else (
                f'<span class="mono">{esc(os.path.basename(pcap))}</span> <span class="muted">(not among the outputs)</span>'
                if pcap else "—")
            # A sanity capture must see the plaintext (that is what proves its filter); any other must not.
            sanity = "sanity" in where.lower()
            plain_cls = ("ok-text" if n_plain else "bad-text") if sanity else ("bad-text" if n_plain else "")
            esp_cls = "" if sanity or c.get("esp_packets") else "bad-text"
            role = ('<div class="muted small">sanity: plaintext expected</div>' if sanity else "")
            loc = " ".join(esc(c.get(k)) for k in ("netns", "interface") if c.get(k))
            if c.get("direction"):
                loc += f' ({esc(c["direction"])})'
            hits = ""
            for name, lst in (("plaintext", plain), ("marker", marker)):
                if isinstance(lst, list) and lst:
                    hits += "".join(f'<div class="mono {"" if sanity else "bad-text"}">{esc(name)}: {esc(h.get("packet", h) if isinstance(h, dict) else h)}</div>'
                                    for h in lst[:5])
                    if len(lst) > 5:
                        hits += f'<div class="muted">... {len(lst) - 5} more</div>'
            rows.append(
                f'<tr><td>{esc(where)}<div class="muted">{loc}</div>{role}</td>'
                f'<td class="mono">{esc(c.get("filter", ""))}</td><td class="num">{esc(c.get("packets"))}</td>'
                f'<td class="num {esp_cls}"><b>{esc(c.get("esp_packets"))}</b></td><td class="mono">{spi_text or "—"}</td>'
                f'<td class="num {plain_cls}">{esc(n_plain)}</td>'
                f'<td class="num">{esc(n_marker)}</td><td class="num">{esc(c.get("kernel_dropped", "—"))}</td>'
                f'<td>{pcap_html}</td></tr>')
            if hits:
                rows.append(f'<tr><td></td><td colspan="8">{hits}</td></tr>')
        head = ("<tr><th>capture</th><th>filter</th><th>packets</th><th>ESP</th><th>ESP SPIs</th>"
                "<th>plaintext hits</th><th>marker hits</th><th>dropped</th><th>pcap</th></tr>")
        others = [a for a in b.artifacts if a.name not in {os.path.basename(c.get("pcap") or "") for _, c in caps}]
        more = ""
        if others:
            more = '<div class="muted">other files: ' + ", ".join(self.artifact_link(a) for a in others) + "</div>"
        return section(f"Captures ({len(caps)})", f'<table class="grid">{head}{"".join(rows)}</table>{more}',
                       "captures")

    def xfrm_diffs(self, diffs) -> str:
        blocks = []
        for d in diffs:
            label = ""
            if isinstance(d, dict) and "diff" in d:
                label = " ".join(str(d[k]) for k in ("label", "node") if k in d)
                d = d["diff"]
            if not isinstance(d, dict):
                blocks.append(raw_json(label or "diff", d, True))
                continue
            lines = []
            for key, sign, what in (("appeared_states", "+", "state"), ("disappeared_states", "−", "state"),
                                    ("appeared_policies", "+", "policy"), ("disappeared_policies", "−", "policy")):
                for x in d.get(key) or []:
                    lines.append(f'<div class="diff {"add" if sign == "+" else "del"}">{sign} {what} {esc(x)}</div>')
            for key, what in (("changed_states", "state"), ("changed_policies", "policy")):
                for c in d.get(key) or []:
                    txt = f'{c.get("id")}: {c.get("what")}' if isinstance(c, dict) else c
                    lines.append(f'<div class="diff chg">~ {what} {esc(txt)}</div>')
            counters = d.get("xfrm_stat") or []
            crow = ""
            for c in counters if isinstance(counters, list) else []:
                if isinstance(c, dict):
                    delta = (c.get("after", 0) - c.get("before", 0)) if all(
                        isinstance(c.get(k), int) for k in ("before", "after")) else "?"
                    crow += (f'<tr><td class="mono">{esc(c.get("name"))}</td><td class="num">{esc(c.get("before"))}'
                             f'</td><td class="num">{esc(c.get("after"))}</td><td class="num bad-text">+{esc(delta)}</td></tr>')
            body = "".join(lines)
            if crow:
                body += ('<table class="grid small"><tr><th>xfrm_stat</th><th>before</th><th>after</th><th>Δ</th></tr>'
                         + crow + "</table>")
            body += leftover(d, {"appeared_states", "disappeared_states", "appeared_policies", "disappeared_policies",
                                 "changed_states", "changed_policies", "xfrm_stat"})
            blocks.append(f'<div class="card"><div class="card-head"><b>{esc(label or "diff")}</b></div>'
                          f'{body or "<span class=muted>no xfrm change</span>"}</div>')
        return section(f"xfrm diff ({len(diffs)})", "".join(blocks), "xfrm")

    def stat_delta(self, v) -> str:
        rows = []
        items = v.items() if isinstance(v, dict) else []
        for k, x in items:
            if isinstance(x, dict):
                rows.append((k, esc(f'{x.get("before")} -> {x.get("after")}')))
            else:
                rows.append((k, esc(x)))
        if not rows:
            return section("xfrm_stat delta", raw_json("xfrm_stat_delta", v, True))
        return section("xfrm_stat delta", kv_table(rows))

    def layouts(self, layouts) -> str:
        blocks = []
        for l in layouts:
            if not isinstance(l, dict):
                blocks.append(raw_json("layout", l, True))
                continue
            rep = l.get("report") if isinstance(l.get("report"), dict) else l
            ok = rep.get("ok")
            head = f'<div class="card-head"><b>{esc(l.get("label", "layout"))}</b> '
            head += badge(ok, "as expected", "findings") if isinstance(ok, bool) else ""
            facts = " ".join(f"{k} {esc(l[k])}" for k in ("spi",) if k in l)
            if "waited_ms" in l:
                facts += f" · converged after {fmt_ms(l['waited_ms'])}"
            head += f' <span class="muted">{facts}</span></div>'
            body = ""
            for f in rep.get("findings") or []:
                txt = f.get("text") if isinstance(f, dict) else f
                body += f'<div class="diff del">{esc(txt)}</div>'
            dirs = rep.get("directions") or []
            if dirs:
                body += ('<table class="grid small"><tr><th>direction</th><th>SPI</th><th>expected key</th>'
                         '<th>sender key</th><th>receiver key</th><th></th></tr>')
                for d in dirs:
                    if not isinstance(d, dict):
                        continue
                    body += (f'<tr><td>{esc(d.get("from"))} → {esc(d.get("to"))}</td><td class="mono">{esc(d.get("spi"))}</td>'
                             + "".join(f'<td class="mono">{esc(d.get(k) or "missing")}</td>'
                                       for k in ("expected_key", "sender_key", "receiver_key"))
                             + f'<td>{badge(bool(d.get("agree")), "agree", "DISAGREE")}</td></tr>')
                body += "</table>"
            for n in l.get("nodes") or []:
                if isinstance(n, dict):
                    x = n.get("xfrm") if isinstance(n.get("xfrm"), dict) else {}
                    note = f'{len(x.get("states") or [])} states, {len(x.get("policies") or [])} policies'
                    body += raw_json(f'xfrm on {n.get("name", "?")} (KmeshNodeInfo spi {n.get("spi", "?")})', n, False, note)
            body += leftover(l, {"label", "spi", "waited_ms", "report", "nodes", "ok", "findings", "directions"})
            blocks.append(f'<div class="card">{head}{body}</div>')
        return section(f"xfrm layout ({len(layouts)})", "".join(blocks), "layouts")

    def residue(self, v: dict) -> str:
        """Maps whose entry count differs from before the case (authz: after its policies were removed)."""
        if not v:
            return section("Residue", '<div class="muted">every Kmesh map back to its baseline entry count</div>',
                           "residue")
        rows = "".join(f'<tr><td class="mono">{esc(k)}</td><td class="num">{esc(x.get("baseline"))}</td>'
                       f'<td class="num">{esc(x.get("after"))}</td></tr>' for k, x in sorted(v.items())
                       if isinstance(x, dict))
        return section("Residue", '<table class="grid small"><tr><th>map</th><th>entries before</th>'
                                  f'<th>after removal</th></tr>{rows}</table>', "residue")

    def load(self, v) -> str:
        if not isinstance(v, dict):
            return section("Continuous load", raw_json("load", v, True))
        facts = [(k, esc(v[k])) for k in ("requests", "failures", "longest_failure_streak") if k in v]
        for k in ("elapsed_ms", "max_lag_ms"):
            if k in v:
                facts.append((k[:-3], fmt_ms(v[k])))
        recs = v.get("records") if isinstance(v.get("records"), list) else []
        strip = ""
        if recs:
            cells = []
            for r in recs:
                if not isinstance(r, dict):
                    continue
                good = r.get("outcome") == "ok"
                cells.append(f'<i class="{"ok" if good else "bad"}" title="#{esc(r.get("index", "?"))} at '
                             f'{esc(r.get("started_ms", "?"))} ms: {esc(r.get("summary", r.get("outcome", "?")))}"></i>')
            strip = f'<div class="strip" aria-label="one cell per request">{"".join(cells)}</div>'
        body = kv_table(facts) + strip + leftover(v, {"requests", "failures", "longest_failure_streak", "elapsed_ms",
                                                      "max_lag_ms"})
        return section("Continuous load", body, "load")

    def case(self, b: Bundle, idx: int) -> str:
        d = b.doc
        parts = [self.defect(b), self.failures(b), codes_html(d.get("disagreements")), self.notes(b),
                 self.datapath_line(b)]
        handled = {"suite", "title", "env", "passed", "failures", "catch2_failures", "notes", "started", "finished",
                   "mechanism", "kmesh_defect", "datapath", "disagreements", "fault_run", "lab_faults"}
        if b.control_run:
            parts.insert(0, '<div class="muted small control-run">mutation control run: this case ran in '
                            'e2e/mutation\'s suite run with no fault (see <a href="#mutation">Mutation testing</a>)</div>')
        mine = next((m for m in self.run.mutations if m.target == b.target and d.get("mutation") is not None), None)
        if mine is not None:
            handled.add("mutation")
            parts.append(section("Mutation score", f'<div>{esc(mine.score_line())}: the table is in '
                                                   f'<a href="#mutation">Mutation testing</a></div>', "mutation-ref"))

        def guarded(key, fn, value):
            handled.add(key)
            try:
                parts.append(fn(value))
            except Exception as e:  # a section of a shape this tool does not know: show it raw, say so
                parts.append(section(key, f'<div class="muted">not rendered as a known section ({esc(type(e).__name__)}: '
                                          f'{esc(str(e))}); raw JSON:</div>' + raw_json(key, value, True)))

        if isinstance(d.get("policies"), list):
            guarded("policies", self.policies, d["policies"])
        if isinstance(d.get("probes"), list):
            guarded("probes", self.probes, d["probes"])
        diffs = []
        if "xfrm_diff" in d:
            diffs.append(d["xfrm_diff"])
            handled.add("xfrm_diff")
        if isinstance(d.get("xfrm_diffs"), list):
            diffs.extend(d["xfrm_diffs"])
            handled.add("xfrm_diffs")
        if diffs:
            guarded("xfrm_diff", self.xfrm_diffs, diffs)
        if "xfrm_stat_delta" in d:
            guarded("xfrm_stat_delta", self.stat_delta, d["xfrm_stat_delta"])
        lays = ([d["layout"]] if "layout" in d else []) + (d["layouts"] if isinstance(d.get("layouts"), list) else [])
        if lays:
            handled.update({"layout", "layouts"})
            guarded("layout", self.layouts, lays)
        try:
            parts.append(self.captures(b))
        except Exception as e:
            parts.append(section("Captures", f'<div class="muted">captures not rendered ({esc(str(e))})</div>'))
        if isinstance(d.get("captures"), list) and all(map(is_capture, d["captures"])):
            handled.add("captures")
        if "load" in d:
            guarded("load", self.load, d["load"])
        if isinstance(d.get("residue"), dict):
            guarded("residue", self.residue, d["residue"])
        rest = {k: v for k, v in d.items() if k not in handled}
        if rest:
            parts.append(section("Other evidence", leftover(rest, set(), "")))
        where = f'<div class="where muted">bundle: <span class="mono">{esc(b.where)}</span>'
        if b.started is not None:
            where += f' · started {esc(fmt_time(b.started))}'
        where += "</div>"

        status = b.status
        origin = " · ".join(esc(x) for x in (b.target, b.catch2_case) if x)
        catch2 = f'<div class="muted small">{origin}</div>' if origin else ""
        junit_flag = ""
        if b.junit_unexplained and b.passed:
            junit_flag = ' <span class="badge warn" title="its Catch2 test case failed">Catch2 FAIL</span>'
        d = b.defect
        if b.reproduced:
            mark = f'<span class="badge defect" title="Kmesh defect {esc(d.code)} reproduced">DEFECT {esc(d.code)}</span>'
        elif d is not None and b.failed and not b.problem:
            mark = (f'<span class="badge bad" title="Kmesh defect {esc(d.code)} no longer reproduces">FAIL</span>'
                    f'<span class="badge warn">{esc(d.code)} gone</span>')
        else:
            mark = badge(b.passed)
        if b.control_run:
            junit_flag += ' <span class="badge warn" title="e2e/mutation\'s suite run with no fault">control</span>'
        summary = (f'<summary><span>{mark}{junit_flag}</span><span>{esc(b.suite)}</span>'
                   f'<span class="title">{esc(b.title)}{catch2}</span><span>{esc(b.env or "?")}</span>'
                   f'<span class="num">{len(b.probes)}</span><span>{esc(b.mechanism)}</span>'
                   f'<span class="num">{fmt_ms(b.duration_ms)}</span></summary>')
        defect_attr = f' data-defect="{esc(d.code)}"' if d is not None else ""
        return (f'<details class="case {status}" id="case-{idx}" data-status="{status}" data-suite="{esc(b.suite)}" '
                f'data-title="{esc(b.title)}"{defect_attr}{" open" if b.failed else ""}>{summary}'
                f'<div class="body">{"".join(p for p in parts if p)}{where}</div></details>')

    # -- the header's datapath and the defects section

    def datapath_section(self) -> str:
        if not self.dps:
            if not self.run.bundles:
                return ""
            return ('<section id="datapath" class="datapath"><h2>Datapath</h2><div class="muted">No case names the '
                    'datapath it ran on (bundles without a "datapath" field).</div></section>')
        blocks = []
        for i, dp in enumerate(self.dps):
            b = dp.build
            rows = []
            if "kmesh_commit" in b or "pinned_commit" in b:
                rows.append(("Kmesh commit", f'<span class="mono">{esc(dp.commit_text())}</span>'))
            if b.get("tree"):
                found = f' <span class="muted">— {esc(b["tree_found_by"])}</span>' if b.get("tree_found_by") else ""
                rows.append(("tree", f'<span class="mono">{esc(b["tree"])}</span>{found}'))
            if b.get("tree_digest"):
                rows.append(("tree digest", f'<span class="mono">{esc(b["tree_digest"])}</span>'))
            if b.get("object") or b.get("object_sha256"):
                rows.append(("object", f'<span class="mono">{esc(b.get("object", "?"))}</span> sha256 '
                                       f'<span class="mono">{esc(b.get("object_sha256", "?"))}</span>'))
            if b.get("clang"):
                rows.append(("compiler", esc(b["clang"])))
            if b.get("patches"):
                rows.append(("MUTANT", '<span class="bad-text">source patches: ' +
                             esc(", ".join(map(str, b["patches"]))) + "</span>"))
            for k in ("userspace", "waypoint"):
                if b.get(k):
                    rows.append((k, f'<span class="standin">{esc(b[k])}</span>'))
            rows += [(k, scalar_html(v) if not isinstance(v, (dict, list)) else f"<pre>{pretty(v)}</pre>")
                     for k, v in b.items() if k not in BUILD_FIELDS]
            what = esc(b.get("datapath", "datapath"))
            number = f"Datapath {i + 1}: " if len(self.dps) > 1 else ""
            mutant = ' <span class="badge bad">MUTANT</span>' if dp.mutant else ""
            head = (f'<div class="card-head"><b>{number}{what}</b>{mutant}'
                    f' <span class="muted">{len(dp.bundles)} cases</span></div>')
            labs = ""
            for j, lab in enumerate(dp.labs):
                targets = sorted({x.target for x in lab.bundles})
                prog_rows = ""
                for node, info in sorted(lab.nodes.items()):
                    if not isinstance(info, dict):
                        continue
                    progs = info.get("programs") if isinstance(info.get("programs"), list) else []
                    extra = ", ".join(f"{k} {info[k]}" for k in ("pin_dir", "daemon_pid") if k in info)
                    for n, p in enumerate(progs):
                        p = p if isinstance(p, dict) else {"name": json.dumps(p)}
                        node_cell = (f'<td rowspan="{len(progs)}"><b>{esc(node)}</b><div class="muted small mono">'
                                     f'{esc(extra)}</div></td>') if n == 0 else ""
                        prog_rows += (f'<tr>{node_cell}<td class="mono">{esc(p.get("name", "?"))}</td>'
                                      f'<td class="num">{esc(p.get("id", "?"))}</td><td class="mono">'
                                      f'{esc(p.get("tag", "?"))}</td><td class="num">'
                                      f'{esc(p.get("verified_insns", "—"))}</td></tr>')
                table = ('<table class="grid small programs"><tr><th>node</th><th>program</th><th>id</th><th>tag</th>'
                         f'<th>verified insns</th></tr>{prog_rows}</table>') if prog_rows else ""
                labs += (f'<div class="lab"><div class="muted small">{"lab " + str(j + 1) + ": " if len(dp.labs) > 1 else ""}'
                         f'{len(lab.bundles)} cases of {esc(", ".join(targets))}</div>{table}</div>')
            blocks.append(f'<div class="card">{head}{kv_table(rows)}{labs}</div>')
        if self.unnamed:
            suites = ", ".join(sorted({b.suite for b in self.unnamed}))
            blocks.append(f'<div class="muted small">{len(self.unnamed)} cases name no datapath ({esc(suites)}).</div>')
        return f'<section id="datapath" class="datapath"><h2>Datapath every case ran on</h2>{"".join(blocks)}</section>'

    def defects_section(self) -> str:
        groups = defect_groups(self.run)
        if not groups:
            return ""
        idx = {id(b): i for i, b in enumerate(self.run.bundles)}
        rows = []
        for d, bs in groups:
            cases = ""
            for b in bs:
                ev = b.explanations[0] if b.explanations else "(no evidence paragraph in the bundle)"
                state = ('<span class="badge defect">reproduced</span>' if b.reproduced else
                         '<span class="badge bad">NO LONGER REPRODUCES</span>')
                cases += (f'<div class="defect-case">{state} <a href="#case-{idx[id(b)]}">{esc(b.suite)} / '
                          f'{esc(b.title)}</a> <span class="muted small">{esc(b.target)}</span>'
                          f'<pre class="evidence-text">{esc(ev)}</pre></div>')
            what = esc(d.what) if d.what else f'<span class="muted">(not in the bundle; see {esc(CONTRACT_DOC)})</span>'
            rows.append(f'<tr id="defect-{esc(d.code)}"><td><b>{esc(d.code)}</b></td><td>{what}</td>'
                        f'<td class="mono">{esc(d.kmesh_source) or "—"}</td><td>{cases}</td></tr>')
        gone = [b for _, bs in groups for b in bs if not b.reproduced]
        head = esc(defects_line(self.run))
        if gone:
            head += f' <span class="bad-text">· {len(gone)} defect cases no longer reproduce (failures)</span>'
        return (f'<section id="defects" class="defects"><h2>{head}</h2>'
                f'<div class="muted small">Each case below is tagged [kmesh-defect][Dn][!shouldfail]: it fails while '
                f'Kmesh at this commit departs from its offload contract or Istio\'s semantics, and counts as a '
                f'failure the day it passes.</div>'
                f'<table class="grid defects-table"><tr><th>code</th><th>what Kmesh does</th><th>Kmesh source</th>'
                f'<th>cases and their evidence</th></tr>{"".join(rows)}</table></section>')

    # -- e2e/mutation's score

    def mutation_section(self) -> str:
        return "".join(self.mutation_block(m, i) for i, m in enumerate(self.run.mutations))

    def mutation_block(self, m: MutationRun, i: int) -> str:
        anchor = "mutation" if i == 0 else f"mutation-{i + 1}"
        where = f'<div class="muted small">{esc(m.target)} · <span class="mono">{esc(m.where)}</span></div>'
        if m.problem:
            return (f'<section id="{anchor}" class="mutation"><h2>Mutation testing</h2>{where}'
                    f'<div class="alert warn">{esc(m.problem)}; shown raw</div>{raw_json(MUTATION_NAME, m.doc, True)}'
                    f'</section>')
        sc, c, faults = m.score, m.control, m.faults
        survivors = [f for f in faults if f.get("status") in ("survived (known)", "SURVIVED",
                                                               "KILLED (was a known survivor)")]
        equivalents = [f for f in faults if f.get("status") in ("equivalent", "NOT EQUIVALENT") or f.get("equivalent")]
        unexpected = [f for f in faults if f.get("status") not in MUTATION_AS_EXPECTED]
        scored = sc.get("scored") is True
        tiles = [("killed / total", f"{sc.get('killed', '?')} / {sc.get('total', '?')}",
                  "ok" if scored and sc.get("killed") == sc.get("total") else "bad" if not scored else "", "mutation-score"),
                 ("survivors", str(len(survivors)), "bad" if survivors else "", "mutation-survivors"),
                 ("equivalent (not counted)", str(len(equivalents)), "", "mutation-equivalents"),
                 ("faults run", str(len(faults)), "", "mutation-faults"),
                 ("wall time", fmt_ms(m.doc["elapsed_seconds"] * 1000) if isinstance(m.doc.get("elapsed_seconds"),
                                                                                      (int, float)) else "?", "", "mutation-wall")]
        tiles_html = "".join(f'<div class="tile {cl}" id="{tid}"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
                             for k, v, cl, tid in tiles)
        n_control = len(c.get("cases") or [])
        secs = f", {c['seconds']:.1f} s" if isinstance(c.get("seconds"), (int, float)) else ""
        shown = (f"; its bundles ({len(m.control_bundles)} found) are among the cases below, labelled"
                 if m.control_bundles else "")
        if c.get("passed") is True:
            control = (f'<div id="mutation-control">{badge(True, "control passed")} the suite run with no fault: '
                       f'{n_control} cases{esc(secs)}{esc(shown)}. Only then is a failure under a fault credited to it.</div>')
        else:
            probs = "".join(f"<li>{esc(x)}</li>" for x in (c.get("problems") or []))
            control = (f'<div id="mutation-control" class="alert bad">{badge(False, "", "control FAILED")} the suite run '
                       f'with no fault did not pass, so nothing is scored:<ul>{probs}</ul></div>')
        rows = []
        for f in faults:
            rows.append(self.mutation_row(m, f))
        head = ("<tr><th>fault</th><th>kind</th><th>status</th><th>caught by (case)</th><th>with disagreement code</th>"
                "<th>expected code</th><th>run</th></tr>")
        table = f'<table class="grid mutation-table">{head}{"".join(rows)}</table>'

        def finding_list(title, items, field_, cls):
            if not items:
                return ""
            lis = "".join(
                f'<li id="{esc(cls)}-{esc(f.get("id", ""))}"><b class="mono">{esc(f.get("id", "?"))}</b> '
                f'<span class="chip">{esc(f.get("status", "?"))}</span> {esc(f.get("what", ""))}'
                f'<div class="muted small mono">{esc(f.get("kmesh_source", ""))}</div>'
                f'<pre class="{"evidence-text" if f.get("status") in MUTATION_AS_EXPECTED else "failure"}">'
                f'{esc(f.get(field_) or f.get("detail") or "(the row gives no reason)")}</pre></li>' for f in items)
            return f'<h3>{esc(title)}</h3><ul class="findings {esc(cls)}">{lis}</ul>'

        findings = finding_list("Survivors: a mutant no case kills is a finding", survivors, "survivor", "survivor")
        findings += finding_list("Equivalent mutants: the written reason (run, not counted)", equivalents, "equivalent",
                                 "equivalent")
        bad = ""
        if unexpected:
            bad = (f'<div class="alert bad">{len(unexpected)} faults are not as their rows promise: '
                   + ", ".join(f'<a href="#mutation-fault-{esc(f.get("id", ""))}">{esc(f.get("id", "?"))}</a> '
                               f'({esc(f.get("status", "?"))})' for f in unexpected) + "</div>")
        n_fault_bundles = sum(len(v) for v in m.fault_bundles.values())
        apart = (f'<div class="muted small">{n_fault_bundles} case bundles of the fault runs are shown only here (open a '
                 f'row), never as ordinary cases: under a fault, failing is their job.</div>') if n_fault_bundles else ""
        return (f'<section id="{anchor}" class="mutation"><h2>Mutation testing: {esc(m.score_line())}</h2>{where}'
                f'<div class="muted small">Kmesh\'s datapath broken on purpose (runtime faults on the running datapath, '
                f'source mutants of its BPF); a fault is killed only when a named case fails with the disagreement code '
                f'the fault must produce, after a control run with no fault passed (e2e/mutation/README.md).</div>'
                f'<div class="tiles">{tiles_html}</div>{control}{bad}{table}{apart}{findings}</section>')

    def mutation_row(self, m: MutationRun, f: dict) -> str:
        fid = str(f.get("id", "?"))
        status = str(f.get("status", "?"))
        ok = status in MUTATION_AS_EXPECTED
        killed = f.get("killed") is True
        cls = "killed" if killed else "as-promised" if ok else "unexpected"
        badge_cls = "ok" if killed else "warn" if ok else "bad"
        caught = [k for k in (f.get("caught_by") or []) if isinstance(k, dict)]
        cases = "".join(f'<div>{esc(k.get("case", "?"))}</div>' for k in caught)
        codes = "".join("<div>" + "".join(f'<span class="chip code">{esc(x)}</span>' for x in (k.get("codes") or []))
                        + "</div>" for k in caught)
        if not caught and status in ("survived (known)", "equivalent"):
            kind = "survivor" if status == "survived (known)" else "equivalent"
            cases = f'<a href="#{kind}-{esc(fid)}" class="muted">no case: the reason is below</a>'
        elif not caught:
            cases = f'<span class="muted">{esc((str(f.get("detail") or "no case").splitlines() or [""])[0])}</span>'
        others = [k for k in (f.get("other_failures") or []) if isinstance(k, dict)]
        if others:
            cases += ('<div class="muted small">failed with other codes: ' + "; ".join(
                f'{esc(k.get("case", "?"))} [{esc(", ".join(map(str, k.get("codes") or [])))}]' for k in others) + "</div>")
        expected = "".join(f'<span class="chip code">{esc(x)}</span>' for x in (f.get("expected_codes") or []))
        secs = f.get("seconds")
        run_cell = (fmt_ms(secs * 1000) if isinstance(secs, (int, float)) else "—")
        what = (f'<div class="small">{esc(f.get("what", ""))}</div><div class="muted small mono">'
                f'{esc(f.get("kmesh_source", ""))}</div>')
        inject = f.get("patch") or f.get("inject") or ""
        if inject:
            what += f'<div class="muted small mono">{esc(inject)}</div>'
        evidence = ""
        bundles = m.fault_bundles.get(fid, [])
        if bundles:
            items = ""
            for b in bundles:
                ex = b.explanations
                items += (f'<div class="fault-case">{badge(b.bundle_passed, "passed", "failed")} {esc(b.suite)} / '
                          f'{esc(b.title)}{codes_html(b.doc.get("disagreements"))}'
                          + (f'<pre class="failure">{esc(ex[0])}</pre>' if ex else "") + "</div>")
            evidence = (f'<details class="fault-evidence"><summary>{len(bundles)} bundle{"s" if len(bundles) > 1 else ""} of this fault\'s run '
                        f'({esc(f.get("outputs", ""))})</summary>{items}</details>')
        return (f'<tr id="mutation-fault-{esc(fid)}" class="{cls}" data-status="{esc(status)}">'
                f'<td><b class="mono">{esc(fid)}</b>{what}{evidence}</td><td>{esc(f.get("kind", "?"))}</td>'
                f'<td><span class="badge {badge_cls}">{esc(status)}</span></td><td>{cases}</td><td>{codes}</td>'
                f'<td>{expected}</td><td class="num">{run_cell}</td></tr>')

    # -- the whole page

    def render(self) -> str:
        run = self.run
        n = len(run.bundles)
        failed = sum(1 for b in run.bundles if b.failed)
        reproduced = sum(1 for b in run.bundles if b.reproduced)
        passed = n - failed - reproduced
        envs = sorted({b.env for b in run.bundles if b.env})
        start, end = run_span(run)
        all_ok = failed == 0 and not run.junit_orphans
        apart = f"; {reproduced} reproduced a known Kmesh defect" if reproduced else ""
        verdict = ((f"All {n} cases passed" if not reproduced else f"No case failed: {passed} passed{apart}")
                   if all_ok else
                   f"{failed} of {n} cases failed{apart}" if failed else
                   f"All {n} cases passed, but {len(run.junit_orphans)} Catch2 test case(s) failed outside them")
        codes = {b.defect.code for b in run.bundles if b.reproduced}
        tiles = [("cases", str(n), "", "total-cases"), ("passed", str(passed), "ok", "total-passed"),
                 ("failed", str(failed), "bad" if failed else "", "total-failed"),
                 ("Kmesh defects reproduced", f"{reproduced} / {len(codes)}" if reproduced else "0", "defect" if reproduced
                  else "", "total-defects"),
                 ("env", ", ".join(envs) or "?", "", "envs"),
                 ("run", f"{fmt_ms(end - start)}" if start is not None and end is not None else "?", "", "span")]
        tiles_html = "".join(f'<div class="tile {c}" id="{i}"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
                             for k, v, c, i in tiles)
        when = (f"{esc(fmt_time(start))} → {esc(fmt_time(end))}" if start is not None and end is not None else "")
        suites = "".join(f'<tr><td>{esc(s)}</td><td class="num">{p}</td><td class="num{" bad-text" if f else ""}">{f}</td>'
                         f'<td class="num">{d}</td></tr>'
                         for s, (p, f, d) in sorted(suite_counts(run).items()))
        junit = "".join(f'<tr><td class="mono">{esc(t)}</td><td class="num">{c}</td><td class="num{" bad-text" if f else ""}">{f}</td></tr>'
                        for t, (c, f) in sorted(run.junit_counts.items()))
        side = (f'<table class="grid small"><tr><th>suite</th><th>passed</th><th>failed</th><th>Kmesh defects</th></tr>'
                f'{suites}</table>')
        if junit:
            side += (f'<table class="grid small"><tr><th>test target (JUnit)</th><th>Catch2 cases</th><th>failed</th></tr>'
                     f'{junit}</table>')
        alerts = ""
        orphans = [b for b in run.fault_runs if run.mutation_of(b) is None]
        if orphans:
            rows = "".join(f"<li>{esc(b.fault_run or b.doc.get('lab_faults'))}: {esc(b.suite)} / {esc(b.title)} — "
                           f"{'failed' if not b.bundle_passed else 'passed'}</li>"
                           for b in orphans)
            alerts += (f'<details class="alert"><summary>{len(orphans)} cases ran with faults injected on purpose and '
                       f'no mutation score beside them; not counted above</summary><ul>{rows}</ul></details>')
        for t, c in run.junit_orphans:
            alerts += (f'<div class="alert bad"><b>{esc(t)}: Catch2 test case "{esc(c.name)}" failed</b> and no bundle '
                       f'explains it:<pre class="failure">{esc(chr(10).join(c.failures))}</pre></div>')
        for w in run.warnings:
            alerts += f'<div class="alert warn">{esc(w)}</div>'
        cases = "".join(self.case(b, i) for i, b in enumerate(run.bundles))
        sources = ", ".join(f'<span class="mono">{esc(s)}</span>' for s in run.sources)
        generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        return PAGE.format(
            title=esc(f"kmesh-e2e: {verdict}"), verdict_class="ok" if all_ok else "bad", verdict=esc(verdict),
            tiles=tiles_html, when=when, side=side, datapath=self.datapath_section(), alerts=alerts,
            defects=self.mutation_section() + self.defects_section(), cases=cases, sources=sources, generated=esc(generated), css=CSS, js=JS, n=n,
            failed=failed, defects_n=reproduced)


CSS = """
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--bad:#cf222e;--bad-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;
--defect:#8250df;--defect-bg:#fbefff;--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#fff;--head:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:18px 24px;border-bottom:1px solid var(--line);background:var(--head)}
h1{font-size:20px;margin:0 0 4px}
h3{font-size:14px;margin:14px 0 6px}
.verdict{display:inline-block;font-weight:700;font-size:16px;padding:4px 12px;border-radius:6px;margin:6px 0}
.verdict.ok{background:var(--ok-bg);color:var(--ok)}.verdict.bad{background:var(--bad-bg);color:var(--bad)}
.top{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.tiles{display:flex;gap:10px;flex-wrap:wrap}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:90px;background:#fff}
.tile .v{font-size:22px;font-weight:700}.tile .k{color:var(--muted);font-size:12px;text-transform:uppercase}
.tile.ok .v{color:var(--ok)}.tile.bad .v{color:var(--bad)}
main{padding:12px 24px 40px}
.controls{display:flex;gap:8px;align-items:center;margin:10px 0}
button{font:inherit;padding:3px 10px;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}
button[aria-pressed=true]{background:var(--fg);color:#fff}
input[type=search]{font:inherit;padding:3px 8px;border:1px solid var(--line);border-radius:6px;width:260px}
.cols,details.case>summary{display:grid;grid-template-columns:150px 80px minmax(200px,1fr) 70px 60px 150px 80px;
gap:10px;align-items:center;padding:6px 10px}
.cols{font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);font-size:12px;text-transform:uppercase}
details.case{border-bottom:1px solid var(--line)}
details.case>summary{cursor:pointer;list-style:none}
details.case>summary::-webkit-details-marker{display:none}
details.case>summary:hover{background:var(--head)}
details.case.failed>summary{background:var(--bad-bg);border-left:4px solid var(--bad)}
details.case.passed>summary{border-left:4px solid var(--ok)}
details.case[open]>summary .title{font-weight:600}
.body{padding:4px 14px 14px 18px;border-left:4px solid var(--line)}
details.case.failed>.body{border-left-color:var(--bad)}
.badge{display:inline-block;font-weight:700;font-size:12px;padding:1px 8px;border-radius:10px;margin-right:4px}
.badge.ok{background:var(--ok);color:#fff}.badge.bad{background:var(--bad);color:#fff}
.badge.warn{background:var(--warn-bg);color:var(--warn);border:1px solid var(--warn)}
.badge.defect{background:var(--defect);color:#fff}
details.case.defect>summary{border-left:4px solid var(--defect);background:var(--defect-bg)}
details.case.defect>.body{border-left-color:var(--defect)}
.tile.defect .v{color:var(--defect)}
h2{font-size:16px;margin:14px 0 6px}
section.datapath .card{background:#fff}
section.datapath table.kv th{min-width:110px}
.standin{font-style:italic}
pre.evidence-text{background:var(--defect-bg);border:1px solid var(--defect);border-left:5px solid var(--defect);
font-size:12.5px;max-height:24em}
table.defects-table td{vertical-align:top}
table.defects-table td:nth-child(1){width:40px}table.defects-table td:nth-child(2){width:24%}
table.defects-table td:nth-child(3){width:20%;overflow-wrap:anywhere}
table.programs td:first-child{max-width:340px;overflow-wrap:anywhere}
.defect-case{margin:2px 0 8px}
.chip.code{font-family:ui-monospace,monospace;margin-left:4px;background:var(--head)}
.chip{font-size:12px;border:1px solid var(--line);border-radius:10px;padding:0 8px;margin-left:8px}
.muted{color:var(--muted)}.small{font-size:12px}.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:var(--head);border:1px solid var(--line);border-radius:6px;padding:8px;overflow:auto;margin:4px 0;white-space:pre-wrap}
pre.failure{background:var(--bad-bg);border:1px solid var(--bad);border-left:5px solid var(--bad);color:#82071e;font-size:13px;
max-height:30em}
details.json pre{max-height:40em}
.bad-text{color:var(--bad);font-weight:600}.ok-text{color:var(--ok);font-weight:600}
table{border-collapse:collapse}
table.grid{width:100%;margin:4px 0 8px}
table.grid th,table.grid td{border:1px solid var(--line);padding:4px 6px;vertical-align:top;text-align:left}
table.grid th{background:var(--head);font-size:12px}
table.grid.small{width:auto;font-size:12.5px}
table.kv th{text-align:left;padding:2px 12px 2px 0;color:var(--muted);font-weight:500;vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0}
tr.bad-row td{background:var(--bad-bg)}
tr.probe-extra td{border-top:none}
ul.disagree{margin:2px 0;padding-left:18px;color:var(--bad);font-weight:600}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:6px 0}
.card-head{margin-bottom:4px}
.evidence{font-family:ui-monospace,monospace;font-size:12.5px}
details.json>summary,details.manifest>summary{cursor:pointer;color:#0969da;margin:2px 0}
.diff{font-family:ui-monospace,monospace;font-size:12.5px;padding:1px 6px}
.diff.add{background:var(--ok-bg)}.diff.del{background:var(--bad-bg)}.diff.chg{background:var(--warn-bg)}
.strip{display:flex;flex-wrap:wrap;gap:1px;margin:6px 0}
.strip i{width:7px;height:14px;display:block}.strip i.ok{background:var(--ok)}.strip i.bad{background:var(--bad)}
.alert{padding:8px 12px;border-radius:6px;margin:6px 0}
.alert.bad{background:var(--bad-bg);border:1px solid var(--bad)}.alert.warn{background:var(--warn-bg);border:1px solid var(--warn)}
.where{margin-top:10px;font-size:12px}
footer{color:var(--muted);font-size:12px;padding:0 24px 20px}
section.mutation{margin:10px 0 18px}section.mutation .tiles{margin:8px 0}
table.mutation-table{table-layout:fixed}table.mutation-table td{vertical-align:top;overflow-wrap:anywhere}
table.mutation-table th:nth-child(1){width:30%}table.mutation-table th:nth-child(2){width:6%}
table.mutation-table th:nth-child(3){width:9%}table.mutation-table th:nth-child(4){width:20%}
table.mutation-table th:nth-child(7){width:6%}table.mutation-table tr.unexpected td{background:var(--bad-bg)}
table.mutation-table tr.as-promised td{background:var(--warn-bg)}
ul.findings{padding-left:18px}details.fault-evidence>summary{cursor:pointer;color:#0969da;font-size:12px}
"""

JS = """
(function(){
  var cases=[].slice.call(document.querySelectorAll('details.case'));
  var onlyFailed=document.getElementById('only-failed'), onlyDefects=document.getElementById('only-defects'),
      q=document.getElementById('filter');
  function on(b){return b.getAttribute('aria-pressed')==='true';}
  function apply(){
    var want=q.value.toLowerCase(), only=on(onlyFailed), defects=on(onlyDefects), shown=0;
    cases.forEach(function(c){
      var show=(!only||c.dataset.status==='failed')&&(!defects||c.dataset.defect!==undefined)&&
               (!want||c.textContent.toLowerCase().indexOf(want)>=0);
      c.hidden=!show; if(show) shown++;
    });
    document.getElementById('shown').textContent=shown+' of '+cases.length+' shown';
  }
  [onlyFailed,onlyDefects].forEach(function(b){b.addEventListener('click',function(){
    b.setAttribute('aria-pressed',on(b)?'false':'true');apply();});});
  q.addEventListener('input',apply);
  document.getElementById('expand').addEventListener('click',function(){cases.forEach(function(c){c.open=true;});});
  document.getElementById('collapse').addEventListener('click',function(){cases.forEach(function(c){c.open=false;});});
  apply();
  document.body.setAttribute('data-ready','1');
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body data-cases="{n}" data-failed="{failed}" data-defects="{defects_n}">
<header>
<h1>kmesh-e2e evidence report</h1>
<div class="verdict {verdict_class}" id="verdict">{verdict}</div>
<div class="top"><div><div class="tiles">{tiles}</div><div class="muted small" style="margin-top:6px">{when}</div></div>
<div>{side}</div></div>
{datapath}
</header>
<main>
{alerts}
{defects}
<div class="controls"><button id="only-failed" aria-pressed="false">failed only</button>
<button id="only-defects" aria-pressed="false">Kmesh defects only</button>
<button id="expand">expand all</button><button id="collapse">collapse all</button>
<input type="search" id="filter" placeholder="filter: title, tuple, SPI, text…"><span class="muted" id="shown"></span></div>
<div class="cols"><span>result</span><span>suite</span><span>case</span><span>env</span><span>probes</span><span>mechanism</span><span>duration</span></div>
{cases}
</main>
<footer>Sources: {sources} · generated {generated} by tools/report. IPsec keys appear as fingerprints only.</footer>
<script>{js}</script>
</body></html>
"""


# ---------------------------------------------------------------------------------------------------------

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
