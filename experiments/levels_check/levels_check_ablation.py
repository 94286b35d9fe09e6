"""How should the black-box attacker correct a noise-trained decoder's levels? One way per row.

The black-box `best` decoder trained on noise queries draws MNIST digits on a grey background
(`mia_tf/attacks/levels_check.py`). Each row turns the decoder's output on the victims into a
final guess in another way, using only what the attacker has (the oracle, the intercepted
features), except the last row, which uses the victims' truth to show how far the maps could go:

    python experiments/levels_check/levels_check_ablation.py --dataset mnist --layer relu2 --out results/levels_check.md

The decoder comes from the attack cache (the one `python -m mia_tf blackbox --data noise
--preset best` trains); without it, this trains it first (about 20 min alone on the 2 cores).
"""

import argparse
import os
import platform
import time

import numpy as np

from mia_tf import data, experiment, metrics
from mia_tf.attacks import inverse_network, levels_check
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.report import markdown_table_page, summary_cells, write_results_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    experiment.add_split_arguments(parser)
    args = parser.parse_args()
    started = time.time()
    target = experiment.prepare(args.dataset, None, args.layer, args.images)
    images = target.images
    truth = images / 255.0
    features = target.features()
    oracle, source_sha = QueryOracle.for_head(target.head, target.model)
    decoder, _, _ = inverse_network.trained_decoder(oracle, source_sha, args.dataset, args.layer, "noise",
                                                    inverse_network.preset("best"), data_dir=args.data_dir,
                                                    cache=args.cache_dir)
    decoded = data.denormalize(inverse_network.invert(decoder, features), args.dataset)
    oracle.queries = 0  # count only what the corrections below spend

    # every map on every victim: feature distances (what the attacker sees) and PSNR (what it cannot)
    levels = levels_check.LEVELS
    distances, psnrs = [], []
    for black, white in levels:
        mapped = levels_check.apply_levels(decoded, black, white)
        answers = oracle(data.normalize_pixels(mapped, args.dataset)).reshape(len(features), -1)
        distances.append(np.linalg.norm(answers - features.reshape(len(features), -1), axis=1))
        psnrs.append(metrics.psnr(truth, mapped))
    distances, psnrs = np.array(distances), np.array(psnrs)

    def row(name, black_white_per_victim, queries):
        guess = np.stack([levels_check.apply_levels(p, *levels[k]) for p, k in zip(decoded, black_white_per_victim)])
        return [name, *summary_cells(metrics.evaluate(truth, guess)["summary"]), queries]

    count = len(features)
    sample = min(count, levels_check.SAMPLE_VICTIMS)
    identity = [levels.index((0.0, 1.0))] * count
    rows = [
        row("the decoder's output as it is", identity, 0),
        row("a map per victim, by its own feature distance", np.argmin(distances, axis=0), len(levels) * count),
        row(f"one map for all, by the mean distance on the first {sample} victims (the preset)",
            [int(np.argmin(distances[:, :sample].mean(axis=1)))] * count, len(levels) * sample),
        row(f"one map for all, by the mean distance on all {count} victims",
            [int(np.argmin(distances.mean(axis=1)))] * count, len(levels) * count),
        row("hindsight: the one map with the best mean PSNR (uses the victims' truth)",
            [int(np.argmax(psnrs.mean(axis=1)))] * count, "-"),
    ]
    title = f"Levels check of the noise-trained decoder, {args.dataset} {args.layer}"
    notes = [f"Made by `python experiments/levels_check/levels_check_ablation.py --dataset {args.dataset} --layer {args.layer} "
             f"--images {args.images} --out {args.out}` in {time.time() - started:.0f} s on {platform.machine()}, "
             f"{os.cpu_count()} cores. Victims: test images {args.images}. The maps are "
             f"clip((p - black) / (white - black)) for black in {levels_check.BLACK_POINTS}, white in "
             f"{levels_check.WHITE_POINTS}; queries are what each way spends on top of the decoder's.",
             "", "Per map (black-white): mean feature distance on all victims / mean PSNR (dB):", "",
             ", ".join(f"{b:g}-{w:g}: {d:.3f} / {p:.2f}" for (b, w), d, p in
                       zip(levels, distances.mean(axis=1), psnrs.mean(axis=1)))]
    text = markdown_table_page(title, notes, ["final guess", "PSNR (dB)", "SSIM (paper)", "SSIM (standard)",
                                              "queries"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
