"""Score an unfinished rMLE run from its checkpoint: how good are the images it holds right now?

    python scripts/score_rmle_checkpoint.py ~/.cache/mia_tf/rmle/<key>.npz --dataset cifar10 --images 0-999

A long attack (the CIFAR Table 8 `best` cells: 5,000 steps on 1,000 victims, several hours here)
saves its state every few minutes (`mia_tf/attacks/whitebox.py`). This reads the current images
from that state, without touching the run, and prints their PSNR and SSIM against the victims the
run was started on (`--images`, as given to the attack verb), with the step they were taken at.
"""

import argparse

from mia_tf.experiment import score_rmle_checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="an .npz under <cache>/rmle/")
    parser.add_argument("--dataset", required=True, choices=["mnist", "cifar10"])
    parser.add_argument("--images", default="paper10", help="the victims of the run: paper10, N or a-b")
    args = parser.parse_args()
    done, summary = score_rmle_checkpoint(args.checkpoint, args.dataset, args.images)
    print(f"{args.checkpoint}: step {done}, PSNR {summary['psnr']['mean']:.2f} dB, "
          f"SSIM (paper) {summary['ssim_paper']['mean']:.4f}, SSIM (standard) {summary['ssim_standard']['mean']:.4f}")


if __name__ == "__main__":
    main()
