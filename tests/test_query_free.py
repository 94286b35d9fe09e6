"""The query-free attack: shadow structures, training through the frozen tail, bad input."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import mia_tf
from conftest import ROOT, assert_beats_featureless, mia_tf as run_cli, mia_tf_in_process
from mia_tf.attacks import cache as cache_lib
from mia_tf.attacks import inverse_network, levels_check, query_free
from mia_tf.attacks.context import AttackContext
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace

MNIST = ImageSpace.of_dataset("mnist")


@pytest.mark.parametrize("dataset,layer,expected_convs", [("mnist", "conv1", 2), ("mnist", "relu2", 4),
                                                          ("cifar10", "conv11", 2), ("cifar10", "relu22", 2),
                                                          ("cifar10", "relu32", 3)])
def test_the_papers_different_structures_fit_the_tail(dataset, layer, expected_convs):
    head, _ = mia_tf.split(mia_tf.models.ZOO[mia_tf.models.DEFAULT_MODEL[dataset]].build(), layer)
    shadow = query_free.shadow_head(head, "diff", (dataset, layer))
    assert tuple(shadow.output.shape) == tuple(head.output.shape)
    assert sum(isinstance(l, keras.layers.Conv2D) for l in shadow.layers) == expected_convs


def test_a_shadows_weights_hash_does_not_depend_on_layers_made_before():
    # the decoder trained through a shadow is cached under this hash: auto-generated layer names
    # (conv2d_7 ...) would make a reloaded shadow miss its decoder in another process
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")
    first = query_free.shadow_head(head, "diff", ("mnist", "relu2"))
    keras.layers.Conv2D(4, 3)  # another layer in between shifts any automatic numbering
    second = query_free.shadow_head(head, "diff", ("mnist", "relu2"))
    second.set_weights(first.get_weights())
    assert mia_tf.models.weights_sha256(first) == mia_tf.models.weights_sha256(second)
    derived = [query_free.different_structure(head) for _ in range(2)]
    derived[1].set_weights(derived[0].get_weights())
    assert mia_tf.models.weights_sha256(derived[0]) == mia_tf.models.weights_sha256(derived[1])


def test_a_different_structure_is_derived_for_heads_outside_the_zoo():
    x = inputs = keras.Input((20, 20, 3))
    x = keras.layers.Conv2D(12, 7, activation="relu")(x)  # 7x7 -> three 3x3
    x = keras.layers.Conv2D(6, 3, padding="same")(x)  # 3x3 -> 3x3 to 6 + 1x1
    head = keras.Model(inputs, keras.layers.AveragePooling2D(2)(x))
    shadow = query_free.different_structure(head)
    assert tuple(shadow.output.shape) == tuple(head.output.shape) == (None, 7, 7, 6)
    kernels = [l.kernel_size[0] for l in shadow.layers if isinstance(l, keras.layers.Conv2D)]
    assert kernels == [3, 3, 3, 3, 1]
    branched_in = keras.Input((8, 8, 1))
    branched = keras.Model(branched_in, keras.layers.Add()([keras.layers.Conv2D(1, 3, padding="same")(branched_in),
                                                             branched_in]))
    with pytest.raises(UsageError, match="chain of layers"):
        query_free.different_structure(branched)


def _queryfree_cli(tmp_path, data_dir, *args):
    """`python -m mia_tf queryfree` on dist data with a cache and output in tmp_path: (result, metrics.json)."""
    result = run_cli("queryfree", "--data", "dist", *args, "--data-dir", data_dir, "--cache-dir", str(tmp_path / "cache"),
                     "--out", str(tmp_path / "qf"))
    assert result.returncode == 0, result.stderr
    return result, json.load(open(tmp_path / "qf" / "metrics.json"))


def test_shadow_through_the_tail_then_rmle_via_the_cli(tmp_path, data_dir):
    # conv1, where the authors' attack works (at relu2 it does not beat a featureless guess)
    args = ("--layer", "conv1", "--net", "same", "--epochs", "2", "--limit", "4096")
    result, record = _queryfree_cli(tmp_path, data_dir, *args)
    assert record["attack"] == "queryfree" and record["net"] == "same" and record["shadows"][0]["rmle"]["steps"] == 500
    assert not record["shadows"][0]["from_cache"]
    assert_beats_featureless(record["summary"]["psnr"]["mean"], "mnist", "paper10", margin=3)  # 15.90 measured
    assert "rMLE through shadow 1 of 1: step 500 of 500" in result.stderr  # long runs show they move
    again, _ = _queryfree_cli(tmp_path, data_dir, *args)
    assert "loaded from" in again.stderr


def test_feature_statistics_matching_pulls_the_shadow_towards_the_intercepted_features(tmp_path, data_dir):
    model = mia_tf.load_model("lenet_mnist")[0]
    head, tail = mia_tf.split(model, "relu2")
    _, images, _ = mia_tf.data.victims("mnist", "0-99")
    x = mia_tf.data.normalize(images, "mnist")
    intercepted = head.predict(x, verbose=0)
    dist = mia_tf.attacker_set("mnist", "dist", data_dir)
    target_mean, target_std = query_free.feature_statistics(intercepted)
    gaps = {}
    for weight in (0.0, 1.0):
        settings = query_free.TailShadowSettings(epochs=2, limit=2048, feature_stats_weight=weight)
        shadow, path, _ = query_free.trained_shadow(head, tail, "tail", MNIST, dist, settings,
                                                    AttackContext(str(tmp_path)), intercepted=intercepted)
        accuracy = cache_lib.training_record(path)["history"]["accuracy"]  # the tail's, per epoch
        assert len(accuracy) == 2 and accuracy[-1] > 0.5, accuracy
        mean, std = query_free.feature_statistics(shadow.predict(x, verbose=0))
        gaps[weight] = float(np.mean((mean - target_mean) ** 2 + (std - target_std) ** 2))
    assert gaps[1.0] < 0.5 * gaps[0.0], gaps
    # the same victims' features from another batch size differ in the last bits: same shadow
    _, _, cached = query_free.trained_shadow(head, tail, "tail", MNIST, dist, settings,
                                             AttackContext(str(tmp_path)), intercepted=intercepted * np.float32(1 + 1e-6))
    assert cached
    with pytest.raises(UsageError, match="needs the intercepted features"):
        query_free.trained_shadow(head, tail, "tail", MNIST, dist, settings, AttackContext(str(tmp_path)))


def test_best_preset_via_the_cli_trains_a_decoder_through_the_shadow(tmp_path, data_dir):
    result, record = _queryfree_cli(tmp_path, data_dir, "--layer", "relu2", "--preset", "best", "--shadows", "2",
                                    "--epochs", "1", "--limit", "64")
    assert record["preset"] == "best" and record["shadow"]["feature_stats_weight"] > 0
    assert len(record["shadows"]) == 2 and record["shadows"][0]["cache"] != record["shadows"][1]["cache"]
    assert all(s["decoder_training"]["seconds"] > 0 and "rmle" not in s for s in record["shadows"])
    refinement = record["refinement"]  # decided by cross-shadow validation on 100 attacker images
    assert refinement["validation_images"] == 100 and refinement["refined"] == (refinement["cross_shadow_gain_db"] > 0)
    assert (refinement["levels"]["black"], refinement["levels"]["white"]) in levels_check.LEVELS
    # the identity map (bound 0) is among those tried, so the chosen map's bound is not below it
    assert query_free.gain_lower_bound(refinement["levels_pair_gains_db"]) > -0.01  # gains kept to 0.001 dB
    before = refinement["victims_before_levels"]  # the report's view: the victims scored without the map
    assert set(before) == {"psnr", "ssim_paper", "ssim_standard"} and np.isfinite(before["psnr"])
    assert "dB on 100 of the attacker's images" in result.stderr and ", then levels " in result.stderr
    assert sum(record["chosen_shadow_counts"]) == 10 and len(record["mean_feature_residual"]) == 2
    # (a plumbing test: 64 images and one epoch teach the shadows nothing; quality is the next test's)
    # The README's figures and shadow and decoder times come from these two summaries of such records.
    for script in ("collect_results", "queryfree_training"):
        summary = subprocess.run([sys.executable, f"scripts/{script}.py", str(tmp_path),
                                  "--out", str(tmp_path / f"{script}.md")], capture_output=True, text=True, cwd=ROOT,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert summary.returncode == 0, summary.stderr
    row = next(line for line in open(tmp_path / "collect_results.md") if line.startswith("qf "))
    assert f"{record['summary']['psnr']['mean']:.2f} [" in row and row.split()[-1] == f"{record['seconds']:.0f}"
    row = next(line for line in open(tmp_path / "queryfree_training.md") if line.startswith("qf "))
    decoder_seconds = [f"{s['decoder_training']['seconds']:.0f}" for s in record["shadows"]]
    assert " / ".join(decoder_seconds) in row and row.split()[-1] == f"{record['seconds']:.0f}"
    assert f"{before['psnr']:.2f} / {before['ssim_paper']:.3f}" in row


def test_best_preset_rebuilds_the_digits_through_an_affine_shadow(tmp_path, data_dir):
    # conv1 is affine: the best shadow is too, and least squares through it rebuilds the digits
    _, record = _queryfree_cli(tmp_path, data_dir, "--layer", "conv1", "--preset", "best", "--shadows", "1",
                               "--epochs", "2", "--limit", "4096")
    assert_beats_featureless(record["summary"]["psnr"]["mean"], "mnist", "paper10", margin=6)  # 20.57 measured


def test_the_reconstruction_a_shadow_explains_best_is_kept():
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")
    _, images, _ = mia_tf.data.victims("mnist", "paper10")
    x = mia_tf.data.normalize(images, "mnist")
    features = head.predict(x, verbose=0)
    wrong = np.roll(x, 1, axis=0)  # every victim gets its neighbour's image
    mixed = np.where(np.arange(10)[:, None, None, None] < 5, x, wrong)
    chosen, choice, residuals = query_free.select_by_residual([head, head], features, [wrong, mixed])
    assert choice.tolist() == [1] * 5 + [0] * 5 or np.allclose(residuals[0, 5:], residuals[1, 5:])
    assert np.allclose(residuals[1, :5], 0, atol=1e-5) and np.all(residuals[0, :5] > 0.1)
    np.testing.assert_array_equal(chosen[:5], x[:5])


def test_cross_shadow_validation_sees_that_refinement_fixes_a_useless_decoder():
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")
    grey = keras.Sequential([keras.Input(head.output.shape[1:]), keras.layers.Flatten(),
                             keras.layers.Dense(28 * 28, kernel_initializer="zeros"),
                             keras.layers.Reshape((28, 28, 1))])
    _, images, _ = mia_tf.data.victims("mnist", "paper10")
    # shadows identical to the real head: refinement through them can only help a blank guess
    invert = lambda v: inverse_network.invert(grey, v)  # noqa: E731
    decision = query_free.cross_shadow_validation([head, head], [invert, invert],
                                                  mia_tf.data.normalize(images, "mnist"), MNIST)
    assert decision["refined"] and decision["cross_shadow_gain_db"] > 1.0  # measured 2.3 dB
    assert decision["pairs"] == 2 and decision["validation_images"] == 10


def conv1_head_and_a_veiled_inversion():
    """The LeNet head at conv1, the paper's 10 images (normalised) and an inversion of them that
    gets every stroke right under a grey veil: black at 0.2, white at 1."""
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "conv1")
    _, images, _ = mia_tf.data.victims("mnist", "paper10")
    veiled = mia_tf.data.normalize_pixels(0.2 + 0.8 * images / 255.0, "mnist")
    return head, mia_tf.data.normalize(images, "mnist"), veiled


def test_cross_shadow_validation_lifts_a_grey_veil_with_a_levels_map():
    head, x, veiled = conv1_head_and_a_veiled_inversion()
    decision = query_free.cross_shadow_validation([head, head], [lambda v: veiled] * 2, x, MNIST, refinable=False)
    assert decision["levels"] == {"black": 0.2, "white": 1.0} and decision["levels_gain_db"] > 10
    assert not decision["refined"] and "cross_shadow_gain_db" not in decision
    np.testing.assert_allclose(query_free.apply_levels(veiled, MNIST, decision), x, atol=1e-4)
    assert query_free.apply_levels(veiled, MNIST, None) is veiled  # the paper preset: as inverted
    assert decision["levels_pair_gains_db"][0] > 10 and decision["levels_pair_gains_db"][1] > 10


def test_cross_shadow_validation_puts_no_levels_map_on_a_gain_within_the_noise():
    head, x, veiled = conv1_head_and_a_veiled_inversion()
    shifted = np.roll(x, 1, axis=2)  # one pixel off, no veil: the veil's map costs it 0.3 dB
    # shadow 0 inverts under a veil (2 of 6 pairs), shadows 1 and 2 one pixel off: the veil's map
    # gains 145 dB in 2 pairs (mean +48 dB) and loses in 4; its lower bound is below 0, so no map
    decision = query_free.cross_shadow_validation([head] * 3, [lambda v: veiled, lambda v: shifted, lambda v: shifted],
                                                  x, MNIST, refinable=False)
    assert decision["levels"] == {"black": 0.0, "white": 1.0} and decision["pairs"] == 6
    assert decision["levels_gain_db"] == 0 and decision["levels_pair_gains_db"] == [0.0] * 6


def test_gain_lower_bound_ranks_a_steady_gain_above_a_larger_erratic_one():
    steady, erratic = [0.4, 0.5, 0.6, 0.45, 0.55, 0.5], [3.46, 1.29, -0.88, 1.30, -7.29, 2.14]
    bounds = query_free.gain_lower_bound(np.array([steady, erratic, [0.0] * 6]))
    assert bounds[0] > 0.4 and bounds[1] < 0 and bounds[2] == 0  # the last is the identity map


def test_best_preset_inverts_an_affine_shadow_exactly_without_matching_statistics():
    conv1_head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "conv1")
    relu2_head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")
    best, paper = query_free.QueryFreeSettings("best"), query_free.QueryFreeSettings("paper")
    assert query_free.shadow_training(best, conv1_head, MNIST, 9000).feature_stats_weight == 0
    assert query_free.shadow_training(best, relu2_head, MNIST, 9000).feature_stats_weight > 0
    assert query_free.shadow_training(paper, relu2_head, MNIST, 9000).feature_stats_weight == 0


def test_best_preset_caps_the_epochs_of_a_large_attacker_set_and_leaves_other_shadow_keys_alone():
    head, _ = mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")
    best, paper = query_free.QueryFreeSettings("best"), query_free.QueryFreeSettings("paper")
    assert query_free.shadow_training(best, head, MNIST, 60_000).epoch_examples == 9000  # the same set
    assert query_free.shadow_training(best, head, MNIST, 9000).epoch_examples == 0  # dist: a full pass anyway
    assert query_free.shadow_training(paper, head, MNIST, 60_000).epoch_examples == 0  # the authors' schedule


def test_bad_input_is_refused_before_training(tmp_path, data_dir):
    for args, message in [(("--data", "noise"), "needs labelled images"), (("--net", "deep"), "unknown net"),
                          (("--epochs", "0"), "positive whole number"), (("--preset", "fast"), "unknown preset"),
                          (("--shadows", "0"), "shadows must be")]:
        result = mia_tf_in_process("queryfree", "--layer", "relu2", "--data-dir", data_dir, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    model = mia_tf.load_model("lenet_mnist")[0]
    conv1_head, _ = mia_tf.split(model, "conv1")
    _, relu2_tail = mia_tf.split(model, "relu2")
    dist = mia_tf.attacker_set("mnist", "dist", data_dir, limit=64)
    context = AttackContext(str(tmp_path))
    with pytest.raises(UsageError, match="different splits"):
        query_free.trained_shadow(conv1_head, relu2_tail, "x", MNIST, dist, context=context)
    head, tail = mia_tf.split(model, "relu2")
    five_classes = keras.Model(tail.input, keras.layers.Dense(5)(tail.output))
    with pytest.raises(UsageError, match="tail has 5 classes"):
        query_free.trained_shadow(head, five_classes, "y", MNIST, dist, context=context)
    assert not np.any([p.suffix == ".h5" for p in tmp_path.rglob("*")])


def test_decoders_through_same_set_shadows_are_capped_too():
    assert query_free.shadow_decoder_settings(60_000).epoch_examples == 9000  # the same set
    assert query_free.shadow_decoder_settings(9000).epoch_examples == 0  # the white-box prior's, cache key and all
