"""How many copies of a reproduce script to run at once, and on how many threads each.

The reproduce scripts train shadows and decoders for hours, and two copies started together share
the runs out (`scripts/run_once.sh`). TensorFlow gives each process as many threads as the machine
has cores, so two copies on default threads each ask the cores for twice what they have. This
times one training step of a query-free shadow (the paper's different net at CIFAR relu22, dist
images, through the frozen tail: the runs that take the longest) in three layouts, all copies at
once, and writes the steps each layout gets through a second:

    python scripts/bench_runners.py --out results/bench_runners.md

Run it on an otherwise idle machine (pause the reproduce jobs with kill -STOP, resume with -CONT).
`RUNNERS=N bash scripts/reproduce_*.sh` applies the winner: N copies, nproc / N threads each.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from mia_tf.report import made_by, markdown_table_page, write_results_file


def time_steps(args):
    """In this process: train the shadow for `args.epochs` epochs of `args.steps` steps; print the
    median milliseconds per step over the epochs after the first (which pays for tracing; the
    median, as an epoch now and then takes twice the others on these machines)."""
    import keras
    import numpy as np

    from mia_tf import data, experiment
    from mia_tf.attacks import query_free
    from mia_tf.attacks.query_pairs import fit_pairs

    target = experiment.prepare(args.dataset, None, args.layer, "0-0")
    settings = query_free.TailShadowSettings(net=args.net, epochs=args.epochs)
    attacker = data.attacker_set(target.dataset, "dist", args.data_dir, limit=args.steps * settings.batch_size)
    images, labels = attacker.images, attacker.labels
    _, through_tail = query_free.shadow_through_tail(target.head, target.tail, settings.net, (target.dataset, args.layer))

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimes()
    fit_pairs(through_tail, images, labels.astype(np.float32), settings, callbacks=[timer],
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    print(json.dumps({"ms_per_step": 1000 * float(np.median(timer.seconds[1:])) / args.steps}))


def run_copies(copies, threads, args):
    """Start `copies` worker processes at once (TensorFlow on `threads` threads each, None: its
    default); returns each one's milliseconds per step."""
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads))
    command = [sys.executable, __file__, "--worker", "--dataset", args.dataset, "--layer", args.layer,
               "--net", args.net, "--steps", str(args.steps), "--epochs", str(args.epochs), "--data-dir", args.data_dir]
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(copies)]
    results = []
    for worker in workers:
        output, _ = worker.communicate()
        if worker.returncode != 0:
            sys.exit(f"a worker failed (exit {worker.returncode}): run it alone to see why: {' '.join(command)}")
        results.append(json.loads(output.strip().splitlines()[-1])["ms_per_step"])
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--layer", default="relu22")
    parser.add_argument("--net", default="diff", help="the shadow's structure: same or diff")
    parser.add_argument("--steps", type=int, default=100, help="training steps (batches of 32) an epoch")
    parser.add_argument("--epochs", type=int, default=5, help="epochs; the first is left out of the timing")
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"))
    parser.add_argument("--out", help="the Markdown file to write")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return time_steps(args)
    if args.epochs < 2 or args.steps < 1:
        parser.error("--epochs must be at least 2 (the first is not timed) and --steps at least 1")
    started = time.time()
    cores = os.cpu_count()
    rows = []
    for copies, threads in ((1, None), (2, None), (2, max(1, cores // 2))):
        ms = run_copies(copies, threads, args)
        rows.append([copies, threads or f"default ({cores})", " / ".join(f"{m:.0f}" for m in ms),
                     f"{sum(1000 / m for m in ms):.2f}"])
        print(rows[-1], flush=True)
    text = markdown_table_page(f"Copies of a reproduce script at once, and threads each ({args.dataset} {args.layer})", [
        made_by(started),
        f"Each copy trains the query-free shadow ({args.net} net, dist images, through the frozen tail) for "
        f"{args.epochs} epochs of {args.steps} steps of 32 images; ms / step: its median over the epochs after "
        f"the first. Steps / s: all copies together. Threads: TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS.",
    ], ["copies", "threads each", "ms / step, each copy", "steps / s, all copies"], rows)
    if args.out:
        write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
