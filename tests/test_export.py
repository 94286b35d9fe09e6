"""Export of heads to .tflite (checked through the device code) and of tails to SavedModel."""

import json
import os

import numpy as np
import pytest

import mia_tf
from edge import EdgeError
from edge.head import EdgeHead
from mia_tf import export as export_lib
from mia_tf.errors import UsageError


@pytest.fixture(scope="module")
def lenet():
    return mia_tf.load_model("lenet_mnist")[0]


@pytest.fixture(scope="module")
def sample():
    return mia_tf.load_sample("mnist")


@pytest.fixture(scope="module")
def calibration(data_dir):
    return mia_tf.load("mnist", "train", data_dir)[0][:100]


@pytest.fixture(scope="module")
def exported(lenet, sample, calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    images, labels = sample
    return {variant: export_lib.export_head(lenet, "relu2", variant, str(out), "mnist", "lenet_mnist", calibration,
                                            images[:50], images, labels)
            for variant in ("float32", "int8")}


def test_float32_head_matches_keras_and_the_manifest_describes_it(exported, lenet, sample):
    path, manifest = exported["float32"]
    assert os.path.basename(path) == "lenet_mnist_relu2_float32.tflite"
    assert json.load(open(path[:-len(".tflite")] + ".json")) == manifest
    assert manifest["input"] == {"shape": [28, 28, 1], "dtype": "float32"}
    assert manifest["output"]["shape"] == [8, 8, 16] and manifest["layer"] == "relu2"
    assert manifest["normalization"]["mean"] == [0.5] and manifest["server_model_name"] == "lenet_mnist_relu2"
    assert manifest["source_model_weights_sha256"] == mia_tf.models.weights_sha256(lenet)
    assert manifest["check"]["relative_feature_error"] < 1e-5
    head, _ = mia_tf.split(lenet, "relu2")
    images = sample[0][100:110]  # images the export check did not see
    expected = head.predict(mia_tf.normalize(images, "mnist"), verbose=0)
    np.testing.assert_allclose(EdgeHead(path).features(images), expected, atol=1e-4)


def test_int8_head_is_fully_integer_and_keeps_the_tail_accurate(exported):
    path, manifest = exported["int8"]
    assert manifest["input"]["dtype"] == "int8" and manifest["output"]["dtype"] == "int8"
    assert manifest["output"]["scale"] > 0 and manifest["calibration_images"] == 100
    check = manifest["check"]
    assert check["test_images"] == 1000
    assert check["tail_accuracy_tflite_head"] >= check["tail_accuracy_keras_head"] - 0.01
    assert manifest["tflite_bytes"] < exported["float32"][1]["tflite_bytes"] / 2
    assert EdgeHead(path).run(mia_tf.load_sample("mnist")[0][:3]).dtype == np.int8


def test_an_export_that_fails_its_check_is_refused_and_nothing_is_written(lenet, sample, calibration, tmp_path):
    images, labels = sample
    strict = export_lib.ExportSettings(max_accuracy_drop=-1.0)  # no head can gain a point over itself
    with pytest.raises(UsageError, match="not written"):
        export_lib.export_head(lenet, "relu2", "int8", str(tmp_path), "mnist", "lenet_mnist", calibration,
                               images[:20], images[:200], labels[:200], strict)
    assert os.listdir(tmp_path) == []
    with pytest.raises(UsageError, match="unknown variant"):
        export_lib.convert_head(mia_tf.split(lenet, "relu2")[0], "int4")


def test_a_corrupt_or_foreign_tflite_is_refused_by_the_device(exported, tmp_path):
    path, manifest = exported["float32"]
    corrupt = tmp_path / "head.tflite"
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    corrupt.write_bytes(bytes(data))
    (tmp_path / "head.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeError, match="does not match its manifest"):
        EdgeHead(str(corrupt))
    (tmp_path / "head.json").write_text(json.dumps({**manifest, "tflite_sha256": export_lib.sha256_file(corrupt)}))
    with pytest.raises(EdgeError, match="LiteRT cannot load"):
        EdgeHead(str(corrupt))
    with pytest.raises(EdgeError, match="no manifest"):
        EdgeHead(str(tmp_path / "other.tflite"))


def test_tail_savedmodel_serves_the_same_logits_as_keras(lenet, sample, tmp_path):
    import tensorflow as tf

    head, tail = mia_tf.split(lenet, "relu2")
    directory = export_lib.export_tail(tail, str(tmp_path), "lenet_mnist_relu2")
    assert directory.endswith(os.path.join("lenet_mnist_relu2", "1"))
    assert os.path.exists(os.path.join(directory, "saved_model.pb"))
    assert sorted(os.listdir(tmp_path / "lenet_mnist_relu2")) == ["1"]  # no staging left behind
    serving = tf.saved_model.load(directory).signatures["serving_default"]
    features = head.predict(mia_tf.normalize(sample[0][:5], "mnist"), verbose=0)
    logits = serving(features=tf.constant(features))["logits"].numpy()
    np.testing.assert_allclose(logits, tail.predict(features, verbose=0), atol=1e-5)
