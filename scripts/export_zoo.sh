#!/usr/bin/env bash
# Make export/: the zoo models' heads at the paper's split points as float32, float16 and int8
# .tflite files with their manifests, ready for the TensorFlow-free edge/ runtime (a device user
# need not install TensorFlow to get one). Each head is checked against Keras through LiteRT on
# real test images before it is written (mia_tf/export.py); int8 calibrates on 200 training images.
# Usage: bash scripts/export_zoo.sh [DATA_DIR]   (default $MIA_TF_DATA_DIR, else ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${MIA_TF_DATA_DIR:-../shared/data}}
export_split() {  # export_split DATASET LAYER
    python -m mia_tf export --dataset "$1" --layer "$2" --variant all --notail --data-dir "$DATA" --out export
}
for layer in conv1 relu2; do export_split mnist "$layer"; done
for layer in conv11 relu22 relu32; do export_split cifar10 "$layer"; done
