#!/usr/bin/env bash
# The README's edge walkthrough, run for real on this machine: export the LeNet head at relu2,
# serve the tail on loopback, classify the paper's 10 test digits (PNG files, digit0.png ...
# digit9.png: the first test image of each class) on the "device" with the int8 head, then
# rebuild them from the server's intercept log. Writes results/edge/walkthrough/.
# Usage: bash scripts/walkthrough_edge.sh   (data from $MIA_TF_DATA_DIR, default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${MIA_TF_DATA_DIR:-../shared/data}")
OUT=$(realpath -m results/edge/walkthrough)
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
exec > >(tee "$OUT/transcript.txt") 2>"$WORK/stderr"
cd "$WORK"
python - <<'PY'
from PIL import Image
import mia_tf
_, images, labels = mia_tf.victims("mnist", "paper10")  # classes 0..9 in order
for label, image in zip(labels, images):
    Image.fromarray(image[..., 0]).save(f"digit{label}.png")
PY
step() { echo "\$ $*"; local start=$SECONDS; "$@"; echo "($((SECONDS - start)) s)"; }
step python -m mia_tf export --layer relu2 --dataset mnist --data-dir "$DATA" --out exports
python -m mia_tf serve --layer relu2 --dataset mnist --port 8501 --intercept-log runs/intercept.log > serve.out &
SERVER=$!
until grep -q "^serving" serve.out 2>/dev/null; do sleep 0.5; done
echo "\$ python -m mia_tf serve --layer relu2 --dataset mnist --port 8501 --intercept-log runs/intercept.log &"
cat serve.out
step python -m edge run --model exports/lenet_mnist_relu2_int8.tflite \
  --images digit0.png digit1.png digit2.png digit3.png digit4.png digit5.png digit6.png digit7.png digit8.png digit9.png \
  --server http://127.0.0.1:8501
kill -TERM $SERVER && wait $SERVER || true
SERVER=
step python -m mia_tf whitebox --layer relu2 --features runs/intercept.log --images paper10 --out "$OUT/stolen"
