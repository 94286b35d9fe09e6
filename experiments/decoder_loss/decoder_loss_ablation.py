"""Does an SSIM term in the decoder's loss help? The black-box `best` decoder, one loss per row.

The inverse network is trained with MSE in normalised space (the authors' loss). MSE serves PSNR
directly; SSIM rewards local structure and contrast, which a mean-seeking MSE decoder blurs. Each
row trains the `best` decoder family on the same query pairs with loss
MSE + w * (1 - SSIM) (`inverse_network.mse_ssim_loss`) and scores it on the victims.

    python experiments/decoder_loss/decoder_loss_ablation.py --dataset mnist --layer relu2 --data dist --epochs 5 \
        --weights 0 0.1 0.5 --out results/decoder_loss/mnist_relu2_dist.md
"""

import argparse
import dataclasses
import os
import platform
import time

from mia_tf import data, experiment, metrics
from mia_tf.attacks import cache as cache_lib, inverse_network
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.report import format_table, summary_cells, write_results_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    experiment.add_split_arguments(parser)
    parser.add_argument("--data", default="dist", help="the attacker's images: same, dist or noise")
    parser.add_argument("--epochs", type=int, default=5, help="decoder training epochs (the preset's 30)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.5], help="SSIM weights w")
    args = parser.parse_args()
    started = time.time()
    target = experiment.prepare(args.dataset, None, args.layer, args.images)
    images = target.images
    features = target.features()
    oracle, source_sha = QueryOracle.for_head(target.head, target.model)
    rows, raw = [], []
    for weight in args.weights:
        # Full passes (epoch_examples 0), as the committed rows were made; on the 9,000-image dist
        # set the preset's 9,000-pair cap trains identically, but its cache key differs.
        settings = dataclasses.replace(inverse_network.preset("best"), epochs=args.epochs, ssim_weight=weight,
                                       epoch_examples=0)
        decoder, path, _ = inverse_network.trained_decoder(oracle, source_sha, args.dataset, args.layer, args.data,
                                                           settings, data_dir=args.data_dir, cache=args.cache_dir)
        recovered = data.denormalize(inverse_network.invert(decoder, features), args.dataset)
        summary = metrics.evaluate(images / 255.0, recovered)["summary"]
        training = cache_lib.training_record(path)
        rows.append([f"{weight:g}", *summary_cells(summary), f"{training['seconds']:.0f}" if training else "-"])
        raw.append({"ssim_weight": weight, "summary": summary, "decoder_training": training})
        print(rows[-1], flush=True)
    text = "\n".join([
        f"# Decoder loss: MSE + w (1 - SSIM), {args.dataset} {args.layer}, {args.data} data",
        "",
        f"Made by `python experiments/decoder_loss/decoder_loss_ablation.py --dataset {args.dataset} --layer {args.layer} "
        f"--data {args.data} --epochs {args.epochs} --weights {' '.join(f'{w:g}' for w in args.weights)} "
        f"--out {args.out}`",
        f"in {time.time() - started:.0f} s on {platform.machine()}, {os.cpu_count()} cores (decoders cached after",
        f"the first run). `best` decoder family, {args.epochs} epochs; victims: test images {args.images}. Means with",
        "95 % confidence intervals; SSIM paper: data_range of the reconstruction, standard: 1. Seconds:",
        "decoder training (when it was trained).",
        "",
        format_table(["w", "PSNR dB", "SSIM paper", "SSIM standard", "training s"], rows),
        "",
    ])
    write_results_file(args.out, text, {"rows": raw})
    print(text)


if __name__ == "__main__":
    main()
