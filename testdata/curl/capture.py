#!/usr/bin/python3
"""Re-records testdata/curl/: what the real curl of this machine prints for each probe outcome.

    sudo testdata/curl/capture.py        (root: it creates two network namespaces; ~15 s)

Two namespaces of its own (kme2e-<pid>-curlcli-0 with the sleep pod's address 10.244.0.12, kme2e-<pid>-
curlsrv-0 with httpbin's 10.244.1.7, the addresses of testdata/kubectl's pods) joined by a veth created
inside them: nothing on the machine's own network changes, and a run killed half-way leaves namespaces
that the harness's sweep (netns::SweepStale) removes. The server side is, per case, the lab's httpbin
(gunicorn) on port 8080, a small socket server that resets, closes or stays silent, a tc filter that
XDP program that drops the client's TCP packets (as Kmesh's xdp_authz drops a denied SYN; compiled here
with clang), or nothing at all.

Each case runs curl with the argv the harness builds (traffic/traffic.cc CurlArgv; the unit test
rebuilds it from the recorded spec and compares) and keeps stdout (`-w '%{json}'`), stderr (`-v`) and the
exit code verbatim. captures.json lists them with the curl version. Python 3 standard library only.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_IP, SERVER_IP, PORT = "10.244.0.12", "10.244.1.7", 8080
CONNECT_TIMEOUT_MS, RESPONSE_TIMEOUT_MS = 500, 3000  # base/defaults.h ConnectTimeout, ResponseTimeout
CLIENT = f"kme2e-{os.getpid()}-curlcli-0"
SERVER = f"kme2e-{os.getpid()}-curlsrv-0"
BOUND_S = 30  # any one step (server start, one curl)

# An XDP program for the server's interface that drops every IPv4 TCP packet, as Kmesh's xdp_authz drops
# a denied SYN (ARP and the rest pass).
XDP_DROP_TCP = r"""
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int drop_tcp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end) return XDP_PASS;
  return ip->protocol == IPPROTO_TCP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""

# A server that accepts, reads the request, then resets, closes, or holds the connection without a word.
SOCKET_SERVER = r"""
import socket, struct, sys, time
mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(8)
held = []
while True:
    c, _ = s.accept()
    c.recv(65536)
    if mode == "reset":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    elif mode == "close":
        c.close()
    else:
        held.append(c)
"""


def sh(*argv, ns=None, check=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=BOUND_S)
    if check and p.returncode != 0:
        raise SystemExit(f"capture.py: `{' '.join(cmd)}` exited {p.returncode}: {p.stderr.strip()}")
    return p


def start(argv, ns):
    return subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=BOUND_S)


def wait_accepting(what):
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        p = sh("curl", "-s", "-o", "/dev/null", "--max-time", "1", "--noproxy", "*",
               f"http://{SERVER_IP}:{PORT}/status/200", ns=CLIENT, check=False)
        if p.returncode in (0, 52, 56, 28) and (what != "httpbin" or p.returncode == 0):
            return
        time.sleep(0.2)
    raise SystemExit(f"capture.py: {what} did not accept on {SERVER_IP}:{PORT} within {BOUND_S} s")


def seconds(ms):
    return "%.3f" % (ms / 1000.0)


def curl_argv(dst_ip, path, src_port):
    # The argv of traffic/traffic.cc CurlArgv for ProbeSpec{dst_ip, PORT, src_port, path} and the
    # default timeouts.
    return ["curl", "-sS", "-v", "-o", "/dev/null", "-w", "%{json}", "--noproxy", "*",
            "--connect-timeout", seconds(CONNECT_TIMEOUT_MS),
            "--max-time", seconds(CONNECT_TIMEOUT_MS + RESPONSE_TIMEOUT_MS),
            "--local-port", str(src_port), "--globoff", f"http://{dst_ip}:{PORT}{path}"]


