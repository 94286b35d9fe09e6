#!/usr/bin/env bash
# Reproduce results/whitebox/ and results/whitebox.md: the white-box attack at the paper's splits.
# Usage: bash scripts/reproduce_whitebox.sh   (data from $MIA_TF_DATA_DIR, default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIA_TF_DATA_DIR:-../shared/data}
OUT=results/whitebox
run() { python -m mia_tf whitebox --data-dir "$DATA" "$@"; }

# Fidelity: the authors' code settings on the authors' own LeNet weights and the paper's 10 images.
for layer in conv1 relu2; do
  run --model he2019_lenet --layer "$layer" --preset paper --out "$OUT/he2019_lenet_${layer}_paper_paper10"
done
# Test images 0-999: the paper preset and the best preset, on the authors' weights and on ours.
for model in he2019_lenet lenet_mnist; do
  for layer in conv1 relu2; do
    for preset in paper best; do
      run --model "$model" --layer "$layer" --preset "$preset" --images 0-999 --out "$OUT/${model}_${layer}_${preset}_0-999"
    done
  done
done
# CIFAR-10, once the shipped CNN exists (python -m mia_tf train --dataset cifar10).
if [ -f mia_tf/zoo/cifar10_cnn.weights.h5 ]; then
  for layer in conv11 relu22 relu32; do
    run --dataset cifar10 --layer "$layer" --preset paper --out "$OUT/cifar10_cnn_${layer}_paper_paper10"
    run --dataset cifar10 --layer "$layer" --preset best --images 0-999 --out "$OUT/cifar10_cnn_${layer}_best_0-999"
  done
fi
python scripts/collect_results.py "$OUT" --out results/whitebox.md
