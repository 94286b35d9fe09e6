#!/usr/bin/env bash
# Reproduce the paper's Table 6 (query-free) for both data sets, plus the LeNet fc splits, with the
# authors' attack (preset paper) and ours (best):
# results/queryfree/<run>/metrics.json and the summary results/queryfree.md.
# Usage: bash scripts/reproduce_queryfree.sh [mnist|cifar10 ...]   (default: both; data from
# $MIA_TF_DATA_DIR, default ../shared/data). Victims: test images 0-999. Runs already done are
# skipped and trained shadows come from the cache, so a killed run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MIA_TF_DATA_DIR:-../shared/data}
OUT=results/queryfree
source scripts/run_once.sh
declare -A LAYERS=([mnist]="conv1 relu2 fc1 fc2" [cifar10]="conv11 relu22 relu32")
for dataset in "${@:-mnist cifar10}"; do
  for preset in paper best; do  # the authors' attack on every cell first, then the stronger one
    # dist cells (9,000 attacker images) of every split before the same-set ones (60,000 or
    # 50,000): a best same-set cell trains three shadows and up to three decoders on all of them
    for data in dist same; do
      for layer in ${LAYERS[$dataset]}; do
        for net in same diff; do
          run_once queryfree "$OUT" "${dataset}_${layer}_${data}_${net}_${preset}" --dataset "$dataset" \
            --layer "$layer" --data "$data" --net "$net" --preset "$preset" --images 0-999
        done
      done
    done
  done
done
python scripts/collect_results.py "$OUT" --out results/queryfree.md
