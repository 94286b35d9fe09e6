"""Benchmark the white-box attack on this CPU: step cost by batch size and XLA, and time to reach
the paper's PSNR. Writes a Markdown table (and the raw numbers as JSON).

    python scripts/bench_whitebox.py --out results/bench_whitebox.md

Splits whose model has no shipped weights (the CIFAR CNN while it trains) are measured for step
cost on untrained weights (the cost does not depend on the values) and skipped for time-to-PSNR.
"""

import argparse
import dataclasses
import os
import platform
import tempfile
import time

import numpy as np

from mia_tf import data, metrics, models
from mia_tf.attacks import inverse_network, learned_prior, whitebox
from mia_tf.attacks.context import AttackContext
from mia_tf.image_space import ImageSpace
from mia_tf.report import format_table, write_results_file
from mia_tf.split import split

PAPER_PSNR = {("mnist", "conv1"): 39.69, ("mnist", "relu2"): 15.10, ("cifar10", "conv11"): 37.59,
              ("cifar10", "relu22"): 19.47, ("cifar10", "relu32"): 13.38}
MODEL_FOR = {"mnist": "he2019_lenet", "cifar10": "cifar10_cnn"}  # the paper's own LeNet weights


def load(dataset):
    name = MODEL_FOR[dataset]
    if name == "cifar10_cnn" and not os.path.exists(models.zoo_weights_path(name)):
        return models.cifar10_cnn(), False
    return models.load_model(name)[0], True


def step_cost(head, x, batch, xla, steps):
    """Seconds per optimisation step for one batch (compile excluded: a first call warms up)."""
    features = head(np.repeat(x[:1], batch, axis=0)).numpy()
    settings = whitebox.WhiteboxSettings(steps=steps, steps_per_call=steps, tv_weight=1.0, xla=xla)
    whitebox.reconstruct(head, features, dataclasses.replace(settings, steps=steps))  # warm-up
    started = time.perf_counter()
    whitebox.reconstruct(head, features, settings)
    return (time.perf_counter() - started) / steps


def time_to_psnr(model, head, images, dataset, layer, preset_name, target, data_dir, cache, resolution=25):
    """Wall seconds (compile included) until the mean PSNR of the batch reaches `target`.

    For `best` at a non-linear split the clock starts after the decoder prior is trained (a
    one-off cost for all victims of that split, returned separately) and includes its inference.
    """
    x = data.normalize(images, dataset)
    features = head(x).numpy()
    space = ImageSpace.of_dataset(dataset)
    settings = dataclasses.replace(whitebox.preset(preset_name, head, space), steps_per_call=resolution)
    reached, init, training_seconds = {}, None, 0.0
    if settings.prior == "decoder" and not (settings.exact_linear and whitebox.is_affine(head)):
        started = time.perf_counter()
        decoder, _ = learned_prior.prior_decoder(head, space, data.attacker_set(dataset, "dist", data_dir),
                                                 AttackContext(cache))
        training_seconds = time.perf_counter() - started
    started = time.perf_counter()

    def progress(step, loss, reconstruction):
        psnr = metrics.psnr(images / 255.0, data.denormalize(reconstruction, dataset)).mean()
        if psnr >= target and "seconds" not in reached:
            reached.update(seconds=time.perf_counter() - started, step=step)

    if training_seconds:
        init = inverse_network.invert(decoder, features)
        progress(0, None, init)
    result = whitebox.reconstruct(head, features, settings, pixel_range=data.pixel_range(dataset),
                                      progress=progress, init=init)
    total = time.perf_counter() - started
    final = metrics.psnr(images / 255.0, data.denormalize(result.reconstruction, dataset)).mean()
    if result.method == "exact_linear" and final >= target:  # the solver reports no progress on the way
        reached.update(seconds=total, step=settings.steps)
    return reached.get("seconds"), reached.get("step"), float(final), total, result.method, training_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/bench_whitebox.md")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per step-cost measurement")
    parser.add_argument("--splits", default="mnist:relu2,cifar10:conv11,cifar10:relu22,cifar10:relu32")
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"),
                        help="the attacker's own images, for the best preset's decoder prior")
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="bench_whitebox_")  # a fresh cache: the decoder prior is trained and timed
    started = time.time()
    splits = [tuple(s.split(":")) for s in args.splits.split(",")]
    cost_rows, reach_rows, raw = [], [], {"step_cost": [], "time_to_psnr": []}
    for dataset, layer in splits:
        model, trained = load(dataset)
        head, _ = split(model, layer)
        _, images, _ = data.victims(dataset, "paper10")
        x = data.normalize(images, dataset)
        for xla in (True, False):
            for batch in (1, 10, 100):
                seconds = step_cost(head, x, batch, xla, args.steps)
                per_image_ms = 1000 * seconds / batch
                raw["step_cost"].append(dict(dataset=dataset, layer=layer, xla=xla, batch=batch,
                                             ms_per_step=1000 * seconds, ms_per_step_per_image=per_image_ms))
                cost_rows.append([f"{dataset} {layer}", "on" if xla else "off", batch, f"{1000 * seconds:.2f}",
                                  f"{per_image_ms:.3f}", f"{1000 / per_image_ms / 5000:.2f}"])
                print(cost_rows[-1], flush=True)
        if not trained:
            continue
        for preset_name in ("paper", "best"):
            seconds, step, final, total, method, training = time_to_psnr(
                model, head, images, dataset, layer, preset_name, PAPER_PSNR[(dataset, layer)], args.data_dir, cache)
            raw["time_to_psnr"].append(dict(dataset=dataset, layer=layer, preset=preset_name, seconds=seconds,
                                            step=step, final_psnr=final, total_seconds=total, method=method,
                                            decoder_training_seconds=training))
            reach_rows.append([f"{dataset} {layer}", preset_name, method + (" + decoder prior" if training else ""),
                               PAPER_PSNR[(dataset, layer)],
                               "never" if seconds is None else f"{seconds / len(images):.2f}",
                               "-" if step is None else step, f"{final:.2f}", f"{total / len(images):.2f}",
                               f"{training:.0f}" if training else "-"])
            print(reach_rows[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    load_avg = os.getloadavg()
    text = "\n".join([
        "# White-box attack benchmark",
        "",
        f"Command: `python scripts/bench_whitebox.py --out {args.out}`. Machine: {machine}, no GPU.",
        f"Load average at the end: {load_avg[0]:.2f} (other jobs on the 2 cores slow every figure alike).",
        f"Wall time of the whole benchmark: {time.time() - started:.0f} s.",
        "",
        "## Cost of one optimisation step (compile excluded)",
        "",
        format_table(["split", "XLA", "batch", "ms / step", "ms / step / image", "images / s at 5000 steps"],
                     cost_rows),
        "",
        "## Time to reach the paper's PSNR (10 paper images in one batch, compile included, XLA off: the default on a CPU)",
        "",
        format_table(["split", "preset", "method", "paper PSNR", "s / image to reach it", "step",
                      "final PSNR", "s / image, full run", "decoder training s (once per split)"], reach_rows)
        if reach_rows else
        "(no trained weights for these splits yet)",
        "",
    ])
    write_results_file(args.out, text, {"machine": machine, **raw})
    print(text)


if __name__ == "__main__":
    main()
