"""lambda_TV for the zero-start rMLE through a Table 8 shadow: the paper's weight against the feature-energy rule.

The `best` preset's zero start (`whitebox.preset("best", prior="none")`) used to fall back to the
paper's absolute lambda_TV (10 at CIFAR relu22, 1000 at relu32), which the shipped CNN's small
features cannot stand against: the full relu22 cell came out washed grey, 12.73 dB. This script
runs the short version of that attack with several weights so the choice rests on a measurement:

    python experiments/shadow_tv/shadow_tv_ablation.py --dataset cifar10 --layer relu22 --images 0-19 --steps 1000 \
        --tv 10 1 rule --out results/shadow_tv_ablation/cifar10_relu22.md

The shadow is the black-box verb's (`--data same`, all queries), loaded from the attack cache; it is
trained first if the cache lacks it (about 3 h at the CIFAR splits on 2 cores).
"""

import argparse
import dataclasses
import os
import time

from mia_tf import data, experiment, metrics
from mia_tf.attacks import shadow_model, whitebox
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.report import made_by, markdown_table_page, summary_cells, write_results_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    experiment.add_split_arguments(parser, victims="0-19")
    parser.add_argument("--steps", type=int, default=1000, help="rMLE steps (the preset's 5000)")
    parser.add_argument("--tv", nargs="+", default=["rule"], help="lambda_TV values; 'rule' is the feature-energy rule")
    args = parser.parse_args()
    started = time.time()
    target = experiment.prepare(args.dataset, None, args.layer, args.images)
    features = target.features()
    oracle, source_sha = QueryOracle.for_head(target.head, target.model)
    shadow, path, _ = shadow_model.trained_shadow(oracle, target.head, source_sha, target.dataset, args.layer, "same",
                                                  data_dir=args.data_dir, cache=args.cache_dir)
    zero_start = whitebox.preset("best", target.dataset, args.layer, prior="none", features=features)
    rule = whitebox.feature_energy_tv_weight(features)
    rows = []
    for tv in args.tv:
        weight = rule if tv == "rule" else float(tv)
        settings = dataclasses.replace(zero_start, tv_weight=weight, steps=args.steps)
        run_started = time.time()
        result = whitebox.whitebox_attack(shadow, features, settings, pixel_range=data.pixel_range(target.dataset))
        scores = metrics.evaluate(target.images / 255.0, data.denormalize(result.reconstruction, target.dataset))
        rows.append([f"{weight:g}" + (" (rule)" if tv == "rule" else ""), args.steps,
                     *summary_cells(scores["summary"]), f"{time.time() - run_started:.0f}"])
        print(rows[-1], flush=True)
    text = markdown_table_page(f"lambda_TV through the {target.dataset} {args.layer} Table 8 shadow", [
        made_by(started, " (another job on the cores)"),
        f"Victims: test images {args.images}; shadow `{os.path.basename(path)}`. The `best` preset's zero-start "
        f"rMLE (cosine lr 0.1, pixel box, pre-activation matching) with only lambda_TV and the steps changed.",
    ], ["lambda_TV", "steps", "PSNR dB", "SSIM paper", "SSIM standard", "seconds"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
