"""One worker against two: target training and rMLE on 1,000 victims under `--strategy multiworker`.

Each worker is a `python -m mia_tf` process pinned to a core of its own (`taskset`, TensorFlow on
one thread), told the cluster by TF_CONFIG on loopback, as two machines would be. Both sides do
the same work: the same global batch (one worker's batch is the two workers' together), the same
images, epochs and steps. Training is timed by its report's `seconds_this_run`, rMLE by the
chief's attack seconds in metrics.json; the two-worker reconstructions must equal the one-worker
ones (the victims are independent in rMLE), which this checks.

    python scripts/bench_distributed.py --out results/distributed/bench.md

Run it on an otherwise idle machine with at least two cores.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from mia_tf.distributed import loopback_cluster
from mia_tf.report import made_by, markdown_table_page, write_results_file


def run_workers(count, verb_args, outs):
    """Run `python -m mia_tf VERB_ARGS --out OUT_i` as `count` workers (worker i on core i); wall seconds."""
    configs = loopback_cluster(count)
    workers = []
    started = time.time()
    for index in range(count):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                   TF_CONFIG=json.dumps(configs[index]))
        command = ["taskset", "-c", str(index), sys.executable, "-m", "mia_tf", *verb_args,
                   "--strategy", "multiworker", "--out", outs[index]]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for worker in workers:
        _, err = worker.communicate()
        if worker.returncode != 0:
            sys.exit(f"a worker failed (exit {worker.returncode}): {err[-2000:]}")
    return time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"))
    parser.add_argument("--train-images", type=int, default=16384, help="training images (one epoch)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch of the training")
    parser.add_argument("--victims", type=int, default=1000, help="rMLE victims (test images 0..N-1)")
    parser.add_argument("--steps", type=int, default=1000, help="rMLE steps (the paper preset's learning rate and TV)")
    parser.add_argument("--out", help="the Markdown file to write (and its .json)")
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        parser.error("needs at least two cores: one per worker")
    started = time.time()
    rows, record = [], {"train": {}, "rmle": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            outs = [os.path.join(scratch, f"train_{workers}_{i}") for i in range(workers)]
            wall = run_workers(workers, ["train", "--dataset", "mnist", "--epochs", "1", "--limit",
                                         str(args.train_images), "--batch-size", str(args.batch_size // workers),
                                         "--data-dir", args.data_dir], outs)
            with open(os.path.join(outs[0], "lenet_mnist.json")) as f:
                report = json.load(f)
            record["train"][workers] = {"seconds": report["seconds_this_run"], "wall_seconds": round(wall, 1),
                                        "test_accuracy": report["test_accuracy"]}
            print("train", workers, record["train"][workers], flush=True)
        reconstructions = {}
        for workers in (1, 2):
            outs = [os.path.join(scratch, f"whitebox_{workers}_{i}") for i in range(workers)]
            cache = os.path.join(scratch, f"cache_{workers}")
            wall = run_workers(workers, ["whitebox", "--layer", "relu2", "--images", str(args.victims),
                                         "--steps", str(args.steps), "--batch-size", "1000", "--cache-dir", cache], outs)
            with open(os.path.join(outs[0], "metrics.json")) as f:
                metrics = json.load(f)
            reconstructions[workers] = np.load(os.path.join(outs[0], "reconstructions.npz"))["reconstructions"]
            record["rmle"][workers] = {"seconds": metrics["seconds"], "wall_seconds": round(wall, 1),
                                       "psnr": metrics["summary"]["psnr"]["mean"]}
            print("rmle", workers, record["rmle"][workers], flush=True)
    record["rmle_largest_pixel_difference"] = float(np.abs(reconstructions[1] - reconstructions[2]).max())
    for job, label in (("train", f"train LeNet, 1 epoch of {args.train_images:,} MNIST images, global batch "
                                 f"{args.batch_size}"),
                       ("rmle", f"rMLE at relu2, {args.victims:,} victims, {args.steps:,} steps")):
        one, two = record[job][1], record[job][2]
        quality = ("test accuracy", "test_accuracy", 100, "%") if job == "train" else ("PSNR", "psnr", 1, "dB")
        rows.append([label, f"{one['seconds']:.1f}", f"{two['seconds']:.1f}", f"{one['seconds'] / two['seconds']:.2f}",
                     f"{one['wall_seconds']:.0f} / {two['wall_seconds']:.0f}",
                     f"{quality[0]} {one[quality[1]] * quality[2]:.2f} / {two[quality[1]] * quality[2]:.2f} {quality[3]}"])
    text = markdown_table_page("One worker against two (tf.distribute MultiWorkerMirroredStrategy, loopback)", [
        made_by(started),
        "Each worker is a `python -m mia_tf ... --strategy multiworker` process pinned to its own core "
        "(taskset, TensorFlow on one thread). Seconds: the training (report's seconds_this_run) or the "
        "attack (metrics.json's seconds, the chief's); wall: the whole command, start-up and data included. "
        f"The two-worker rMLE images differ from the one-worker ones by at most "
        f"{record['rmle_largest_pixel_difference']:.2g} (normalised units).",
    ], ["job", "1 worker (s)", "2 workers (s)", "speed-up", "wall, 1 / 2 (s)", "quality, 1 / 2"], rows)
    if args.out:
        write_results_file(args.out, text, record)
    print(text)


if __name__ == "__main__":
    main()
