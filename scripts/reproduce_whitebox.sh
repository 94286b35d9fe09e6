#!/usr/bin/env bash
# Reproduce results/whitebox/ and results/whitebox.md: the white-box attack at the paper's splits.
# Usage: bash scripts/reproduce_whitebox.sh   (data from $MIA_TF_DATA_DIR, default ../shared/data)
# Runs already done are skipped (delete a run's directory to redo it) and decoder priors come
# from the cache, so a killed run resumes. Seconds per run on the 2-core CPU: results/whitebox.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIA_TF_DATA_DIR:-../shared/data}
OUT=results/whitebox
source scripts/run_once.sh
start_runners "$@"
run() { run_once whitebox "$OUT" "$@"; }

# MNIST on the authors' own LeNet weights: fidelity on the paper's 10 images (the authors' code
# settings), then the paper and best presets on test images 0-999.
for layer in conv1 relu2; do
  run "he2019_lenet_${layer}_paper_paper10" --model he2019_lenet --layer "$layer" --preset paper
  for preset in paper best; do
    run "he2019_lenet_${layer}_${preset}_0-999" --model he2019_lenet --layer "$layer" --preset "$preset" --images 0-999
  done
done
# CIFAR-10 on the shipped CNN: fidelity on the paper's 10 images, best preset on test images 0-999.
for layer in conv11 relu22 relu32; do
  run "cifar10_cnn_${layer}_paper_paper10" --dataset cifar10 --layer "$layer" --preset paper
  run "cifar10_cnn_${layer}_best_0-999" --dataset cifar10 --layer "$layer" --preset best --images 0-999
done
wait_for_runners
python scripts/collect_results.py "$OUT" --out results/whitebox.md
