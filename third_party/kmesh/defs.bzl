"""kmesh_bpf_object: one of Kmesh's BPF objects, built from @kmesh_src the way Kmesh's bpf2go call does.

Produces `<name>.o` and `<name>.build.json` (the tree's identity from tree_info.json, the clang version
line, the object's sha256, the exact command). C++ loads the object from runfiles:
kmesh::Runfile("third_party/kmesh/<name>.o").

The action's inputs are the tree's files (symlinks into the tree), so editing one rebuilds the objects;
the record's digest is recomputed then, and says whether the tree still matches the pinned snapshot. `patches` (optional) builds a source mutant: the inputs are copied into the action's scratch
space, the patches applied there with `patch -p1` at the tree's root, and the object built from the copy.
"""

def _kmesh_bpf_object_impl(ctx):
    src = ctx.file.src
    tree_root = src.owner.workspace_root
    if not tree_root or not src.path.startswith(tree_root + "/"):
        fail("kmesh_bpf_object %s: src %s is not a file of an external Kmesh tree (@kmesh_src)" % (ctx.label, src.path))
    srcs = ctx.files.srcs
    if src not in srcs:
        srcs = srcs + [src]
    for f in srcs:
        if not f.path.startswith(tree_root + "/"):
            fail("kmesh_bpf_object %s: %s is not in the same tree as %s" % (ctx.label, f.path, src.path))

    obj = ctx.actions.declare_file(ctx.label.name + ".o")
    record = ctx.actions.declare_file(ctx.label.name + ".build.json")
    srcs_list = ctx.actions.declare_file(ctx.label.name + ".srcs")
    ctx.actions.write(srcs_list, "\n".join([f.path[len(tree_root) + 1:] for f in srcs]) + "\n")
    identity = ctx.files._identity_files
    identity_list = ctx.actions.declare_file(ctx.label.name + ".identity")
    ctx.actions.write(identity_list, "\n".join([f.path[len(tree_root) + 1:] for f in identity]) + "\n")

    clang = ctx.attr.clang
    strip = ctx.attr.strip or ("llvm-strip" + (clang[len("clang"):] if clang.startswith("clang") else ""))
    args = ctx.actions.args()
    args.add(ctx.file._builder)
    args.add("--tree_root", tree_root)
    args.add("--src", src.path[len(tree_root) + 1:])
    args.add("--srcs_list", srcs_list)
    args.add("--tree_info", ctx.file.tree_info)
    args.add("--identity_list", identity_list)
    args.add("--pinned_digest", ctx.file._pinned_digest)
    args.add("--clang", clang)
    args.add("--strip", strip)
    for p in ctx.files.patches:
        args.add("--patch", p)
    args.add("--name", ctx.label.name)
    args.add("--bpf2go_name", ctx.attr.bpf2go_name)
    args.add("--out", obj)
    args.add("--record", record)
    args.add("--")
    args.add_all(ctx.attr.flags)

    ctx.actions.run_shell(
        command = "exec python3 \"$@\"",
        arguments = [args],
        inputs = depset(
            srcs + ctx.files.patches +
            [ctx.file.tree_info, ctx.file._builder, srcs_list, identity_list, ctx.file._pinned_digest],
            transitive = [depset(identity)],
        ),
        outputs = [obj, record],
        mnemonic = "KmeshBpf",
        progress_message = "Compiling Kmesh's %s (%s) with %s%s" % (
            src.path[len(tree_root) + 1:],
            ctx.attr.bpf2go_name,
            clang,
            ", %d patch(es)" % len(ctx.files.patches) if ctx.files.patches else "",
        ),
        # PATH from the client: clang-19 is a system package (tools/bootstrap).
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([obj, record]), runfiles = ctx.runfiles(files = [obj, record]))]

