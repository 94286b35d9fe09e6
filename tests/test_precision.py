import dataclasses
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import mia_tf
from mia_tf import data, metrics, models, precision
from mia_tf.attacks import whitebox
from mia_tf.attacks.blackbox import BlackboxSettings
from mia_tf.attacks.context import AttackContext
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.split import split

from conftest import mia_tf_in_process, zoo_settings_key


@pytest.fixture(scope="module")
def lenet_relu2():
    head, _ = split(models.load_model("lenet_mnist")[0], "relu2")
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
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=300)
    psnr = {}
    for compute_dtype in (None, "bfloat16"):
        result = whitebox.reconstruct(head, features, dataclasses.replace(settings, compute_dtype=compute_dtype))
        assert result.loss.dtype == np.float32 and result.loss[-1] < 0.2 * result.loss[0]
        psnr[compute_dtype] = metrics.psnr(images[:4] / 255.0, data.denormalize(result.reconstruction, "mnist")).mean()
    assert abs(psnr["bfloat16"] - psnr[None]) < 0.5


def test_float32_checkpoints_keep_their_keys_and_other_types_get_their_own(lenet_relu2):
    head, _, x = lenet_relu2
    features, start = head(x[:3]).numpy(), np.zeros_like(x[:3])
    inputs = whitebox._input_fingerprint(features, start)
    settings = whitebox.preset("paper", *zoo_settings_key("mnist", "relu2"))

    def key(compute_dtype):
        return whitebox._checkpoint_path("", head, inputs, (features.shape, start.shape),
                                         dataclasses.replace(settings, compute_dtype=compute_dtype), None)

    # float32 keys are made as before compute_dtype existed (it is left out while None), so
    # checkpoints kept from then still resume; this is the shipped LeNet's relu2 key
    assert key(None) == "64ef39627b13e45640b223cf.npz"
    assert key("bfloat16") != key(None)


def test_an_unknown_compute_dtype_is_refused_before_work(lenet_relu2):
    head, _, x = lenet_relu2
    with pytest.raises(UsageError, match="unknown compute_dtype 'int8': use bfloat16 or float16"):
        dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), compute_dtype="int8")
    with pytest.raises(UsageError, match="unknown compute_dtype 'fp8'"):
        BlackboxSettings(compute_dtype="fp8")


