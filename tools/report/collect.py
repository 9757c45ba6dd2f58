"""tools/report, collect: finds a run's evidence (bundles in folders and zips, JUnit files, e2e/mutation's
mutation.json), reads each against the evidence schema (e2e/framework/evidence_schema.json), withholds raw
keys, and returns one Run. Knows nothing of HTML."""
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


BUNDLE_NAME = "evidence.json"
ZIP_NAME = "outputs.zip"
# e2e/mutation's score (its README, "mutation.json"), at its test's output root; its own bundle carries the same
# document under "mutation".
MUTATION_NAME = "mutation.json"


class InputError(Exception):
    """An input the report cannot use: says what was wrong and where."""


# ---------------------------------------------------------------------------------------------------------
# The evidence schema: the sections of evidence.json and mutation.json and their fields, declared once in
# e2e/framework/evidence_schema.h (which the C++ writers use) and read here from the JSON that header prints
# (e2e/framework/evidence_schema.json, beside this tree in the source and in Bazel's runfiles alike).

SCHEMA_PATH = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "e2e",
                                            "framework", "evidence_schema.json"))


def load_schema(path: str = SCHEMA_PATH) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: the evidence schema cannot be read ({e}); it comes with the report "
                         f"(bazel run //e2e/framework:evidence_schema prints it)")
    for key in ("evidence.json", "mutation.json", "bundle_identity", "mutation_kind", "disagreement_codes"):
        if key not in schema:
            raise InputError(f"{path}: no '{key}' in the evidence schema (e2e/framework/evidence_schema.cc)")
    return schema


SCHEMA = load_schema()
# name -> its declaration ({name, shape, required, written_by, what, fields})
BUNDLE_SECTIONS: Dict[str, dict] = {s["name"]: s for s in SCHEMA["evidence.json"]}
MUTATION_SECTIONS: Dict[str, dict] = {s["name"]: s for s in SCHEMA["mutation.json"]}
MUTATION_KIND: str = SCHEMA["mutation_kind"]


def fields_of(section: str) -> List[str]:
    """The fields the schema declares for each entry of a bundle section (probes, policies, ...)."""
    return list(BUNDLE_SECTIONS.get(section, {}).get("fields", []))
# The suite run of e2e/mutation with no fault: its bundles are ordinary cases (labelled); every other fault_run's
# bundles ran with a fault on purpose and are never counted as the run's results.
CONTROL_RUN = "control"


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


def typed(doc: dict, key: str, kind, default=None):
    """doc[key] when it is a `kind`, else `default` (a bundle written by hand or by an older run may differ)."""
    v = doc.get(key)
    return v if isinstance(v, kind) else default


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
        return typed(self.doc, "datapath", dict)

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
        return typed(self.doc, "started", int)

    @property
    def finished(self) -> Optional[int]:
        return typed(self.doc, "finished", int)

    @property
    def duration_ms(self) -> Optional[int]:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def probes(self) -> list:
        return typed(self.doc, "probes", list, [])

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
        return typed(self.doc, "fault_run", str, "")

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
        return typed(self.doc, "score", dict, {})

    @property
    def control(self) -> dict:
        return typed(self.doc, "control", dict, {})

    @property
    def faults(self) -> List[dict]:
        return [f for f in typed(self.doc, "faults", list, []) if isinstance(f, dict)]

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
    shapes = {"object": dict, "list of objects": list}
    for s in SCHEMA["mutation.json"]:
        typ = shapes.get(s["shape"])
        if s["required"] and typ is not None and not isinstance(doc.get(s["name"]), typ):
            return doc, f"{where}: '{s['name']}' is missing or not {'an object' if typ is dict else 'a list'} " \
                        f"(e2e/mutation/score.cc ToJson writes it; e2e/framework/evidence_schema.h)"
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
    identity = SCHEMA["bundle_identity"]
    missing = [k for k in identity if k not in doc]
    if missing:
        return doc, (f"{where}: missing {', '.join(missing)} (every kmesh::e2e::Case writes {', '.join(identity)}: "
                     f"e2e/framework/evidence_schema.h)")
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


