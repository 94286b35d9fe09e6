"""The library API: image spaces, attacker data, results, presets by structure, refusals before work,
and the CLI giving the library's numbers."""

import dataclasses
import json

import keras
import numpy as np
import pytest

import mia_tf
from conftest import mia_tf_in_process
from mia_tf.attacks import zoo_splits
from mia_tf.errors import UsageError


def _own_model(shape=(20, 24, 3), classes=4):
    """A small model outside the zoo that normalises its own input (pixels 0-255) with a
    Normalization layer whose statistics are neither MNIST's nor CIFAR-10's."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Normalization(mean=[0.3, 0.4, 0.5][:shape[-1]], variance=[0.04, 0.09, 0.01][:shape[-1]])(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="cut")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes)(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="own")


def test_zoo_splits_are_told_by_structure_not_by_name():
    for (dataset, layer), signature in zoo_splits.TUNED_SPLITS.items():  # the written-out signatures hold
        model = mia_tf.models.ZOO[mia_tf.models.DEFAULT_MODEL[dataset]].build()
        head = mia_tf.split(model, layer)[0]
        assert zoo_splits.structure_signature(head) == signature
        assert zoo_splits.zoo_split(head, mia_tf.ImageSpace.of_dataset(dataset)) == (dataset, layer)
    # a LeNet relu2 head under other layer names is still the zoo's; in another space it is not
    renamed = keras.models.clone_model(mia_tf.split(mia_tf.lenet_mnist(), "relu2")[0],
                                       clone_function=lambda layer: layer.__class__.from_config(
                                           layer.get_config() | {"name": "x_" + layer.name}))
    assert zoo_splits.zoo_split(renamed, mia_tf.ImageSpace.of_dataset("mnist")) == ("mnist", "relu2")
    assert zoo_splits.zoo_split(renamed, mia_tf.ImageSpace((28, 28, 1), 0.13, 0.31)) is None
    # a layer called relu22 in a model of one's own gets no CIFAR-10 settings
    inputs = keras.Input((32, 32, 3))
    own = keras.Model(inputs, keras.layers.Conv2D(8, 3, activation="relu", name="relu22")(inputs))
    assert zoo_splits.zoo_split(own, mia_tf.ImageSpace.of_dataset("cifar10")) is None


def test_an_image_space_is_read_from_the_models_normalisation_layers():
    model = _own_model()
    space = mia_tf.ImageSpace.from_model(model)  # fed pixels 0-255
    np.testing.assert_allclose(space.mean, [0.3, 0.4, 0.5], rtol=1e-6)
    np.testing.assert_allclose(space.std, [0.2, 0.3, 0.1], rtol=1e-6)
    head, _ = mia_tf.split(model, "cut")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 3)).astype(np.uint8)
    attack_head = space.attack_head(head)  # the head from the normalised tensor on
    assert not any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in attack_head.layers)
    np.testing.assert_allclose(attack_head(space.normalize(pixels)), head(pixels.astype(np.float32)), atol=1e-4)
    np.testing.assert_allclose(space.model_input(space.normalize(pixels)), pixels, atol=1e-3)
    # a keras.Sequential model has no `input` until called: the space is read all the same
    sequential = keras.Sequential([keras.Input((20, 24, 3)), *model.layers[1:]])
    assert mia_tf.ImageSpace.from_model(sequential) == space
    with pytest.raises(UsageError, match="no Rescaling or Normalization layer"):
        mia_tf.ImageSpace.from_model(attack_head)
    with pytest.raises(UsageError, match="std must be positive"):
        mia_tf.ImageSpace((8, 8, 1), 0.5, 0.0)


def test_attacker_data_is_checked_against_the_space():
    space = mia_tf.ImageSpace((8, 8, 3), (0.3, 0.4, 0.5), (0.2, 0.3, 0.1))
    pixels = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    data = mia_tf.AttackerData.from_images(pixels, space, np.arange(5))
    np.testing.assert_allclose(data.images, space.normalize(pixels))
    assert data.cache_key.startswith("sha256-")
    assert mia_tf.AttackerData.from_images(pixels[::-1], space, np.arange(5)).cache_key != data.cache_key
    import tensorflow as tf

    from_dataset = mia_tf.AttackerData.from_images(tf.data.Dataset.from_tensor_slices((pixels, np.arange(5))), space)
    np.testing.assert_array_equal(from_dataset.images, data.images)
    assert from_dataset.labels.tolist() == list(range(5))
    batched = tf.data.Dataset.from_tensor_slices((pixels, np.arange(5)[:, None])).batch(2)  # labels as a column
    assert mia_tf.AttackerData.from_images(batched, space).cache_key == data.cache_key
    gray = mia_tf.ImageSpace((8, 8, 1), 0.5, 0.25)  # one channel: (N, H, W) arrays and batches are images too
    gray_pixels = pixels[..., 0]
    assert mia_tf.AttackerData.from_images(tf.data.Dataset.from_tensor_slices(gray_pixels).batch(3), gray).cache_key \
        == mia_tf.AttackerData.from_images(gray_pixels[..., None], gray).cache_key
    np.testing.assert_allclose(mia_tf.AttackerData.from_images(pixels / 255.0, space, normalized=False).images,
                               data.images, atol=1e-5)
    np.testing.assert_array_equal(mia_tf.AttackerData.from_images(data.images, space, normalized=True).images,
                                  data.images)
    for images, labels, message in [(pixels[:, :4], None, r"attacker images must be images of shape \(N, 8, 8, 3\)"),
                                     (pixels / 255.0, None, "say whether they are normalised"),
                                     (pixels, np.arange(4), "one per image"),
                                     (pixels, np.linspace(0, 1, 5), "whole numbers"),
                                     (pixels, np.eye(5, dtype=int), "look one-hot")]:
        with pytest.raises(UsageError, match=message):
            mia_tf.AttackerData.from_images(images, space, labels)
    with pytest.raises(UsageError, match="outside this space's pixel range"):
        mia_tf.AttackerData.from_images(pixels / 255.0 + 9, space, normalized=True)
    with pytest.raises(UsageError, match=r"should be pixels in \[0, 1\]"):
        mia_tf.AttackerData.from_images(pixels / 1.0, space, normalized=False)
    with pytest.raises(UsageError, match="tail has 3 classes"):
        data.labelled(3)


def test_bad_input_is_refused_before_any_training(tmp_path):
    model = _own_model(shape=(16, 16, 1))
    space = mia_tf.ImageSpace.from_model(model)
    head, tail = mia_tf.split(model, "cut")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1)).astype(np.uint8)
    features = head(pixels.astype(np.float32)).numpy()
    mine = mia_tf.AttackerData.from_images(pixels, space, np.arange(64) % 4)
    context = mia_tf.AttackContext(cache_dir=str(tmp_path))
    refusals = [
        (lambda: mia_tf.whitebox_attack(head, features[:, :4], "best", attacker_data=mine, space=space,
                                        context=context), "features have shape"),
        (lambda: mia_tf.whitebox_attack(head, features, "best", space=space, context=context), "pass attacker_data"),
        (lambda: mia_tf.whitebox_attack(head, features, "best", attacker_data=mine, space=mia_tf.ImageSpace.of_dataset(
            "mnist"), context=context), "give the ImageSpace of this model's input"),
        (lambda: mia_tf.WhiteboxSettings(steps=0), "steps must be a positive whole number"),
        (lambda: mia_tf.BlackboxSettings(queries=8), "at least one training batch"),
        (lambda: mia_tf.BlackboxSettings(steps=2.5), "steps must be a positive whole number"),
        (lambda: mia_tf.QueryFreeSettings(net="deep"), "unknown net"),
        (lambda: mia_tf.blackbox_attack(mia_tf.QueryOracle(lambda x: np.zeros((len(x), 3)), (16, 16, 1), (3,)),
                                        features, "best", attacker_data=mine, space=space, context=context),
         "oracle .* answers \\(3,\\)"),
        (lambda: mia_tf.blackbox_attack(head, features, mia_tf.BlackboxSettings(queries=128), attacker_data=mine,
                                        space=space, context=context), "more than the 64 attacker images"),
        (lambda: mia_tf.blackbox_attack(head, features, mia_tf.BlackboxSettings("shadow"), attacker_data=mine,
                                        space=space, context=context), "pass structure"),
        (lambda: mia_tf.blackbox_attack(head, features, mia_tf.BlackboxSettings(preset="paper"), attacker_data=mine,
                                        space=space, context=context, structure=head), "only for the zoo splits"),
        (lambda: mia_tf.queryfree_attack(tail, features, "best", space=space, context=context, structure=head,
                                         attacker_data=mia_tf.AttackerData.from_images(pixels, space)), "no labels"),
        (lambda: mia_tf.queryfree_attack(tail, features, "best", space=space, context=context, structure=head,
                                         attacker_data=mia_tf.AttackerData.from_images(pixels, space, np.arange(64))),
         "tail has 4 classes"),
    ]
    for attack, message in refusals:
        with pytest.raises(UsageError, match=message):
            attack()
    assert not list(tmp_path.rglob("*.h5")) and not list(tmp_path.rglob("*.npy"))  # nothing trained or queried


def test_a_result_scores_prints_and_serialises(tmp_path):
    _, images, _ = mia_tf.victims("mnist", "paper10")
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "conv1")
    space = mia_tf.ImageSpace.of_dataset("mnist")
    features = head(space.normalize(images)).numpy()
    result = mia_tf.whitebox_attack(head, features, "best", space=space,  # affine: solved exactly, no prior
                                    context=mia_tf.AttackContext(cache_dir=str(tmp_path)))
    assert result.method == "exact_linear" and result.metrics is None and "exact_linear" in result.table()
    scored = mia_tf.score(result, images)
    assert scored.metrics["summary"]["psnr"]["mean"] > 60  # an affine head hides nothing
    assert "PSNR (dB)" in scored.table()
    record = json.loads(scored.to_json())
    assert record["attack"] == "whitebox" and record["preset"] == "best" and record["victims"] == 10
    assert record["space"]["name"] == "mnist" and record["settings"]["exact_linear"]
    assert set(record["seconds"]) == {"training", "attack", "total"}
    with pytest.raises(UsageError, match="truth has 3 images for 10"):
        mia_tf.score(result, images[:3])


def test_the_cli_gives_the_librarys_numbers(tmp_path):
    """The whitebox verb is the library call plus writing: the same reconstructions, to the bit."""
    out = tmp_path / "cli"
    run = mia_tf_in_process("whitebox", "--layer", "relu2", "--steps", "60", "--images", "0-4", "--out", str(out),
                            "--cache-dir", str(tmp_path / "cache"))
    assert run.returncode == 0, run.stderr
    cli = json.load(open(out / "metrics.json"))
    model = mia_tf.load_model("lenet_mnist")[0]
    head, _ = mia_tf.split(model, "relu2")
    space = mia_tf.ImageSpace.of_dataset("mnist")
    _, images, _ = mia_tf.victims("mnist", "0-4")
    settings = dataclasses.replace(mia_tf.whitebox_preset("paper", head, space), steps=60)
    result = mia_tf.score(mia_tf.whitebox_attack(head, head(space.normalize(images)).numpy(), settings, space=space),
                          images)
    assert result.metrics["per_image"]["psnr"] == cli["per_image"]["psnr"]
    assert cli["settings"] == result.settings and cli["method"] == result.method == "rmle"


def test_the_shadow_zero_start_smooths_more_after_noise_queries(tmp_path):
    """Through a Table 8 shadow, `best` takes lambda_TV from the features' energy: at a split outside
    the zoo the white-box rule when the shadow learnt from natural images, a larger multiple when it
    learnt from noise (its fit to natural images' features is looser), as tuned on held-out attacker images."""
    from mia_tf.attacks import blackbox, whitebox

    model = _own_model()
    space = mia_tf.ImageSpace.from_model(model)
    head, _ = mia_tf.split(model, "cut")
    pixels = np.random.default_rng(2).integers(0, 256, (64, 20, 24, 3)).astype(np.uint8)
    features = head(pixels[:4].astype(np.float32)).numpy()
    natural = mia_tf.AttackerData.from_images(pixels, space)
    settings = mia_tf.BlackboxSettings("shadow", "best", epochs=1, steps=2)
    weights = {}
    for data in (natural, dataclasses.replace(natural, synthetic=True)):
        result = mia_tf.blackbox_attack(head, features, settings, attacker_data=data, space=space, structure=head,
                                        context=mia_tf.AttackContext(cache_dir=str(tmp_path)))
        weights[data.synthetic] = result.provenance["rmle"]["tv_weight"]
        assert result.provenance["rmle"]["steps"] == 2
    energy = np.mean(np.square(features, dtype=np.float64))
    assert weights[False] == whitebox.feature_energy_tv_weight(features) == pytest.approx(0.064 * energy, rel=0.01)
    assert weights[True] == pytest.approx(blackbox.SHADOW_TV_PER_FEATURE_ENERGY_AFTER_NOISE * energy, rel=0.01)
    assert weights[True] > 3 * weights[False]
    # the zoo splits keep the multiples tuned at each on held-out attacker images
    assert blackbox.shadow_tv_per_feature_energy(("cifar10", "relu32"), natural) == 0.23
    assert blackbox.shadow_tv_per_feature_energy(("mnist", "relu2"), natural) == 0.064
