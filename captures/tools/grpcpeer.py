#!/usr/bin/python3
"""gRPC peers for captures/make-h2.sh: Debian's python3-grpcio (gRPC core 29 = grpcio 1.51, its own
HTTP/2 and HPACK) over an insecure channel (h2c, prior knowledge). Run with Debian's /usr/bin/python3:
a pyenv python on PATH does not have python3-grpcio.

No generated code: the methods are generic handlers on raw bytes, and the messages are small
protobufs encoded here (field numbers below), so gRPC frames each one with its 5-byte prefix as
for any generated stub.

    grpcpeer.py server BIND PORT
        reviews.Reviews on BIND:PORT until killed:
          GetReview(ReviewRequest{1: product_id}) -> Review{1: product_id, 2: reviewer, 3: text}
              product_id 0 -> UNAVAILABLE "upstream connect error: café ☕ 100% down" before any
              message (a trailers-only response)
          ListReviews(ReviewRequest{1: product_id, 2: count}) -> stream of `count` Reviews;
              count > 5 -> RESOURCE_EXHAUSTED "quota exceeded: 5 reviews/call" after 5 messages
              (trailers after DATA). product_id 1 -> answered gzip-compressed.
    grpcpeer.py client TARGET SCENARIO [--authority A] [--pause S] [--calls N]
        One channel (one TCP connection), the calls of SCENARIO in order:
          unary      GetReview(1) with metadata authorization/x-request-id/x-trace-bin -> OK;
                     GetReview(0) -> UNAVAILABLE; GetReview(2) -> OK
          streaming  ListReviews(1, 3) gzip -> 3 messages, OK; ListReviews(2, 7) -> 5 messages,
                     RESOURCE_EXHAUSTED
          series     N x GetReview(i) (i = 1..N), S seconds apart (the mid-connection capture)
          mesh       GetReview(1) -> OK, GetReview(0) -> UNAVAILABLE (through the sidecars)
        Prints one line per call (status, message, messages received) to stdout.
"""
import argparse
import sys
import time
from concurrent import futures

import grpc

SERVICE = "reviews.Reviews"
FAIL_MESSAGE = "upstream connect error: café ☕ 100% down"
QUOTA_MESSAGE = "quota exceeded: 5 reviews/call"
TOKEN = "Bearer eyJhbGciOiJSUzI1NiJ9.Z3JwYy10b2tlbg.SIG-9f2e"   # fake: the redaction test


# --- tiny protobuf ---------------------------------------------------------------------------------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(*fields):
    """fields: (number, int | str | bytes) -> protobuf bytes."""
    out = b""
    for num, v in fields:
        if isinstance(v, int):
            out += _varint(num << 3) + _varint(v)
        else:
            v = v.encode() if isinstance(v, str) else v
            out += _varint(num << 3 | 2) + _varint(len(v)) + v
    return out


def unpb(data):
    """protobuf bytes -> {number: value} (varints and length-delimited only)."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        if key & 7 == 0:
            out[key >> 3], i = _read_varint(data, i)
        else:
            n, i = _read_varint(data, i)
            out[key >> 3] = data[i:i + n]
            i += n
    return out


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def review(pid, k=0):
    return pb((1, pid), (2, f"Reviewer{k + 1}"),
              (3, "An extremely entertaining play by Shakespeare." if k % 2 == 0
               else "Absolutely fun and entertaining."))


# --- server ----------------------------------------------------------------------------------------

def get_review(req, ctx):
    pid = unpb(req).get(1, 0)
    md = dict(ctx.invocation_metadata())
    print(f"server: GetReview({pid}) authorization={'yes' if 'authorization' in md else 'no'}",
          flush=True)
    if pid == 0:
        ctx.abort(grpc.StatusCode.UNAVAILABLE, FAIL_MESSAGE)
    if pid == 9:
        time.sleep(1.0)                 # slower than the client's deadline: it cancels the call
    return review(pid)


def list_reviews(req, ctx):
    m = unpb(req)
    pid, count = m.get(1, 0), m.get(2, 1)
    print(f"server: ListReviews({pid}, {count})", flush=True)
    if pid == 1:
        ctx.set_compression(grpc.Compression.Gzip)
    for k in range(min(count, 5)):
        yield review(pid, k)
    if count > 5:
        ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, QUOTA_MESSAGE)


def server(a):
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "GetReview": grpc.unary_unary_rpc_method_handler(get_review),
        "ListReviews": grpc.unary_stream_rpc_method_handler(list_reviews),
    }),))
    s.add_insecure_port(f"{a.args[0]}:{a.args[1]}")
    s.start()
    s.wait_for_termination()


# --- client ----------------------------------------------------------------------------------------

def report(name, fn):
    try:
        out = fn()
        n = len(out) if isinstance(out, list) else 1
        print(f"client: {name} -> OK ({n} message{'s' if n != 1 else ''})", flush=True)
    except grpc.RpcError as e:
        print(f"client: {name} -> {e.code().name}: {e.details()}", flush=True)


def client(a):
    target, scenario = a.args
    opts = [("grpc.default_authority", a.authority)] if a.authority else []
    with grpc.insecure_channel(target, options=opts) as ch:
        get = ch.unary_unary(f"/{SERVICE}/GetReview")
        lst = ch.unary_stream(f"/{SERVICE}/ListReviews")
        if scenario == "unary":
            md = (("authorization", TOKEN), ("x-request-id", "grpc-unary-1"),
                  ("x-trace-bin", bytes([0, 1, 2, 0xFE, 0xFF])))
            report("GetReview(1)", lambda: get(pb((1, 1)), metadata=md, timeout=5))
            report("GetReview(0)", lambda: get(pb((1, 0)), metadata=(("x-request-id", "grpc-unary-2"),),
                                               timeout=5))
            report("GetReview(2)", lambda: get(pb((1, 2)), timeout=5))
        elif scenario == "streaming":
            report("ListReviews(1, 3) gzip", lambda: list(lst(pb((1, 1), (2, 3)), timeout=5,
                                                              compression=grpc.Compression.Gzip)))
            report("ListReviews(2, 7)", lambda: list(lst(pb((1, 2), (2, 7)), timeout=5)))
        elif scenario == "series":
            for i in range(1, a.calls + 1):
                report(f"GetReview({i})", lambda: get(pb((1, i)),
                                                      metadata=(("x-request-id", f"grpc-series-{i}"),),
                                                      timeout=5))
                time.sleep(a.pause)
        elif scenario == "deadline":
            report("GetReview(9) 0.3 s deadline", lambda: get(pb((1, 9)), timeout=0.3,
                                                              metadata=(("x-request-id", "grpc-deadline-1"),)))
            report("GetReview(3)", lambda: get(pb((1, 3)), timeout=5,
                                               metadata=(("x-request-id", "grpc-deadline-2"),)))
            time.sleep(1.0)             # the server's late answer to the cancelled call
        elif scenario == "mesh":
            report("GetReview(1)", lambda: get(pb((1, 1)), metadata=(("x-request-id", "grpc-mesh-1"),),
                                               timeout=5))
            report("GetReview(0)", lambda: get(pb((1, 0)), metadata=(("x-request-id", "grpc-mesh-2"),),
                                               timeout=5))
        else:
            sys.exit(f"unknown scenario {scenario}")
        time.sleep(a.linger)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("args", nargs="*")
    p.add_argument("--authority")
    p.add_argument("--pause", type=float, default=0.5)
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--linger", type=float, default=0.3)
    a = p.parse_args()
    server(a) if a.role == "server" else client(a)


if __name__ == "__main__":
    main()
