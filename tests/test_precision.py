import dataclasses
import json

import keras
import numpy as np
import pytest

from mia_tf import data, metrics, models, precision
from mia_tf.attacks import whitebox
from mia_tf.attacks.blackbox import BlackboxSettings
from mia_tf.errors import UsageError
from mia_tf.split import split

from conftest import REFERENCE_WEIGHTS, mia_tf_in_process


@pytest.fixture(scope="module")
def lenet_relu2():
    head, _ = split(models.load_he2019_lenet(str(REFERENCE_WEIGHTS)), "relu2")
    _, images, _ = data.victims("mnist", "paper10")
    return head, images, data.normalize(images, "mnist")


def test_a_bfloat16_copy_keeps_the_weights_and_approximates_float32():
    head, _ = split(models.load_model(dataset="cifar10")[0], "relu22")
    _, images, _ = data.victims("cifar10", 4)
    x = data.normalize(images, "cifar10")
    copy = precision.computing_in(head, "bfloat16")
    assert copy.get_layer("conv11").dtype_policy.name == "mixed_bfloat16"
    assert head.get_layer("conv11").dtype_policy.name == "float32"  # the original is left alone
    for ours, theirs in zip(copy.get_weights(), head.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    exact, rounded = head(x).numpy(), np.asarray(copy(x), np.float32)
    assert copy(x).dtype.name == "bfloat16"
    assert np.linalg.norm(rounded - exact) / np.linalg.norm(exact) < 0.03
    assert precision.computing_in(head, None) is head


def test_nested_models_are_copied_too():
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu")], name="block")
    inputs = keras.Input((8, 8, 1))
    outer = keras.Model(inputs, keras.layers.Flatten()(inner(inputs)))
    copy = precision.computing_in(outer, "bfloat16")
    assert copy.get_layer("block").layers[0].dtype_policy.name == "mixed_bfloat16"
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(x), np.float32), outer(x).numpy(), rtol=0.05, atol=0.05)


def test_bfloat16_rmle_reaches_what_float32_does(lenet_relu2):
    head, images, x = lenet_relu2
    features = head(x[:4]).numpy()
    settings = dataclasses.replace(whitebox.preset("paper", "mnist", "relu2"), steps=300)
    psnr = {}
    for compute_dtype in (None, "bfloat16"):
        result = whitebox.whitebox_attack(head, features, dataclasses.replace(settings, compute_dtype=compute_dtype))
        assert result.loss.dtype == np.float32 and result.loss[-1] < 0.2 * result.loss[0]
        psnr[compute_dtype] = metrics.psnr(images[:4] / 255.0, data.denormalize(result.reconstruction, "mnist")).mean()
    assert abs(psnr["bfloat16"] - psnr[None]) < 0.5


def test_float32_checkpoints_keep_their_keys_and_other_types_get_their_own(lenet_relu2):
    head, _, x = lenet_relu2
    features, start = head(x[:3]).numpy(), np.zeros_like(x[:3])
    inputs = whitebox._input_fingerprint(features, start)
    settings = whitebox.preset("paper", "mnist", "relu2")

    def key(compute_dtype):
        return whitebox._checkpoint_path("", head, inputs, (features.shape, start.shape),
                                         dataclasses.replace(settings, compute_dtype=compute_dtype), None)

    # the key before compute_dtype existed: checkpoints carried across sessions must still resume
    assert key(None) == "62d5aff6d26a3905045de3dc.npz"
    assert key("bfloat16") != key(None)


def test_an_unknown_compute_dtype_is_refused_before_work(lenet_relu2):
    head, _, x = lenet_relu2
    settings = dataclasses.replace(whitebox.preset("paper", "mnist", "relu2"), compute_dtype="int8")
    with pytest.raises(UsageError, match="unknown compute dtype 'int8': use bfloat16 or float16"):
        whitebox.whitebox_attack(head, head(x[:1]).numpy(), settings)
    with pytest.raises(UsageError, match="unknown compute dtype 'fp8'"):
        BlackboxSettings(compute_dtype="fp8").validate()


def test_the_whitebox_verb_records_its_arithmetic_and_refuses_an_unknown_one(tmp_path):
    out = tmp_path / "run"
    result = mia_tf_in_process("whitebox", "--layer", "relu2", "--model", "he2019_lenet", "--images", "2",
                               "--steps", "20", "--compute-dtype", "bfloat16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["settings"]["compute_dtype"] == "bfloat16"
    refused = mia_tf_in_process("whitebox", "--layer", "relu2", "--model", "he2019_lenet", "--images", "2",
                                "--compute-dtype", "int8", "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "unknown compute dtype 'int8'" in refused.stderr
    assert not (tmp_path / "refused").exists()
