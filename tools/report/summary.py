"""tools/report, summary: what a collected Run says (counts, the datapath every case ran on, Kmesh defects,
the mutation score) and the one-screen text summary. Shared by the page (render.py)."""
import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from collect import CONTRACT_DOC, STATUS_DEFECT, STATUS_FAILED, STATUS_PASSED, Bundle, Defect, Run, defect_order


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


