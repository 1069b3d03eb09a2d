#!/usr/bin/env python3
"""Times tlspeek against cat, tcpdump and tshark on one capture: warm page cache, best of N
runs (wall clock), MB/s, ratios and max RSS. The full benchmark with a generator and a truth
check is issue 6; this is the quick comparison quoted in docs/plan.md.

    bench/compare.py FILE [RUNS]
"""
import os
import subprocess
import sys
import time

F = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BIN = os.environ.get("TLSPEEK", os.path.join(os.path.dirname(__file__), "..", "target", "release", "tlspeek"))
SIZE = os.path.getsize(F)
TSHARK = ["tshark", "-r", F, "-n", "-2", "-o", "tcp.desegment_tcp_streams:TRUE", "-o",
          "tls.desegment_ssl_records:TRUE", "-Y", "tls.handshake.type==1 || tls.handshake.type==11 || http.request",
          "-T", "fields", "-e", "tcp.stream", "-e", "tls.handshake.extensions_server_name", "-e",
          "tls.handshake.extensions_alpn_str", "-e", "tls.handshake.certificate", "-e", "http.request.method",
          "-e", "http.request.uri", "-e", "http.host"]
CMDS = [("cat", ["cat", F]), ("tcpdump", ["tcpdump", "-nr", F, "-w", "/dev/null"]), ("tshark", TSHARK),
        ("tlspeek --json", [BIN, "-r", F, "--json"]), ("tlspeek table", [BIN, "-r", F])]


def measure(cmd):
    """(best seconds, max RSS KB of the child) over N runs."""
    best, rss = float("inf"), 0
    for _ in range(N):
        t0 = time.perf_counter()
        # /usr/bin/time reports the command's own peak RSS (a forked Python would count its own).
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", "/tmp/compare.rss"] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
        rss = max(rss, int(open("/tmp/compare.rss").read().split()[-1]))
    return best, rss


subprocess.run(["cat", F], stdout=subprocess.DEVNULL)
res = {}
for name, cmd in CMDS:
    t, rss = measure(cmd)
    res[name] = t
    print(f"{name:16} {t:9.4f} s {SIZE / 1e6 / t:9.1f} MB/s {rss:9d} KB max RSS")
j = res["tlspeek --json"]
print(f"tlspeek --json: {res['tshark'] / j:.1f}x faster than tshark; {res['tcpdump'] / j:.2f}x the speed of tcpdump "
      f"(file {SIZE / 1e6:.1f} MB)")
