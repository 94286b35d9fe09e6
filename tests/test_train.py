import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

# A separate process: logical devices must be configured before TensorFlow starts (the kill-and-resume
# test of training is in test_faults.py).
TWO_CPU_DEVICES = """
import json, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mia_tf import train
report = train.train("mnist", out={out!r}, epochs=1, batch_size=16, limit=256,
                     data_dir={data!r}, strategy="mirrored", verbose=0)
print("REPORT", json.dumps(report))
"""


def _run(code, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code.format(**kwargs))],
                          capture_output=True, text=True, env=env, timeout=300)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, data_dir):
    result = _run(TWO_CPU_DEVICES, out=str(tmp_path / "run"), data=data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report["replicas"] == 2 and report["strategy"] == "mirrored"
    assert os.path.getsize(tmp_path / "run" / "lenet_mnist.weights.h5") > 100_000


def test_warm_restart_starts_from_trained_weights(tmp_path, data_dir):
    from mia_tf import models, train
    from mia_tf.errors import UsageError

    shipped = models.zoo_weights_path("lenet_mnist")
    report = train.train("mnist", out=str(tmp_path / "run"), epochs=1, limit=64, learning_rate=1e-5,
                         data_dir=data_dir, verbose=0, init_weights=shipped)
    assert report["test_accuracy"] > 0.98  # 64 images at lr 1e-5 could never train LeNet from scratch
    assert report["init_weights"]["file"] == "lenet_mnist.weights.h5"
    with pytest.raises(UsageError, match="not found"):
        train.train("mnist", init_weights=str(tmp_path / "none.weights.h5"), data_dir=data_dir)
    with pytest.raises(UsageError, match="out is a directory"):
        train.train("mnist", out=str(tmp_path / "m.weights.h5"), data_dir=data_dir)


def test_cutout_blanks_one_square_of_at_most_size_squared_pixels_per_image():
    import numpy as np

    from mia_tf import train

    blanked = (train.cutout(np.ones((64, 32, 32, 3), np.float32), 16, seed=1).numpy() == 0).all(axis=-1)
    counts = blanked.sum(axis=(1, 2))
    assert counts.max() == 256 and counts.min() >= 64  # clipped at the border to at least a quarter
    rows, cols = np.nonzero(blanked[np.argmax(counts)])
    assert rows.max() - rows.min() == 15 and cols.max() - cols.min() == 15  # one contiguous square
