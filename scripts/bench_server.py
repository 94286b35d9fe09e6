"""Throughput and latency of the tail server under many concurrent edge clients, on loopback.

    python scripts/bench_server.py --model lenet_mnist --layer relu2 --out results/edge/server_lenet_mnist_relu2.md

It exports the head (float32 and int8) with `python -m mia_tf export`, starts the real server
with `python -m mia_tf serve` on 127.0.0.1, and runs each edge client as its own process: the
LiteRT head on real test images, then the features to the server, one image per request, over a
kept-alive connection. Every client sends a fixed number of requests (bounded in count and
time), and the server's intercept log is fsynced per request as in normal use.
Per setting: requests per second, latency percentiles of the whole round trip (head + HTTP), and
the proof of no loss: the log records the setting added must equal the requests answered, with
no torn or refused record. At the end: the server's peak memory (VmHWM), and the raw Keras tail
(the server's own compiled predict function, in this process, on one-image batches of the same
features) for what the server adds on top. Heads come from export/ when it has them.
"""

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge.client import TailClient  # noqa: E402
from edge.head import EdgeHead  # noqa: E402
from mia_tf import data as data_lib  # noqa: E402
from mia_tf.intercept_log import read_log  # noqa: E402
from mia_tf.serve import default_server_name, url_in_banner  # noqa: E402
from mia_tf.report import format_table, write_results_file  # noqa: E402

HEADER = ["head", "body", "clients", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "logged", "lost / torn / refused"]


def _client(args):
    """One edge device: returns its per-request round-trip seconds and when it finished."""
    tflite, url, name, body_format, requests, images, start_at = args
    head = EdgeHead(tflite, num_threads=1)
    client = TailClient(url, name, body_format)
    scale_zero = head.output_quantization
    head.run(images[:1])
    time.sleep(max(0.0, start_at - time.time()))  # all clients start together
    seconds = []
    for i in range(requests):
        started = time.perf_counter()
        client.predict(head.run(images[i % len(images)][None]), *scale_zero)
        seconds.append(time.perf_counter() - started)
    client.close()
    return seconds, time.time()


