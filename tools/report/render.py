"""tools/report, render: the one self-contained HTML page of a Run (CSS and JS inline, nothing fetched).
Everything is rendered here (the page works without JS); every bundle string goes through esc()."""
import datetime
import html
import json
import os
from typing import List, Optional, Tuple

from collect import BUNDLE_SECTIONS, CONTRACT_DOC, MUTATION_NAME, Artifact, Bundle, MutationRun, Run, fields_of
from summary import (BUILD_FIELDS, MUTATION_AS_EXPECTED, datapaths, defect_groups, defects_line, fmt_ms,
                     fmt_time, run_span, suite_counts)


# Where the page shows each section of the evidence schema (collect.BUNDLE_SECTIONS, from
# e2e/framework/evidence_schema.h). report_test checks that this names exactly the schema's sections, so a
# section added to the schema must be given a place here; a key a bundle holds outside the schema is shown
# under "Other evidence" and said to be unknown.
SECTION_PLACES = {
    "suite": "the case row", "title": "the case row", "env": "the case row", "passed": "the case row",
    "started": "the case row", "finished": "the case row", "mechanism": "the case row",
    "failures": "Why it failed", "catch2_failures": "Why it failed", "notes": "Notes",
    "disagreements": "disagreement code chips", "kmesh_defect": "Kmesh defect (and the defects table)",
    "datapath": "the Datapath header (and a line per case)", "fault_run": "the mutation section (and a label)",
    "lab_faults": "the mutation section", "mutation": "Mutation testing", "policies": "Policy applied",
    "probes": "Probes", "residue": "Residue", "layouts": "xfrm layout", "layout": "xfrm layout",
    "xfrm_diffs": "xfrm diff", "xfrm_diff": "xfrm diff", "xfrm_stat_delta": "xfrm_stat delta",
    "captures": "Captures", "load": "Continuous load",
    # Shown as they are, under "Other evidence" (scalars as a table, the rest folded).
    "family": "Other evidence", "km_wlpolicy_after_removal": "Other evidence", "secrets": "Other evidence",
    "marking": "Other evidence", "rotation_ms": "Other evidence",
}


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
            body += leftover(p, set(fields_of("policies")))
            cards.append(f'<div class="card">{body}</div>')
        return section(f"Policy applied ({len(pols)})", "".join(cards), "policies")

    def probes(self, probes) -> str:
        rows = []
        known = set(fields_of("probes"))
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
            caps = [k for k, v in p.items() if is_capture(v) or (isinstance(v, list) and v and all(map(is_capture, v)))]
            rest = {k: v for k, v in p.items() if k not in known or k in caps}
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
            owner = self.run.mutation_of(b)
            parts.insert(0, '<div class="muted small control-run">mutation control run: this case ran in '
                            'e2e/mutation\'s suite run with no fault (see '
                            f'<a href="#{self.mutation_anchor(owner)}">Mutation testing</a>)</div>')
        mine = next((m for m in self.run.mutations if m.target == b.target and d.get("mutation") is not None), None)
        if mine is not None:
            handled.add("mutation")
            parts.append(section("Mutation score", f'<div>{esc(mine.score_line())}: the table is in '
                                                   f'<a href="#{self.mutation_anchor(mine)}">Mutation testing</a>'
                                                   f'</div>', "mutation-ref"))

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
            unknown = sorted(k for k in rest if k not in BUNDLE_SECTIONS)
            note = (f'<div class="muted small">not in the evidence schema (e2e/framework/evidence_schema.h): '
                    f'{esc(", ".join(unknown))}</div>') if unknown else ""
            parts.append(section("Other evidence", note + leftover(rest, set(), "")))
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

    def mutation_anchor(self, m: Optional[MutationRun]) -> str:
        """The id of a score's section: "mutation" for the first (or unknown), "mutation-2" and on for more."""
        i = next((i for i, x in enumerate(self.run.mutations) if x is m), 0)
        return "mutation" if i == 0 else f"mutation-{i + 1}"

    def mutation_section(self) -> str:
        return "".join(self.mutation_block(m, i) for i, m in enumerate(self.run.mutations))

    def mutation_block(self, m: MutationRun, i: int) -> str:
        anchor = self.mutation_anchor(m)
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
        suites = sorted({str(f["suite"]) for f in faults if f.get("suite")})
        of = f" of the {', '.join(suites)} suite{'s' if len(suites) > 1 else ''}" if suites else ""
        return (f'<section id="{anchor}" class="mutation"><h2>Mutation testing{esc(of)}: {esc(m.score_line())}</h2>'
                f'{where}'
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


