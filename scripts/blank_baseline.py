"""What a reconstruction scores without any features: the floor every attack's PSNR must clear.

    python scripts/blank_baseline.py --out results/baselines.md

For test images 0-999 of each data set (the victims of every results table), three guesses made
without looking at the victims' features: a black image, a constant grey at the mean pixel value
of the attacker's `dist` images (test images 1000 onwards), and the per-pixel mean image of those
same images. An attack that scores near these has learnt little about the individual victim.
"""

import argparse
import os

import numpy as np

from mia_tf import data as data_lib
from mia_tf import metrics as metrics_lib
from mia_tf.report import markdown_table_page, summary_cells, write_results_file


def guesses(dist_images, victim_shape):
    """{name: images in [0, 1]} made from the attacker's dist images alone."""
    mean_image = dist_images.mean(axis=0)
    return {
        "black image": np.zeros(victim_shape, np.float32),
        "mean grey (dist set)": np.full(victim_shape, dist_images.mean(), np.float32),
        "mean image (dist set)": np.broadcast_to(mean_image, victim_shape).astype(np.float32),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"),
                        help="folder with the data sets' .npz files")
    parser.add_argument("--images", default="0-999", help="victims: test images a-b")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for dataset in ("mnist", "cifar10"):
        _, victim_images, _ = data_lib.victims(dataset, args.images)
        victims = victim_images.astype(np.float32) / 255.0
        dist = data_lib.attacker_set(dataset, "dist", args.data_dir).images
        dist_images = data_lib.denormalize(dist, dataset)
        for name, guess in guesses(dist_images, victims.shape).items():
            rows.append([dataset, name, len(victims), *summary_cells(metrics_lib.evaluate(victims, guess)["summary"])])
    text = markdown_table_page("Baselines: reconstructions made without the victims' features", [
        f"Made by `python scripts/blank_baseline.py --images {args.images} --out {args.out}`. Victims: test",
        f"images {args.images}; the guesses use only the attacker's dist images (test images 1000 onwards).",
        "Means with 95 % confidence intervals. SSIM paper: data_range of the reconstruction (a constant",
        "image has none; its paper SSIM is taken as 0, the limit); standard: data_range 1.",
    ], ["data set", "guess", "images", "PSNR dB", "SSIM paper", "SSIM standard"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
