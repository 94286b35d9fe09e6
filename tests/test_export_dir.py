"""export/: the ready-made heads a device user downloads instead of installing TensorFlow.

Each must still be the head of the shipped zoo weights (the manifest's hash), load in the
TensorFlow-free edge runtime (which checks the file's own hash), and compute the Keras head's
features on real test images it was not checked on at export time (images 100-399 of the sample).
"""

import json
import pathlib

import numpy as np
import pytest

import mia_tf
from edge.head import EdgeHead
from mia_tf.export import MAX_RELATIVE_FEATURE_ERROR

from conftest import ROOT

HEADS = sorted((ROOT / "export").glob("*.tflite"))
IMAGES = slice(100, 400)


def test_the_zoo_is_exported_at_the_papers_splits():
    names = {p.stem for p in HEADS}
    for model, layers in {"lenet_mnist": ("conv1", "relu2"), "cifar10_cnn": ("conv11", "relu22", "relu32")}.items():
        for layer in layers:
            assert {f"{model}_{layer}_{v}" for v in ("float32", "float16", "int8")} <= names


@pytest.mark.parametrize("path", HEADS, ids=lambda p: p.stem)
def test_an_exported_head_computes_the_shipped_models_features(path: pathlib.Path):
    manifest = json.loads(path.with_suffix(".json").read_text())
    model, dataset, _ = mia_tf.load_model(manifest["model"])
    assert manifest["source_model_weights_sha256"] == mia_tf.models.weights_sha256(model), \
        "the zoo weights changed: run bash scripts/export_zoo.sh"
    head, tail = mia_tf.split(model, manifest["layer"])
    images, labels = (part[IMAGES] for part in mia_tf.load_sample(dataset))
    expected = head.predict(mia_tf.normalize(images, dataset), verbose=0)
    features = EdgeHead(str(path)).features(images)
    limit = MAX_RELATIVE_FEATURE_ERROR[manifest["variant"]]
    if limit is not None:
        assert np.abs(features - expected).max() <= limit * np.ptp(expected)
    else:  # int8: what matters is that the tail still classifies the device's features
        keras_accuracy = np.mean(np.argmax(tail.predict(expected, verbose=0), axis=1) == labels)
        device_accuracy = np.mean(np.argmax(tail.predict(features, verbose=0), axis=1) == labels)
        assert device_accuracy >= keras_accuracy - 0.01