def test_the_whitebox_verb_records_its_arithmetic_and_refuses_an_unknown_one(tmp_path):
    out = tmp_path / "run"
    result = mia_tf_in_process("whitebox", "--layer", "relu2", "--model", "lenet_mnist", "--images", "2",
                               "--steps", "20", "--compute-dtype", "bfloat16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["settings"]["compute_dtype"] == "bfloat16"
    refused = mia_tf_in_process("whitebox", "--layer", "relu2", "--model", "lenet_mnist", "--images", "2",
                                "--compute-dtype", "int8", "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "unknown --compute-dtype 'int8'" in refused.stderr
    assert not (tmp_path / "refused").exists()


# float16 arithmetic is emulated on a CPU (slow; it is for GPUs): its case runs with the slow tests
@pytest.mark.parametrize("train_dtype", ["bfloat16", pytest.param("float16", marks=pytest.mark.slow)])
def test_training_in_a_lower_type_learns_what_float32_does_and_leaves_the_model_float32(data_dir, train_dtype):
    from mia_tf.attacks import inverse_network as inv, query_pairs
    from mia_tf.attacks.oracle import QueryOracle

    head, _ = split(models.lenet_mnist(), "conv1")
    images = data.attacker_set("mnist", "dist", data_dir, limit=2048).images
    features = query_pairs.collect_answers(QueryOracle.from_keras(head), images)
    _, victims, _ = data.victims("mnist", "paper10")
    x = data.normalize(victims, "mnist")
    errors = {}
    for dtype in (None, train_dtype):
        keras.utils.set_random_seed(0)
        settings = inv.DecoderSettings(family="paper", epochs=4, train_dtype=dtype)
        decoder = inv.make_decoder(settings, ("mnist", "conv1"), (24, 24, 8), (28, 28, 1))
        untrained = [w.copy() for w in decoder.get_weights()]
        history = query_pairs.fit_pairs(decoder, features, images, settings)
        assert history["loss"][-1] < 0.5 * history["loss"][0]
        # the trained weights came back into the float32 model itself
        assert decoder.layers[-1].dtype_policy.name == "float32"
        assert not np.allclose(decoder.get_weights()[0], untrained[0])
        errors[dtype] = np.mean((inv.invert(decoder, head(x).numpy()) - x) ** 2)
    assert errors[train_dtype] < 1.5 * errors[None], errors


def test_training_types_get_their_own_cache_keys_and_float32_keeps_the_old_ones():
    from mia_tf.attacks import cache, inverse_network, query_free, shadow_model

    for settings in (inverse_network.PRESETS["best"], shadow_model.ShadowSettings(), query_free.TailShadowSettings()):
        old = cache.settings_fields(settings, ("train_dtype",))
        assert "train_dtype" not in old  # models cached before the field existed are found again
        new = cache.settings_fields(dataclasses.replace(settings, train_dtype="bfloat16"), ("train_dtype",))
        assert new["train_dtype"] == "bfloat16" and cache.cache_key(new) != cache.cache_key(old)
    # the shadow model's fields were its settings as a whole before: they must read the same
    assert cache.settings_fields(shadow_model.ShadowSettings(), ("train_dtype",)) == {
        "epochs": 50, "batch_size": 32, "learning_rate": 1e-3, "halve_every": 10}


def test_a_query_free_shadow_with_statistics_matching_trains_in_bfloat16(tmp_path, data_dir):
    from mia_tf.attacks import query_free

    head, tail = split(models.load_model("lenet_mnist")[0], "relu2")
    _, images, _ = data.victims("mnist", "0-99")
    intercepted = head.predict(data.normalize(images, "mnist"), verbose=0)
    paths = {}
    for dtype in (None, "bfloat16"):
        settings = query_free.TailShadowSettings(epochs=1, limit=2048, feature_stats_weight=1.0, train_dtype=dtype)
        shadow, paths[dtype], _ = query_free.trained_shadow(
            head, tail, "tail", ImageSpace.of_dataset("mnist"), mia_tf.attacker_set("mnist", "dist", data_dir),
            settings, AttackContext(str(tmp_path)), intercepted=intercepted)
        assert shadow.layers[1].dtype_policy.name == "float32"
        history = json.load(open(paths[dtype].replace(".weights.h5", ".training.json")))["history"]
        assert history["accuracy"][-1] > 0.3, history  # the tail classifies through the new shadow
    assert paths["bfloat16"] != paths[None]


def test_an_unknown_training_type_is_refused_before_work(tmp_path, data_dir):
    from mia_tf.attacks import query_free

    with pytest.raises(UsageError, match="unknown train_dtype 'int8'"):
        BlackboxSettings(train_dtype="int8")
    with pytest.raises(UsageError, match="unknown train_dtype 'fp8'"):
        query_free.QueryFreeSettings(train_dtype="fp8")
    refused = mia_tf_in_process("queryfree", "--layer", "relu2", "--data-dir", data_dir, "--train-dtype", "int4",
                                "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "unknown --train-dtype 'int4'" in refused.stderr
    assert not (tmp_path / "refused").exists() and not (tmp_path / "cache").exists()


def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert precision.native_bfloat16(str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2 amx_bf16 amx_tile\n")
    assert precision.native_bfloat16(str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw\n")  # AMD EPYC / older Xeon
    assert not precision.native_bfloat16(str(cpuinfo))
    assert not precision.native_bfloat16(str(tmp_path / "absent"))  # not Linux: assume emulated


def test_emulated_bfloat16_is_warned_about_and_native_is_not(monkeypatch):
    head = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    monkeypatch.setattr(precision, "native_bfloat16", lambda: False)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # as on a machine without a GPU
    with pytest.warns(UserWarning, match="emulated.*leave out --compute-dtype / --train-dtype"):
        precision.computing_in(head, "bfloat16")
    nested = keras.Sequential([keras.Input((4,)), head, keras.layers.Dense(1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        precision.computing_in(nested, "bfloat16")
    assert len(caught) == 1  # once for the whole model, not again for the nested one
    monkeypatch.setattr(precision, "native_bfloat16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.computing_in(head, "bfloat16")
        precision.computing_in(head, "float16")  # a GPU type: nothing to say on the CPU
        precision.computing_in(head, None)