def _start_server(args, log):
    server = subprocess.Popen(
        [sys.executable, "-m", "mia_tf", "serve", "--model", args.model, "--layer", args.layer, "--port", "0",
         "--intercept-log", log], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = server.stdout.readline()
    try:
        url = url_in_banner(line)
    except ValueError:
        server.kill()
        sys.exit(f"the server did not start: {line}")
    return server, url, default_server_name(args.model, args.layer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet_mnist")
    parser.add_argument("--layer", default="relu2")
    parser.add_argument("--clients", default="1,4,16,64", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--out", required=True, help="Markdown file (a .json with the raw figures beside it)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_server_") as scratch:
        measure(args, scratch)


def _heads(args, scratch, name):
    """The directory holding <name>_float32/_int8.tflite: export/ if it has them, else a fresh export."""
    shipped = os.path.join(ROOT, "export")
    if all(os.path.exists(os.path.join(shipped, f"{name}_{v}.tflite")) for v in ("float32", "int8")):
        return shipped
    subprocess.run([sys.executable, "-m", "mia_tf", "export", "--model", args.model, "--layer", args.layer,
                    "--variant", "all", "--notail", "--out", scratch, "--data-dir",
                    os.environ.get("MIA_TF_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return scratch


def _peak_memory_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _raw_tail_ms(model, layer, head_path, images, repeats=500):
    """Median ms of the server's own predict function on one-image batches, in this process."""
    from mia_tf import models
    from mia_tf.serve import TailService
    from mia_tf.split import split

    features = EdgeHead(head_path).features(images)
    service = TailService(split(models.resolve_model(model)[0], layer)[1], "raw", layer)
    seconds = []
    for i in range(repeats):
        started = time.perf_counter()
        service.predict(features[i % len(features)][None])
        seconds.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(seconds))


def _json_check_ms(images, head_path, repeats=2000):
    """(ms of the server's JSON depth check, ms of json.loads) on one image's JSON body."""
    from mia_tf.serve import json_depth

    body = json.dumps({"instances": EdgeHead(head_path).features(images[:1]).tolist()}).encode()
    timings = []
    for function in (json_depth, json.loads):
        started = time.perf_counter()
        for _ in range(repeats):
            function(body)
        timings.append(1000.0 * (time.perf_counter() - started) / repeats)
    return len(body), *timings


def measure(args, scratch):
    log_path = os.path.join(scratch, "intercept.log")
    server, url, name = _start_server(args, log_path)
    heads = _heads(args, scratch, name)
    dataset = json.load(open(os.path.join(heads, f"{name}_float32.json")))["dataset"]
    images = data_lib.load_sample(dataset)[0][:100]
    rows, raw = [], []
    started_all = time.time()
    try:
        for variant, body_format in (("float32", "json"), ("float32", "binary"), ("int8", "binary")):
            tflite = os.path.join(heads, f"{name}_{variant}.tflite")
            for clients in [int(c) for c in args.clients.split(",")]:
                start_at = time.time() + 3.0 + 0.05 * clients  # time for every process to load its head
                jobs = [(tflite, url, name, body_format, args.requests, images, start_at)] * clients
                with multiprocessing.get_context("fork").Pool(clients) as pool:
                    per_client = pool.map(_client, jobs)
                wall = max(finished for _, finished in per_client) - start_at
                latencies = 1000.0 * np.concatenate([seconds for seconds, _ in per_client])
                records, torn, refused = read_log(log_path)
                logged = len(records) - sum(r["requests"] for r in raw)
                figures = {"variant": variant, "body": body_format, "clients": clients,
                           "requests": int(latencies.size), "requests_per_second": latencies.size / wall,
                           **{f"p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 90, 99)},
                           "logged": logged, "lost": int(latencies.size) - logged, "torn_bytes": torn,
                           "refused": len(refused)}
                raw.append(figures)
                rows.append([variant, body_format, clients, figures["requests"],
                             f"{figures['requests_per_second']:.0f}",
                             *(f"{figures[f'p{q}_ms']:.2f}" for q in (50, 90, 99)), logged,
                             f"{figures['lost']} / {torn} / {len(refused)}"])
                print(format_table(HEADER, rows[-1:]), flush=True)
        peak_mb = _peak_memory_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    tail_ms = _raw_tail_ms(args.model, args.layer, os.path.join(heads, f"{name}_float32.tflite"), images)
    one_client = {r["body"] + " " + r["variant"]: r["p50_ms"] for r in raw if r["clients"] == 1}
    body_bytes, depth_ms, loads_ms = _json_check_ms(images, os.path.join(heads, f"{name}_float32.tflite"))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    command = f"python scripts/bench_server.py --model {args.model} --layer {args.layer} " \
              f"--clients {args.clients} --requests {args.requests} --out {args.out}"
    overheads = ", ".join(f"{k} {v - tail_ms:.2f} ms" for k, v in one_client.items())
    text = (f"# Tail server under concurrent edge clients: {name}\n\n"
            f"Made by `{command}` on {machine}, {time.time() - started_all:.0f} s. Server and clients share "
            f"this machine's cores on loopback (each client is its own process running the LiteRT head, one "
            f"thread, one image per request, intercept log fsynced per request). Logged: records the setting "
            f"added to the intercept log; lost: requests answered but not logged; torn: bytes of a broken "
            f"record; refused: records the wire format refuses.\n\n"
            + format_table(HEADER, rows)
            + f"\n\nServer peak memory (VmHWM): {peak_mb:.0f} MB. The raw Keras tail (the server's predict "
              f"function, one-image batches, in-process): {tail_ms:.2f} ms median; so at one client the server "
              f"adds (p50 round trip minus the raw tail, the LiteRT head included): {overheads}. The JSON "
              f"depth check on one image's body ({body_bytes:,} bytes): {depth_ms:.3f} ms; json.loads of it: "
              f"{loads_ms:.3f} ms.\n")
    write_results_file(args.out, text, {"command": command, "machine": machine, "rows": raw,
                                        "server_peak_memory_mb": peak_mb, "raw_tail_ms": tail_ms,
                                        "json_depth_check_ms": depth_ms, "json_loads_ms": loads_ms})
    print(text)


if __name__ == "__main__":
    main()
