import dataclasses

import numpy as np
import pytest

from mia_tf import data, metrics, models
from mia_tf.attacks import whitebox
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.split import split

from conftest import assert_beats_featureless, zoo_settings_key


@pytest.fixture(scope="module")
def lenet():
    return models.load_model("lenet_mnist")[0]


@pytest.fixture(scope="module")
def victims():
    _, images, _ = data.victims("mnist", "paper10")
    return images, data.normalize(images, "mnist")


def _psnr(images, reconstruction):
    return metrics.psnr(images / 255.0, data.denormalize(reconstruction, "mnist")).mean()


def test_exact_inversion_of_a_linear_head_beats_60_db(lenet, victims):
    images, x = victims
    head, _ = split(lenet, "conv1")
    assert whitebox.is_affine(head) and not whitebox.is_affine(split(lenet, "relu1")[0])
    settings = whitebox.preset("best", *zoo_settings_key("mnist", "conv1"))
    result = whitebox.reconstruct(head, head(x).numpy(), settings, pixel_range=data.pixel_range("mnist"))
    assert result.method == "exact_linear"
    assert _psnr(images, result.reconstruction) >= 60
    assert result.loss[-1] < 1e-3 * result.loss[0]  # CG residual fell


def test_exact_inversion_on_cifar_conv11_shape(victims):
    model = models.cifar10_cnn()  # untrained weights: the inversion does not depend on training
    _, images, _ = data.victims("cifar10", 4)
    head, _ = split(model, "conv11")
    x = data.normalize(images, "cifar10")
    result = whitebox.reconstruct(head, head(x).numpy(), whitebox.preset("best", *zoo_settings_key("cifar10", "conv11")),
                                      pixel_range=data.pixel_range("cifar10"))
    psnr = metrics.psnr(images / 255.0, data.denormalize(result.reconstruction, "cifar10"))
    assert psnr.min() >= 60


def test_short_rmle_converges_and_best_from_zeros_beats_a_featureless_guess(lenet, victims):
    images, x = victims
    head, _ = split(lenet, "relu2")
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=300)
    result = whitebox.reconstruct(head, head(x).numpy(), settings)
    assert result.method == "rmle" and len(result.loss) == 300
    assert result.loss[-1] < 0.2 * result.loss[0]
    best = dataclasses.replace(whitebox.preset("best", *zoo_settings_key("mnist", "relu2"), prior="none", features=head(x).numpy()), steps=1000)
    result = whitebox.reconstruct(head, head(x).numpy(), best, pixel_range=data.pixel_range("mnist"))
    assert_beats_featureless(_psnr(images, result.reconstruction), "mnist", "paper10", margin=3)  # 16.54 measured


def test_paper_preset_settings_are_the_authors():
    s = whitebox.preset("paper", *zoo_settings_key("cifar10", "relu32"))
    assert (s.steps, s.learning_rate, s.epsilon, s.amsgrad, s.tv_weight) == (5000, 1e-2, 1e-3, True, 1000.0)
    assert whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")).tv_weight == 1.0
    assert not (s.box or s.preactivation or s.exact_linear) and s.lr_schedule == "constant"


def test_batch_result_equals_one_by_one(lenet, victims):
    _, x = victims
    head, _ = split(lenet, "relu2")
    v = head(x[:3]).numpy()
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=50)
    together = whitebox.reconstruct(head, v, settings).reconstruction
    alone = whitebox.reconstruct(head, v[1:2], settings).reconstruction
    np.testing.assert_allclose(together[1:2], alone, atol=1e-4)


def test_bad_input_is_refused_before_work(lenet, victims):
    _, x = victims
    head, _ = split(lenet, "relu2")
    v = head(x[:2]).numpy()
    paper = whitebox.preset("paper", *zoo_settings_key("mnist", "relu2"))
    with pytest.raises(UsageError, match=r"shape \(24, 24, 8\) per image.*\(8, 8, 16\)"):
        whitebox.reconstruct(head, np.zeros((2, 24, 24, 8)), paper)
    bad = v.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(UsageError, match="NaN or infinite"):
        whitebox.reconstruct(head, bad, paper)
    with pytest.raises(UsageError, match="steps must be a positive whole number"):  # refused when built
        dataclasses.replace(paper, steps=0)
    with pytest.raises(UsageError, match="paper, best"):
        whitebox.preset("fastest")


def test_killed_rmle_resumes_from_its_checkpoint(lenet, victims, tmp_path, monkeypatch):
    _, x = victims
    head, _ = split(lenet, "relu2")
    v = head(x[:3]).numpy()
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=300, steps_per_call=50)
    uninterrupted = whitebox.reconstruct(head, v, settings)

    monkeypatch.setattr(whitebox, "CHECKPOINT_SECONDS", 0)  # save after every compiled call

    def kill_after_200(step, loss, reconstruction):
        if step == 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        whitebox.reconstruct(head, v, settings, progress=kill_after_200, checkpoint_dir=str(tmp_path))
    [checkpoint] = tmp_path.iterdir()
    with np.load(checkpoint) as saved:
        assert int(saved["done"]) == 150  # saved after step 150; step 200's state died with the run
    steps_run = []

    def record_steps(step, loss, reconstruction):
        steps_run.append(step)

    # other features are another run: it starts from step 0, not from this checkpoint
    whitebox.reconstruct(head, v[:2], dataclasses.replace(settings, steps=100), progress=record_steps,
                             checkpoint_dir=str(tmp_path))
    assert steps_run == [50, 100] and list(tmp_path.iterdir()) == [checkpoint]
    steps_run.clear()
    resumed = whitebox.reconstruct(head, v, settings, checkpoint_dir=str(tmp_path), progress=record_steps)
    assert steps_run == [150, 200, 250, 300]  # the resumed step first
    assert list(tmp_path.iterdir()) == []  # removed once finished
    np.testing.assert_allclose(resumed.reconstruction, uninterrupted.reconstruction, atol=1e-6)
    np.testing.assert_allclose(resumed.loss, uninterrupted.loss, rtol=1e-5)


