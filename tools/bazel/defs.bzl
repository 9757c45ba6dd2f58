"""kmesh-e2e build macros: test tiers and BPF objects.

Tiers (tags; select with --config=unit|kernel|e2e, or a package's :unit/:kernel/:e2e test_suite):
  unit    sandboxed, no privileges.
  kernel  root: network namespaces, BPF, xfrm. Runs outside Bazel's sandbox; names are unique per run,
          so parallel runs never collide. Fails (never passes) without root.
  e2e     the suites on the lab. Same privileges as kernel.
"""

_CATCH_MAIN = "//e2e/framework:catch_main"

def _test(name, tier, deps, tags, env, size, **kwargs):
    native.cc_test(
        name = name,
        deps = deps + [_CATCH_MAIN],
        tags = [tier] + tags,
        env = dict(env, KMESH_E2E_TIER = tier),
        size = size,
        **kwargs
    )

def kmesh_unit_test(name, deps = [], tags = [], env = {}, size = "small", **kwargs):
    _test(name, "unit", deps, tags, env, size, **kwargs)

def kmesh_kernel_test(name, deps = [], tags = [], env = {}, size = "medium", **kwargs):
    # no-sandbox: namespaces, BPF and netlink need the real root, not the sandbox's.
    _test(name, "kernel", deps, ["no-sandbox", "no-remote"] + tags, env, size, **kwargs)

def kmesh_e2e_test(name, deps = [], tags = [], env = {}, size = "large", **kwargs):
    _test(name, "e2e", deps, ["no-sandbox", "no-remote"] + tags, env, size, **kwargs)

def kmesh_tier_suites():
    """One test_suite per tier for the tests of the calling package."""
    for tier in ["unit", "kernel", "e2e"]:
        native.test_suite(name = tier, tags = [tier])

def bpf_object(name, src, hdrs = [], visibility = None):
    """Compiles one BPF C file (`*.bpf.c`) with clang -target bpf -g -O2 into `<name>.o` (BTF included).

    C++ code loads it from runfiles: add the target to `data` and use kmesh::Runfile("<pkg>/<name>.o").
    """
    native.genrule(
        name = name,
        srcs = [src] + hdrs,
        outs = [name + ".o"],
        cmd = ("clang -target bpf -g -O2 -Wall -Werror " +
               "-I/usr/include/x86_64-linux-gnu -I. -I$(GENDIR) " +
               "-c $(location %s) -o $@" % src),
        visibility = visibility,
        message = "Compiling BPF object %s" % src,
    )
