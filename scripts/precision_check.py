"""What bfloat16 arithmetic in rMLE costs in PSNR and saves in time (`WhiteboxSettings.compute_dtype`).

The Table 8 and query-free cells spend hours in rMLE through a CIFAR head or shadow. This runs the
same rMLE twice on the same victims, once in float32 and once with the head computing in another
type, through the real head (white-box; a shadow has the head's structure, so it costs the same):

    python scripts/precision_check.py --dataset cifar10 --layer relu22 relu32 --images 0-49 --steps 1000 \
        --out results/precision_check.md

Settings: the `paper` preset (the authors' rMLE) and the `best` zero start (what Table 8's `best`
cells run through a non-affine shadow). Both runs of a pair start from zeros with the same settings.
"""

import argparse
import dataclasses
import time

import numpy as np

from mia_tf import data, experiment, metrics
from mia_tf.attacks import whitebox
from mia_tf.image_space import ImageSpace
from mia_tf.precision import native_bfloat16
from mia_tf.report import made_by, markdown_table_page, write_results_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], conflict_handler="resolve")  # --layer: several
    experiment.add_split_arguments(parser, victims="0-49")
    parser.set_defaults(dataset="cifar10")
    parser.add_argument("--layer", nargs="+", default=["relu22", "relu32"])
    parser.add_argument("--steps", type=int, default=1000, help="rMLE steps (the presets' 5000)")
    parser.add_argument("--compute-dtype", default="bfloat16", help="the type compared with float32")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for layer in args.layer:
        target = experiment.prepare(args.dataset, None, layer, args.images)
        features = target.features()
        for preset in ("paper", "best"):
            settings = dataclasses.replace(whitebox.preset(preset, target.head, ImageSpace.of_dataset(target.dataset), "none", features),
                                           steps=args.steps)
            psnr = {}
            for compute_dtype in (None, args.compute_dtype):
                run_started = time.time()
                result = whitebox.reconstruct(target.head, features, dataclasses.replace(
                    settings, compute_dtype=compute_dtype), pixel_range=data.pixel_range(target.dataset))
                seconds = time.time() - run_started  # includes tracing: a few seconds
                scores = metrics.evaluate(target.images / 255.0, data.denormalize(result.reconstruction, target.dataset))
                psnr[compute_dtype] = np.array(scores["per_image"]["psnr"])
                rows.append([layer, preset, f"{settings.tv_weight:g}", compute_dtype or "float32",
                             f"{scores['summary']['psnr']['mean']:.2f}", f"{scores['summary']['ssim_paper']['mean']:.3f}",
                             f"{1000 * seconds / args.steps / len(features):.2f}", "", f"{seconds:.0f}"])
                print(rows[-1], flush=True)
            difference = psnr[args.compute_dtype] - psnr[None]
            rows[-1][7] = f"{difference.mean():+.2f} ({np.abs(difference).max():.2f})"
    text = markdown_table_page(f"rMLE in float32 against {args.compute_dtype} ({args.dataset})", [
        made_by(started, f", {'with' if native_bfloat16() else 'without'} native bfloat16 (other jobs on the cores slow "
                         f"both types alike)"),
        f"Victims: test images {args.images}, all in one batch, through the real head, {args.steps} steps from "
        f"zeros. `best` is the preset's zero start (lambda_TV from the feature scale). Time per step per image "
        f"includes tracing. The difference column: mean PSNR change per image against float32 (largest |change|).",
    ], ["split", "settings", "lambda_TV", "arithmetic", "PSNR dB", "SSIM paper", "ms / step / image",
        "dB vs float32 (max)", "seconds"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
