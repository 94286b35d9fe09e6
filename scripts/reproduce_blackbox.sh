#!/usr/bin/env bash
# Reproduce the paper's Tables 4 and 8 (black-box) for both data sets, and the query-count study:
# results/blackbox/<run>/metrics.json and the summary results/blackbox.md.
# Usage: bash scripts/reproduce_blackbox.sh [mnist|cifar10 ...]   (default: both; data from
# $MIA_TF_DATA_DIR, default ../shared/data). Victims: test images 0-999. Runs already done are
# skipped, and trained decoders and shadows come from the cache, so a killed run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIA_TF_DATA_DIR:-../shared/data}
OUT=results/blackbox
source scripts/run_once.sh
start_runners "$@"
run() { run_once blackbox "$OUT" "$@" --images 0-999; }
conv1_tflite() {  # conv1_tflite VARIANT: export MNIST conv1's head as runs/exports/lenet_mnist_conv1_VARIANT.tflite
  [ -f "runs/exports/lenet_mnist_conv1_$1.tflite" ] || python -m mia_tf export --layer conv1 --dataset mnist \
    --variant "$1" --notail --data-dir "$DATA" --out runs/exports
}
declare -A LAYERS=([mnist]="conv1 relu2" [cifar10]="conv11 relu22 relu32")
# rMLE through the CIFAR relu32 shadow (5,000 steps on 1,000 victims: about 3 h of the 2-core CPU in
# float32, as the relu22 cells took) runs in bfloat16 where the CPU has it, 0.51-0.61 of the time
# for the same PSNR (results/precision_check.md: relu32 costs what relu22 does per step in
# float32); every other cell, the relu22 Table 8 cells included, ran in float32 before that
# option existed.
RELU32_ARITHMETIC=$(bfloat16_if_native --compute-dtype)
arithmetic() { [ "$1_$2" != cifar10_relu32 ] || echo "$RELU32_ARITHMETIC"; }
for dataset in "${@:-mnist cifar10}"; do
  # The paper's cells first, cheapest first (Table 4 with the authors' decoders, then Table 8,
  # whose 5000-step rMLE through the shadow dominates), then the stronger ones.
  for layer in ${LAYERS[$dataset]}; do
    for data in same dist noise; do  # Table 4: inverse network, three attacker data sets
      run "${dataset}_${layer}_inverse_${data}_paper" --dataset "$dataset" --layer "$layer" --data "$data" --preset paper
    done
  done
  for layer in ${LAYERS[$dataset]}; do  # Table 8: shadow model fitted to the query pairs
    run "${dataset}_${layer}_shadow_same_paper" --dataset "$dataset" --layer "$layer" --data same --attack shadow \
      $(arithmetic "$dataset" "$layer")
  done
  for layer in ${LAYERS[$dataset]}; do
    for data in same dist noise; do
      run "${dataset}_${layer}_inverse_${data}_best" --dataset "$dataset" --layer "$layer" --data "$data" --preset best
    done
    # Table 8 with the white-box best settings through the same shadow (exact when it is affine)
    run "${dataset}_${layer}_shadow_same_best" --dataset "$dataset" --layer "$layer" --data same --attack shadow --preset best \
      $(arithmetic "$dataset" "$layer")
    run "${dataset}_${layer}_hybrid_dist_best" --dataset "$dataset" --layer "$layer" --data dist --attack hybrid --preset best
    # quality against the number of queries: 1,000 and 3,000 of the 9,000 dist images (all of
    # them is the dist cell above)
    for queries in 1000 3000; do
      run "${dataset}_${layer}_inverse_dist_best_q${queries}" --dataset "$dataset" --layer "$layer" --data dist --preset best --queries "$queries"
    done
  done
  if [ "$dataset" = mnist ]; then  # the device's real int8 head as the oracle (LiteRT), at the affine split
    name=mnist_conv1_inverse_dist_best_int8
    [ -f "$OUT/$name/metrics.json" ] || conv1_tflite int8
    run "$name" --dataset mnist --layer conv1 --data dist --preset best --oracle runs/exports/lenet_mnist_conv1_int8.tflite
    # the one best cell below the paper on test images 0-999 (relu2, noise), on the paper's own 10 images
    for preset in best paper; do
      run_once blackbox "$OUT" "mnist_relu2_inverse_noise_${preset}_paper10" --dataset mnist --layer relu2 --data noise \
        --preset "$preset" --images paper10
    done
    # and with the same noise queries through a shadow: alone, and as the hybrid
    for attack in shadow hybrid; do
      run "mnist_relu2_${attack}_noise_best" --dataset mnist --layer relu2 --data noise --attack "$attack" --preset best
    done
  fi
done
wait_for_runners
python scripts/collect_results.py "$OUT" --out results/blackbox.md
# where the affinity probe's threshold sits: every split, and the float16 and int8 .tflite of conv1
for variant in float16 int8; do conv1_tflite $variant; done
python scripts/probe_affinity.py --data-dir "$DATA" --out results/affine_probe.md \
  --tflite runs/exports/lenet_mnist_conv1_float16.tflite runs/exports/lenet_mnist_conv1_int8.tflite
