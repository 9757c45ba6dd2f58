"""kmesh-e2e build macros: test tiers and BPF objects.

Tiers (tags; select with --config=unit|kernel|e2e, or a package's :unit/:kernel/:e2e test_suite):
  unit    sandboxed, no privileges.
  kernel  root: network namespaces, BPF, xfrm. Runs outside Bazel's sandbox; names are unique per run,
          so parallel runs never collide. Fails (never passes) without root.
  e2e     the suites on the lab. Same privileges as kernel.

A suite that links //e2e/envs (whose MakeEnv picks the lab or, with KMESH_E2E_ENV=kube, a cluster) is also
tagged `kube`: it runs on a real cluster unchanged. `--config=kind` (.bazelrc) selects only those, and
tools/vm/vm_test.sh runs them on the host there (the kernel under test is the cluster's, not this one's).
"""

_ENV_PROVIDER = "//e2e/envs"

def _cluster_tags(deps):
    # Labels in deps may be written relative or absolute; the provider's package is what counts.
    for d in deps:
        if d == _ENV_PROVIDER or d == _ENV_PROVIDER + ":envs":
            return ["kube"]
    return []

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
    _test(name, "e2e", deps, ["no-sandbox", "no-remote"] + _cluster_tags(deps) + tags, env, size, **kwargs)

def kmesh_tier_suites():
    """One test_suite per tier for the tests of the calling package."""
    for tier in ["unit", "kernel", "e2e"]:
        # Public: e2e/kube:kind_config_test queries every package's e2e tier for what --config=kind selects.
        native.test_suite(name = tier, tags = [tier], visibility = ["//visibility:public"])

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

def kmesh_vm_test(name, srcs = [], deps = [], data = [], tier = "kernel", kernel = "auto", tags = [], env = {},
                  size = "large", args = [], **kwargs):
    """A Catch2 test (kernel or e2e tier) whose binary runs through tools/vm/run.

    kernel = "auto" runs it on the host when the host kernel has what the lab needs (veth, XDP, BTF, ESP
    with rfc4106(gcm(aes))), else inside the Debian kernel tools/vm boots under QEMU; "vm" always boots
    it; "host" never does. The binary, its runfiles, XML_OUTPUT_FILE and TEST_UNDECLARED_OUTPUTS_DIR are
    the same paths inside the guest (the host's root is shared over 9p), so `bazel test` works unchanged.
    Tagged `vm` besides the tier. tools/vm/run stops the guest before Bazel's own timeout and says so.
    """
    if tier not in ["kernel", "e2e"]:
        fail("kmesh_vm_test %s: tier must be \"kernel\" or \"e2e\", got %r" % (name, tier))
    if kernel not in ["auto", "host", "vm"]:
        fail("kmesh_vm_test %s: kernel must be \"auto\", \"host\" or \"vm\", got %r" % (name, kernel))
    binary = name + "_guest_binary"
    native.cc_binary(
        name = binary,
        srcs = srcs,
        deps = deps + [_CATCH_MAIN],
        data = data,
        testonly = True,
        tags = ["manual"],
        **kwargs
    )
    native.sh_test(
        name = name,
        srcs = ["//tools/vm:vm_test.sh"],
        args = [kernel, "$(rootpath :%s)" % binary] + args,
        data = [":" + binary, "//tools/vm:runner"],
        # exclusive: a TCG guest wants both cores; next to other tests it boots several times slower.
        tags = [tier, "vm", "exclusive", "no-sandbox", "no-remote"] +
               (_cluster_tags(deps) if tier == "e2e" else []) + tags,
        env = dict(env, KMESH_E2E_TIER = tier),
        size = size,
    )
