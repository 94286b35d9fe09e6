"""A hostile-client campaign against the real tail server on loopback, with the outcome of each kind.

    python scripts/hostile_clients.py --out results/edge/hostile_clients.md

Starts `python -m mia_tf serve --model lenet_mnist --layer relu2 --port 0` and sends, from this
process, requests of ten kinds (random bodies, truncated and bit-flipped binary tensors, huge
declared shapes, wrong shapes, NaN, broken and hostile JSON, odd paths and methods, a 1 TB
Content-Length), then opens `--stalled` connections that promise a body and never send it while
honest requests go on. Every exchange is bounded in time; the server is stopped at the end and
its intercept log read back: every record must be one that was answered 200, none torn or
refused, and the server's output must hold no traceback.
"""

import argparse
import collections
import json
import os
import platform
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge import wire  # noqa: E402
from mia_tf.intercept_log import read_log  # noqa: E402
from mia_tf.serve import url_in_banner  # noqa: E402
from mia_tf.report import format_table, write_results_file  # noqa: E402

NAME = "lenet_mnist_relu2"
SHAPE = (8, 8, 16)


def exchange(address, request, timeout=30.0):
    """(status or 'dropped', seconds) of one raw request on its own connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=timeout) as s:
            s.sendall(request)
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    return "dropped", time.perf_counter() - started
                reply += chunk
        return int(reply.split()[1]), time.perf_counter() - started
    except (ConnectionError, socket.timeout):
        return "dropped", time.perf_counter() - started


def post(body, content_type=wire.CONTENT_TYPE, path=f"/v1/models/{NAME}:predict", method="POST", length=None):
    length = len(body) if length is None else length
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


def hostile_requests(rng, per_kind):
    """{kind: [raw request bytes]}: what a hostile or broken client sends."""
    valid = wire.encode(np.abs(rng.standard_normal((1, *SHAPE))).astype(np.float32))

    def flipped():
        body = bytearray(valid)
        for _ in range(rng.integers(1, 4)):
            bit = int(rng.integers(0, 8 * 24))  # the header and the shape
            body[bit // 8] ^= 1 << (bit % 8)
        return bytes(body)

    def huge_shape():
        body = bytearray(valid)
        struct.pack_into("<4I", body, 16, *(int(d) for d in rng.integers(1 << 20, 1 << 31, 4)))
        return bytes(body)

    nested = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    kinds = {
        "random bytes": lambda: post(rng.bytes(int(rng.integers(0, 5000)))),
        "truncated tensor": lambda: post(valid[:int(rng.integers(0, len(valid)))]),
        "bit-flipped tensor": lambda: post(flipped()),
        "huge declared shape": lambda: post(huge_shape()),
        "wrong shape": lambda: post(wire.encode(np.zeros((1, *rng.integers(1, 9, 3)), np.float32))),
        "NaN features": lambda: post(wire.encode(np.full((1, *SHAPE), np.nan, np.float32))),
        "broken JSON": lambda: post(json.dumps({"instances": [[1, 2]]}).encode()[:int(rng.integers(1, 20))],
                                    "application/json"),
        "hostile JSON": lambda: post(nested if rng.random() < 0.5 else b'{"instances": "' + b"A" * 100_000 + b'"}',
                                     "application/json"),
        "odd path or method": lambda: post(b"{}", "application/json",
                                           rng.choice(["/", "/v1/models/x:predict", "/%00", f"/v1/models/{NAME}/../.."]),
                                           rng.choice(["POST", "PUT", "DELETE", "PATCH", "BREW"])),
        "1 TB Content-Length": lambda: post(valid, length=1 << 40),
    }
    return {kind: [make() for _ in range(per_kind)] for kind, make in kinds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=25, help="requests of each hostile kind")
    parser.add_argument("--stalled", type=int, default=40, help="connections that promise a body and stall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    started_all = time.time()
    with tempfile.TemporaryDirectory(prefix="hostile_") as scratch:
        log_path = os.path.join(scratch, "intercept.log")
        server = subprocess.Popen([sys.executable, "-m", "mia_tf", "serve", "--model", "lenet_mnist", "--layer", "relu2",
                                   "--port", "0", "--intercept-log", log_path], cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        host, port = url_in_banner(server.stdout.readline()).removeprefix("http://").split(":")
        address = (host, int(port))
        outcomes, answered = collections.defaultdict(collections.Counter), 0
        try:
            for kind, requests in hostile_requests(rng, args.per_kind).items():
                for request in requests:
                    status, _ = exchange(address, request)
                    outcomes[kind][status if status == "dropped" else f"{status // 100}xx"] += 1
                    answered += status == 200
            # connections that promise a body and never send it, while honest clients go on
            stalled = []
            for _ in range(args.stalled):
                s = socket.create_connection(address, timeout=120)
                s.sendall(post(b"", length=4096))  # the headers, and then nothing
                stalled.append(s)
            honest = []
            body = wire.encode(np.zeros((1, *SHAPE), np.float32))
            for _ in range(20):
                status, seconds = exchange(address, post(body))
                honest.append((status, seconds))
                answered += status == 200
            stalled_dropped = 0
            for s in stalled:  # the server must drop each within its request time limit
                s.settimeout(90)
                try:
                    s.recv(65536)  # returns once the server answers or closes
                    stalled_dropped += 1
                except OSError:
                    stalled_dropped += 1
                s.close()
        finally:
            server.send_signal(signal.SIGTERM)
            _, stderr = server.communicate(timeout=60)
        records, torn, refused = read_log(log_path)
    rows = [[kind, sum(c.values()), c.get("2xx", 0), c.get("4xx", 0), c.get("5xx", 0), c.get("dropped", 0)]
            for kind, c in outcomes.items()]
    totals = [sum(r[i] for r in rows) for i in range(1, 6)]
    honest_ms = 1000.0 * np.array([s for _, s in honest])
    command = f"python scripts/hostile_clients.py --per-kind {args.per_kind} --stalled {args.stalled} --seed {args.seed} --out {args.out}"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    text = (f"# Hostile clients against the tail server ({NAME})\n\nMade by `{command}` on {machine}, "
            f"{time.time() - started_all:.0f} s.\n\n"
            + format_table(["kind", "requests", "2xx", "4xx", "5xx", "dropped"], rows + [["all", *totals]])
            + f"\n\n{args.stalled} connections promised a 4,096-byte body and sent none; meanwhile 20 honest "
              f"requests got {sum(s == 200 for s, _ in honest)} answers of 200 (median {np.median(honest_ms):.1f} ms, "
              f"largest {honest_ms.max():.1f} ms), and the server dropped {stalled_dropped} of the {args.stalled} "
              f"stalled connections. Intercept log afterwards: {len(records)} records for {answered} requests "
              f"answered 200, {torn} torn bytes, {len(refused)} refused records; tracebacks in the server's "
              f"output: {stderr.count('Traceback')}.\n")
    write_results_file(args.out, text, {"command": command, "machine": machine, "outcomes": outcomes,
                                        "log_records": len(records), "answered_200": answered, "torn_bytes": torn,
                                        "refused_records": len(refused), "tracebacks": stderr.count("Traceback")})
    print(text)
    ok = totals[3] == 0 and totals[4] == 0 and len(records) == answered and torn == 0 and not refused
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