kmesh_bpf_object = rule(
    implementation = _kmesh_bpf_object_impl,
    attrs = {
        "src": attr.label(allow_single_file = [".c"], mandatory = True, doc = "the BPF C file, e.g. @kmesh_src//:bpf/kmesh/workload/xdp.c"),
        "srcs": attr.label_list(allow_files = True, mandatory = True, doc = "every file of the tree the compile reads"),
        "bpf2go_name": attr.string(mandatory = True, doc = "the bpf2go identifier in Kmesh, e.g. KmeshXDPAuth"),
        "flags": attr.string_list(doc = "Kmesh's flags: the last --cflags ($EXTRA_CDEFINE), then those after --"),
        "patches": attr.label_list(allow_files = [".patch", ".diff"], doc = "a source mutant: patches applied (-p1, tree root) to a copy"),
        "tree_info": attr.label(allow_single_file = True, default = "@kmesh_src//:tree_info.json"),
        "clang": attr.string(default = "clang-19", doc = "clang >= 16 (14/15 push policy_check past the verifier's limit)"),
        "strip": attr.string(doc = "default: llvm-strip with clang's version suffix"),
        "_builder": attr.label(allow_single_file = True, default = "//third_party/kmesh:bpf2go_build.py"),
        # The whole tree's files, so the recorded identity digest is the tree's as of this build.
        "_identity_files": attr.label(default = "@kmesh_src//:identity_files"),
        "_pinned_digest": attr.label(allow_single_file = True, default = "//third_party/kmesh:SNAPSHOT_SHA256"),
    },
    doc = "One Kmesh BPF object built from the Kmesh tree as Kmesh's bpf2go does (see the module docstring).",
)

def kmesh_xdp_object(name, patches = [], **kwargs):
    """Kmesh's XDP authorization object (bpf/kmesh/bpf2go/bpf2go.go:25): xdp_authz, policies_check,
    policy_check, xdp_shutdown_in_userspace. One definition of its flags, shared by //third_party/kmesh:xdp
    and the source mutants of e2e/mutation (`patches`), so a mutant differs from Kmesh's object only by
    its patch.
    """
    kmesh_bpf_object(
        name = name,
        src = "@kmesh_src//:bpf/kmesh/workload/xdp.c",
        srcs = ["@kmesh_src//:bpf_workload_srcs"],
        bpf2go_name = "KmeshXDPAuth",
        # $EXTRA_CDEFINE (-D__x86_64__ on x86_64, kmesh_compile_env_pre.sh:94-96), then bpf2go.go:25's.
        flags = [
            "-D__x86_64__",
            "-I../workload/include",
            "-I../../include",
            "-I../../../api/v2-c",
            "-DKERNEL_VERSION_HIGHER_5_13_0=1",
        ],
        patches = patches,
        **kwargs
    )

def kmesh_sockops_object(name, patches = [], **kwargs):
    """Kmesh's workload sockops object (bpf/kmesh/bpf2go/bpf2go.go:24): sockops_prog. One definition of its
    flags, shared by //third_party/kmesh:sockops and e2e/mutation's source mutants (`patches`).
    """
    kmesh_bpf_object(
        name = name,
        src = "@kmesh_src//:bpf/kmesh/workload/sockops.c",
        srcs = ["@kmesh_src//:bpf_workload_srcs"],
        bpf2go_name = "KmeshSockopsWorkload",
        flags = [
            "-D__x86_64__",
            "-I../workload/include",
            "-I../../include",
            "-I../probes",
            "-DKERNEL_VERSION_HIGHER_5_13_0=1",
        ],
        patches = patches,
        **kwargs
    )

def kmesh_tc_encrypt_object(name, patches = [], **kwargs):
    """Kmesh's IPsec egress marking object (bpf/kmesh/bpf2go/bpf2go.go:28): tc_mark_encrypt and km_nodeinfo.
    One definition of its flags, shared by //third_party/kmesh:tc_mark_encrypt and e2e/mutation's source
    mutants (`patches`).
    """
    kmesh_bpf_object(
        name = name,
        src = "@kmesh_src//:bpf/kmesh/general/tc_mark_encrypt.c",
        srcs = ["@kmesh_src//:bpf_general_srcs"],
        bpf2go_name = "KmeshTcMarkEncrypt",
        # $EXTRA_CDEFINE (-D__x86_64__ on x86_64, kmesh_compile_env_pre.sh:94-96), then bpf2go.go:28's.
        flags = [
            "-D__x86_64__",
            "-I../general/include",
            "-I../../include",
            "-DKERNEL_VERSION_HIGHER_5_13_0=1",
        ],
        patches = patches,
        **kwargs
    )