def setup():
    sh("ip", "netns", "add", CLIENT)
    sh("ip", "netns", "add", SERVER)
    sh("ip", "link", "add", "eth0", "netns", CLIENT, "type", "veth", "peer", "name", "eth0", "netns", SERVER)
    for ns, ip in ((CLIENT, CLIENT_IP), (SERVER, SERVER_IP)):
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", f"{ip}/16", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)


def teardown():
    for ns in (CLIENT, SERVER):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=BOUND_S)


def main():
    if os.geteuid() != 0:
        raise SystemExit("capture.py: run as root (it creates network namespaces)")
    cases = {}

    def capture(name, what, dst_ip=SERVER_IP, path="/", src_port=None):
        src_port = src_port or 42001 + len(cases)
        argv = curl_argv(dst_ip, path, src_port)
        p = sh(*argv, ns=CLIENT, check=False)
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            f.write(p.stdout)
        with open(os.path.join(HERE, name + ".stderr"), "w") as f:
            f.write(p.stderr)
        cases[name] = {"what": what, "argv": argv, "exit_code": p.returncode,
                       "spec": {"dst_ip": dst_ip, "dst_port": PORT, "src_port": src_port, "path": path,
                                "connect_timeout_ms": CONNECT_TIMEOUT_MS, "response_timeout_ms": RESPONSE_TIMEOUT_MS},
                       "stdout": name + ".json", "stderr": name + ".stderr"}
        print(f"capture.py: {name}: curl exited {p.returncode}")

    server = None
    setup()
    try:
        server = start(["gunicorn", "-b", f"{SERVER_IP}:{PORT}", "-w", "1", "httpbin:app"], SERVER)
        wait_accepting("httpbin")
        capture("ok", "httpbin (gunicorn) answers 200 to GET /")
        capture("status_302", "httpbin answers 302 (curl does not follow it)", path="/status/302")
        capture("status_403", "httpbin answers 403, as a waypoint's RBAC denial does", path="/status/403")
        capture("status_503", "httpbin answers 503", path="/status/503")
        # XDP on the server's interface drops the client's TCP packets: the SYN goes unanswered.
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "drop_tcp.bpf.c"), "w") as f:
                f.write(XDP_DROP_TCP)
            sh("clang", "-target", "bpf", "-O2", "-g", "-I/usr/include/x86_64-linux-gnu", "-c",
               os.path.join(tmp, "drop_tcp.bpf.c"), "-o", os.path.join(tmp, "drop_tcp.bpf.o"))
            sh("ip", "link", "set", "dev", "eth0", "xdp", "obj", os.path.join(tmp, "drop_tcp.bpf.o"), "sec", "xdp",
               ns=SERVER)
        capture("connect_timeout", "XDP on the server's interface drops the SYN (httpbin listening behind it)")
        sh("ip", "link", "set", "dev", "eth0", "xdp", "off", ns=SERVER)
        stop(server)
        for mode, name, what in (("reset", "reset", "the server reads the request, then resets the connection"),
                                 ("close", "empty_reply", "the server reads the request, then closes without a word"),
                                 ("silent", "read_timeout", "the server accepts and never answers")):
            server = start(["/usr/bin/python3", "-c", SOCKET_SERVER, mode, SERVER_IP, str(PORT)], SERVER)
            wait_accepting(mode)
            capture(name, what)
            stop(server)
        server = None
        capture("refused", "nothing listens on the port: the server's kernel answers RST")
        capture("unreachable", "no route to the destination from the client", dst_ip="10.245.0.1")
    finally:
        stop(server)
        teardown()
    version = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=BOUND_S).stdout
    with open(os.path.join(HERE, "captures.json"), "w") as f:
        json.dump({"curl_version": version.splitlines()[0],
                   "captured": time.strftime("%Y-%m-%d", time.gmtime()),
                   "client_ip": CLIENT_IP, "server_ip": SERVER_IP,
                   "how": "testdata/curl/capture.py", "cases": cases}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
