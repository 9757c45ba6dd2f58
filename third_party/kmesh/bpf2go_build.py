#!/usr/bin/env python3
"""One Kmesh BPF object, compiled the way Kmesh's `go generate bpf/kmesh/bpf2go/bpf2go.go` does.

Kmesh's go:generate lines (bpf/kmesh/bpf2go/bpf2go.go:21-39) run cilium/ebpf's bpf2go with `--cflags
$EXTRA_CFLAGS --cflags $EXTRA_CDEFINE` (a string flag given twice: only the last, EXTRA_CDEFINE = -D__x86_64__
on x86_64 per kmesh_compile_env_pre.sh:94-98, is kept) and the flags after `--`; bpf2go compiles from the
folder holding bpf2go.go and runs:

    clang -O2 -mcpu=v1 <cflags> -Wunused-command-line-argument -target bpfel -c <abs src> -o <out>
          -fno-ident -fdebug-prefix-map=<abs src dir>=<src dir relative to bpf2go> -fdebug-compilation-dir .
          -g -D__BPF_TARGET_MISSING="..."
    llvm-strip -g <out>

with C_INCLUDE_PATH=/usr/include/x86_64-linux-gnu (kmesh_compile_env_pre.sh:97). Writes <out> and a
build record (JSON): the tree's identity, the compiler's version line, the object's sha256, the command.

Called by the kmesh_bpf_object rule (defs.bzl); not meant to be run by hand.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

# bpf2go's fixed flags (cilium/ebpf cmd/bpf2go compile: overrideFlags, then the flags it always adds).
_BPF2GO_FIRST = ["-O2", "-mcpu=v1"]
_BPF2GO_TARGET_MISSING = ('-D__BPF_TARGET_MISSING="GCC error \\"The eBPF is using target specific macros, '
                          'please provide -target that is not bpf, bpfel or bpfeb\\""')
_C_INCLUDE_PATH = "/usr/include/x86_64-linux-gnu"


def _die(msg):
    sys.stderr.write("kmesh_bpf_object: %s\n" % msg)
    sys.exit(1)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _tool(name, what):
    path = shutil.which(name)
    if not path:
        _die("%s not found on PATH (%s). Run tools/bootstrap: it installs Debian's clang-19 and llvm-19. "
             "Kmesh's xdp.c needs clang >= 16: with clang 14 or 15 policy_check exceeds the verifier's "
             "1,000,000-instruction limit (E2BIG)." % (name, what))
    return path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tree_root", required=True, help="execroot path of @kmesh_src")
    p.add_argument("--src", required=True, help="source, relative to the tree root")
    p.add_argument("--srcs_list", required=True, help="file listing every input of the tree, one per line")
    p.add_argument("--tree_info", required=True)
    p.add_argument("--identity_list", required=True, help="the tree's files as in the tree, one per line")
    p.add_argument("--pinned_digest", required=True, help="SNAPSHOT_SHA256")
    p.add_argument("--clang", required=True)
    p.add_argument("--strip", required=True)
    p.add_argument("--patch", action="append", default=[])
    p.add_argument("--name", required=True)
    p.add_argument("--bpf2go_name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("flags", nargs="*", help="Kmesh's flags: the last --cflags, then those after --")
    a = p.parse_args()

    clang = _tool(a.clang, "the compiler for Kmesh's BPF")
    strip = _tool(a.strip, "bpf2go strips DWARF with llvm-strip -g")
    execroot = os.getcwd()
    out = os.path.join(execroot, a.out)
    tree = os.path.join(execroot, a.tree_root)
    with open(a.srcs_list) as f:
        inputs = sorted(l.strip() for l in f if l.strip())

    staged = None
    if a.patch:
        # A source mutant: a private copy of the inputs with the patches applied; the tree stays untouched.
        staged = tempfile.mkdtemp(prefix="kmesh-mutant-")
        for rel in inputs:
            dst = os.path.join(staged, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(tree, rel), dst)
        for patch in a.patch:
            r = subprocess.run(["patch", "-p1", "--batch", "--forward", "-d", staged, "-i",
                                os.path.join(execroot, patch)], capture_output=True, text=True)
            if r.returncode != 0:
                _die("patch %s does not apply to %s (a copy of %s):\n%s%s"
                     % (patch, a.src, a.tree_root, r.stdout, r.stderr))
        tree = staged

    workdir = os.path.join(tree, "bpf/kmesh/bpf2go")
    if not os.path.isdir(workdir):
        _die("%s is missing: bpf2go compiles from bpf/kmesh/bpf2go (is @kmesh_src a Kmesh tree?)" % workdir)
    # bpf2go makes the source absolute (filepath.Abs: lexical) and maps its folder back to the relative one.
    src_abs = os.path.normpath(os.path.join(tree, a.src))
    src_dir = os.path.dirname(src_abs)
    rel_dir = os.path.relpath(src_dir, workdir)
    cmd = ([clang] + _BPF2GO_FIRST + a.flags +
           ["-Wunused-command-line-argument", "-target", "bpfel", "-c", src_abs, "-o", out, "-fno-ident",
            "-fdebug-prefix-map=%s=%s" % (src_dir, rel_dir), "-fdebug-compilation-dir", ".", "-g",
            _BPF2GO_TARGET_MISSING])
    env = dict(os.environ, C_INCLUDE_PATH=_C_INCLUDE_PATH)
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        _die("compiling Kmesh's %s (%s) failed:\n%s\ncommand (in %s): %s"
             % (a.src, a.bpf2go_name, r.stderr, workdir, " ".join(cmd)))
    r2 = subprocess.run([strip, "-g", out], capture_output=True, text=True)
    if r2.returncode != 0:
        _die("%s -g %s failed: %s" % (strip, out, r2.stderr))

    version = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with open(a.tree_info) as f:
        tree_info = json.load(f)
    # The identity digest as of this build (tree_info.json's is as of the fetch): the same formula as
    # SNAPSHOT_SHA256, over the files as they are in the tree (its own config header sits under original/).
    with open(a.identity_list) as f:
        identity = [l.strip() for l in f if l.strip()]
    listing = sorted((rel[len("original/"):] if rel.startswith("original/") else rel, rel) for rel in identity)
    digest = hashlib.sha256("".join("%s  %s\n" % (_sha256(os.path.join(execroot, a.tree_root, rel)), shown_rel)
                                    for shown_rel, rel in listing).encode()).hexdigest()
    with open(a.pinned_digest) as f:
        pinned = [l.strip() for l in f if l.strip() and not l.startswith("#")][0]
    tree_info.update({
        "digest": "sha256:" + digest,
        "digest_vs_pinned": "matches pinned snapshot" if digest == pinned else "differs",
        "as_of": "build",
    })
    if tree_info.get("kind") == "snapshot":
        tree_info["modified"] = digest != pinned
    h = hashlib.sha256()
    for rel in inputs:
        h.update(("%s %s\n" % (_sha256(os.path.join(tree, rel)), rel)).encode())

    def shown(s):  # paths in the record are relative to the tree (or the execroot): no sandbox paths
        return s.replace(tree + "/", "<tree>/").replace(execroot + "/", "")

    record = {
        "name": a.name,
        "bpf2go_name": a.bpf2go_name,
        "source": a.src,
        "kmesh": tree_info,
        "patches": [{"file": pf, "sha256": _sha256(os.path.join(execroot, pf))} for pf in a.patch],
        "inputs_sha256": h.hexdigest(),
        "clang": version,
        "object": os.path.basename(a.out),
        "object_sha256": _sha256(out),
        "object_bytes": os.path.getsize(out),
        "workdir": "<tree>/bpf/kmesh/bpf2go",
        "env": {"C_INCLUDE_PATH": _C_INCLUDE_PATH},
        "command": [shown(c) for c in cmd],
        "strip": [os.path.basename(strip), "-g", os.path.basename(a.out)],
        "warnings": r.stderr.count("warning:"),
    }
    with open(a.record, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    if staged:
        shutil.rmtree(staged, ignore_errors=True)


if __name__ == "__main__":
    main()