def test_progress_lines_log_the_first_and_last_step_and_at_most_one_a_minute_between(lenet, victims, caplog):
    from mia_tf.attacks.context import AttackContext

    _, x = victims
    head, _ = split(lenet, "relu2")
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=300, steps_per_call=50)
    caplog.set_level("INFO", logger="mia_tf")
    whitebox.reconstruct(head, head(x[:2]).numpy(), settings,
                         progress=AttackContext().progress_for("rMLE", settings.steps))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("rMLE: step 50 of 300, loss ")
    assert lines[1].startswith("rMLE: step 300 of 300, loss ") and lines[1].endswith(" s per step")
    caplog.clear()
    whitebox.reconstruct(head, head(x[:2]).numpy(), settings,
                         progress=AttackContext(progress_seconds=0).progress_for("rMLE", settings.steps))
    every_call = [record.getMessage() for record in caplog.records]
    assert [line.split(",")[0] for line in every_call] == [f"rMLE: step {s} of 300" for s in range(50, 301, 50)]


def test_an_unfinished_runs_checkpoint_is_scored_against_its_victims(lenet, victims, tmp_path, monkeypatch):
    from mia_tf.experiment import score_rmle_checkpoint as score

    images, x = victims
    head, _ = split(lenet, "relu2")
    settings = dataclasses.replace(whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), steps=300, steps_per_call=50)
    monkeypatch.setattr(whitebox, "CHECKPOINT_SECONDS", 0)
    at_step = {}

    def kill_after_150(step, loss, reconstruction):
        at_step[step] = reconstruction
        if step == 150:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        whitebox.reconstruct(head, head(x).numpy(), settings, progress=kill_after_150,
                                 checkpoint_dir=str(tmp_path))
    [checkpoint] = tmp_path.iterdir()
    done, summary = score(str(checkpoint), "mnist", "paper10")
    assert done == 100  # the state saved after step 100, scored as the run would score it
    assert summary["psnr"]["mean"] == pytest.approx(_psnr(images, at_step[100]), abs=1e-4)
    assert summary["psnr"]["mean"] > _psnr(images, np.zeros_like(x))
    with pytest.raises(UsageError, match="give the --images the run was started with"):
        score(str(checkpoint), "mnist", "3")


def test_a_checkpoint_resumes_only_for_its_own_inputs(lenet, victims):
    _, x = victims
    head, _ = split(lenet, "relu2")
    v, others = head(x[:3]).numpy(), head(x[3:6]).numpy()
    start = np.zeros_like(x[:3])
    saved = whitebox._input_fingerprint(v, start)
    # the same features computed on another machine differ in their last bits: the same run
    last_bits_off = v * np.float32(1 + 2 ** -22)
    assert not np.array_equal(last_bits_off, v)
    settings, box, shapes = whitebox.preset("paper", *zoo_settings_key("mnist", "relu2")), None, (v.shape, start.shape)
    assert whitebox._checkpoint_path("d", head, whitebox._input_fingerprint(last_bits_off, start), shapes,
                                     settings, box) == whitebox._checkpoint_path("d", head, saved, shapes, settings, box)
    assert whitebox._same_inputs(saved, whitebox._input_fingerprint(last_bits_off, start))
    assert not whitebox._same_inputs(saved, whitebox._input_fingerprint(others, start))
    assert not whitebox._same_inputs(saved, whitebox._input_fingerprint(v, start + 0.5))
    assert not whitebox._same_inputs(None, whitebox._input_fingerprint(v, start))  # an older checkpoint


def test_best_tv_weight_follows_the_features_scale_at_untuned_splits(lenet):
    features = np.full((2, 4, 4, 8), 0.5, np.float32)  # mean square 0.25
    mnist = ImageSpace.of_dataset("mnist")
    untuned_head = split(lenet, "relu1")[0]  # a split no setting was tuned at
    untuned = whitebox.preset("best", untuned_head, mnist, prior="none", features=features)
    assert untuned.tv_weight == round(whitebox.BEST_TV_PER_FEATURE_ENERGY * 0.25, 4)
    assert whitebox.preset("best", *zoo_settings_key("mnist", "relu2"), prior="none", features=features).tv_weight == 0.1  # tuned
    # the paper's absolute 10 swamps the shipped CNN's small features: the energy rule applies
    assert whitebox.preset("best", *zoo_settings_key("cifar10", "relu22"), prior="none", features=features).tv_weight == untuned.tv_weight
    assert whitebox.preset("best", *zoo_settings_key("cifar10", "relu22"), prior="none").tv_weight == 10.0  # no features: the paper's
    assert whitebox.preset("paper", untuned_head, mnist, features=features).tv_weight == whitebox.DEFAULT_TV_WEIGHT
    # the structure decides, not the layer's name: relu2's head under another space, or renamed, is untuned
    relu2_head = zoo_settings_key("mnist", "relu2")[0]
    other_space = ImageSpace((28, 28, 1), mean=(0.1307,), std=(0.3081,))
    assert whitebox.preset("paper", relu2_head, other_space).tv_weight == whitebox.DEFAULT_TV_WEIGHT
    assert whitebox.preset("paper", relu2_head, mnist).tv_weight == 1.0
