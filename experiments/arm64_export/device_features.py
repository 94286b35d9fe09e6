"""Run every head in export/ with the TensorFlow-free edge runtime and save its features.

Run once under arm64 (what a 64-bit Raspberry Pi runs) and once here, then compare:

    ../shared/tools/arm64-python edge/requirements.txt experiments/arm64_export/device_features.py /tmp/arm64.npz
    python experiments/arm64_export/device_features.py /tmp/x86.npz
    python experiments/arm64_export/compare.py /tmp/arm64.npz /tmp/x86.npz --out experiments/arm64_export/result.md

Imports only edge/, numpy and the platform module (no TensorFlow, no mia_tf).
"""

import glob
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from edge.head import EdgeHead  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
samples = {name: np.load(os.path.join(ROOT, "mia_tf", "sample", f"{name}_test_0-999.npz"))["x_test"][100:200]
           for name in ("mnist", "cifar10")}
samples["mnist"] = samples["mnist"][..., None]  # stored without the channel axis
features = {}
for path in sorted(glob.glob(os.path.join(ROOT, "export", "*.tflite"))):
    name = os.path.basename(path)[:-len(".tflite")]
    features[name] = EdgeHead(path).features(samples["mnist" if name.startswith("lenet") else "cifar10"])
np.savez(sys.argv[1], machine=platform.machine(), **features)
print(f"{platform.machine()}: {len(features)} heads, features of 100 sample images each -> {sys.argv[1]}")
