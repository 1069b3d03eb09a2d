#!/usr/bin/env python3
"""Compares tlspeek's `retransmission` flag with tshark's TCP analysis, flow by flow.

    scripts/retx-check.py [--bin target/release/tlspeek] CAPTURE [CAPTURE ...]

For each capture: the flows (unordered endpoint pairs) in which tshark marks a segment with
payload, or a SYN, as a retransmission (`tcp.analysis.retransmission`, `fast_retransmission` or
`spurious_retransmission`, with TCP reassembly off), against the flows tlspeek's `--json` flags
`retransmission`. Prints, per capture and in total, the flows both flag and those only one
does (up to 5 named each). tshark's analysis is a heuristic of its own (it calls a late segment
out of order or a retransmission from its timing; a keep-alive probe is not counted), so this
is a report, not a gate: exit 0 unless a tool failed.
"""
import argparse
import json
import subprocess
import sys

# (Segments with payload and SYNs: tlspeek's flag is about bytes seen twice, or a connection
# attempt sent again; tshark also marks a retransmitted SYN-ACK or FIN.)
FILTER = ("(tcp.analysis.retransmission or tcp.analysis.fast_retransmission "
          "or tcp.analysis.spurious_retransmission) "
          "and (tcp.len > 0 or (tcp.flags.syn == 1 and tcp.flags.ack == 0))")


def pair(a, b):
    return tuple(sorted((a, b)))


def endpoint(ip4, ip6, port):
    return f"{ip4}:{port}" if ip4 else f"[{ip6}]:{port}"


def tshark_flows(cap):
    out = subprocess.run(
        ["tshark", "-r", cap, "-o", "tcp.desegment_tcp_streams:FALSE", "-Y", FILTER, "-T", "fields",
         "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"],
        capture_output=True, text=True).stdout  # (exit 2 on a file cut short: what it read counts)
    flows = set()
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 6 or not f[2]:
            continue
        # (Tunnelled packets list the outer and inner addresses: the innermost is last.)
        last = lambda s: s.split(",")[-1]
        flows.add(pair(endpoint(last(f[0]), last(f[1]), last(f[2])),
                       endpoint(last(f[3]), last(f[4]), last(f[5]))))
    return flows


def tlspeek_flows(binary, cap):
    run = subprocess.run([binary, "-q", "-r", cap, "--json"], capture_output=True, text=True)
    if run.returncode >= 100 or "panicked" in run.stderr:
        sys.exit(f"retx-check: tlspeek failed on {cap}: {run.stderr.strip()}")
    flows = set()
    for line in run.stdout.split("\n"):
        if not line:
            continue
        rec = json.loads(line)
        if rec.get("type") == "flow" and "retransmission" in (rec.get("flags") or []):
            flows.add(pair(rec["client"], rec["server"]))
    return flows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tlspeek")
    ap.add_argument("captures", nargs="+")
    args = ap.parse_args()
    total = [0, 0, 0]
    for cap in args.captures:
        theirs, ours = tshark_flows(cap), tlspeek_flows(args.bin, cap)
        both, only_t, only_o = theirs & ours, sorted(theirs - ours), sorted(ours - theirs)
        for i, n in enumerate((len(both), len(only_t), len(only_o))):
            total[i] += n
        if theirs or ours:
            print(f"{cap}: both {len(both)}, only tshark {len(only_t)}, only tlspeek {len(only_o)}")
            for name, rows in (("only tshark", only_t), ("only tlspeek", only_o)):
                for a, b in rows[:5]:
                    print(f"    {name}: {a} {b}")
    print(f"total: flows flagged by both {total[0]}, only tshark {total[1]}, only tlspeek {total[2]}")


if __name__ == "__main__":
    main()
