"""The black-box inverse-network attack through the CLI: Keras and .tflite oracles, cache, bad input."""

import json

import pytest

from conftest import ROOT, assert_beats_featureless, mia_tf, mia_tf_in_process


def _blackbox(tmp_path, data_dir, *args, run=mia_tf):
    return run("blackbox", "--data-dir", data_dir, "--cache-dir", str(tmp_path / "cache"), *args)


def test_inverse_network_learns_from_queries_and_is_reused(tmp_path, data_dir):
    args = ("--layer", "conv1", "--data", "dist", "--queries", "2048", "--epochs", "3")
    first = _blackbox(tmp_path, data_dir, *args, "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    assert "decoder (paper_decoder_mnist_conv1) trained on dist" in first.stderr
    record = json.load(open(tmp_path / "first" / "metrics.json"))
    assert record["attack"] == "blackbox" and record["attacker_data"] == "dist"
    assert record["queries_made_this_run"] == 2048 and not record["decoder_from_cache"]
    assert_beats_featureless(record["summary"]["psnr"]["mean"], "mnist", "paper10", margin=3)  # 16.10 measured
    second = _blackbox(tmp_path, data_dir, *args, "--out", str(tmp_path / "second"))
    assert second.returncode == 0 and "loaded from" in second.stderr
    again = json.load(open(tmp_path / "second" / "metrics.json"))
    assert again["queries_made_this_run"] == 0 and again["decoder_from_cache"]
    assert again["summary"]["psnr"]["mean"] == record["summary"]["psnr"]["mean"]
    assert record["decoder_training"]["seconds"] > 0 and not record["decoder_training"]["resumed"]
    losses = record["decoder_training"]["history"]["loss"]  # one per epoch, for judging convergence
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert again["decoder_training"] == record["decoder_training"]  # the cost of the reused decoder


def test_a_tflite_oracle_answers_the_queries_and_must_fit_the_layer(tmp_path, data_dir):
    tflite = str(ROOT / "export" / "lenet_mnist_relu2_int8.tflite")  # the shipped head (tests/test_export_dir.py)
    result = _blackbox(tmp_path, data_dir, "--layer", "relu2", "--oracle", tflite, "--queries", "1024",
                       "--epochs", "1", "--out", str(tmp_path / "bb"))
    assert result.returncode == 0, result.stderr
    assert ".tflite head" in json.load(open(tmp_path / "bb" / "metrics.json"))["oracle"]
    wrong = _blackbox(tmp_path, data_dir, "--layer", "conv1", "--oracle", tflite, "--queries", "1024")
    assert wrong.returncode == 2 and "come from another split" in wrong.stderr


def test_bad_budgets_and_settings_are_refused_before_work(tmp_path, data_dir):
    for args, message in [(("--queries", "16"), "at least one training batch (32)"),
                          (("--data", "web"), "unknown attacker data 'web'"),
                          (("--attack", "gan"), "unknown attack 'gan'"),
                          (("--preset", "fast"), "unknown preset 'fast'"),
                          (("--compute-dtype", "int8"), "unknown --compute-dtype 'int8'"),
                          (("--queries", "9001"), "more than the 9000 attacker images (dist)")]:
        result = _blackbox(tmp_path, data_dir, "--layer", "conv1", *args, run=mia_tf_in_process)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow  # 45 s: 5,000 rMLE steps through the shadow, then the hybrid (the example runs a hybrid in the suite)
def test_shadow_and_hybrid_share_the_queries_and_rebuild_the_digits(tmp_path, data_dir):
    args = ("--layer", "relu2", "--data", "dist", "--queries", "4096", "--epochs", "3")
    shadow = _blackbox(tmp_path, data_dir, *args, "--attack", "shadow", "--out", str(tmp_path / "shadow"))
    assert shadow.returncode == 0, shadow.stderr
    record = json.load(open(tmp_path / "shadow" / "metrics.json"))
    assert record["queries_made_this_run"] == 4096 and record["rmle"]["steps"] == 5000
    # rMLE through a shadow fitted to 4,096 answers (2,048 left it within 1.3 dB of a featureless guess)
    assert_beats_featureless(record["summary"]["psnr"]["mean"], "mnist", "paper10", margin=2.5)  # 15.22 measured
    assert "rMLE through the shadow: step 5,000 of 5,000, loss " in shadow.stderr  # its progress in the log
    hybrid = _blackbox(tmp_path, data_dir, *args, "--attack", "hybrid", "--out", str(tmp_path / "hybrid"))
    assert hybrid.returncode == 0, hybrid.stderr
    record = json.load(open(tmp_path / "hybrid" / "metrics.json"))
    assert record["queries_made_this_run"] == 0  # the shadow's answers were kept and reused
    assert record["shadow_from_cache"] and not record["decoder_from_cache"]
    assert_beats_featureless(record["summary"]["psnr"]["mean"], "mnist", "paper10", margin=2.5)  # 15.63 measured
    # refinement through the shadow is kept only if it gained on 100 of the attacker's own images
    refinement = record["refinement"]
    assert refinement["validation_images"] == 100 and refinement["refined"] == (refinement["validation_gain_db"] > 0)
    inverse = _blackbox(tmp_path, data_dir, *args, "--out", str(tmp_path / "inverse"))
    assert inverse.returncode == 0, inverse.stderr
    decoder_alone = json.load(open(tmp_path / "inverse" / "metrics.json"))["summary"]["psnr"]["mean"]
    assert (record["summary"]["psnr"]["mean"] == decoder_alone) != refinement["refined"]


def test_shadow_best_inverts_an_affine_shadow_exactly(tmp_path, data_dir):
    args = ("--layer", "conv1", "--data", "dist", "--queries", "2048", "--epochs", "3", "--attack", "shadow")
    paper = _blackbox(tmp_path, data_dir, *args, "--compute-dtype", "bfloat16", "--out", str(tmp_path / "paper"))
    best = _blackbox(tmp_path, data_dir, *args, "--preset", "best", "--out", str(tmp_path / "best"))
    assert paper.returncode == 0 and best.returncode == 0, paper.stderr + best.stderr
    paper, best = (json.load(open(tmp_path / run / "metrics.json")) for run in ("paper", "best"))
    assert best["shadow_from_cache"]  # one shadow per query set, whatever the preset
    assert best["rmle"]["exact_linear"] and not paper["rmle"]["exact_linear"]
    assert paper["rmle"]["compute_dtype"] == "bfloat16" and best["rmle"]["compute_dtype"] is None
    assert best["summary"]["psnr"]["mean"] > paper["summary"]["psnr"]["mean"]


def test_best_preset_probes_an_affine_head_and_fits_a_linear_decoder(tmp_path, data_dir):
    out = tmp_path / "linear"
    run = _blackbox(tmp_path, data_dir, "--layer", "conv1", "--data", "dist", "--queries", "2048", "--preset", "best",
                    "--images", "0-19", "--out", str(out))
    assert run.returncode == 0, run.stderr
    record = json.load(open(out / "metrics.json"))
    assert record["affine_probe"]["affine"] and record["decoder_family"] == "linear_decoder"
    assert record["queries_made_this_run"] == 2048 + 12  # the budget leaves room for the probe
    assert record["summary"]["psnr"]["mean"] > 45  # the paper's decoder reaches 40.7 dB with 9,000 queries


def test_a_decoder_trained_on_noise_has_its_levels_checked_within_the_budget(tmp_path, data_dir):
    out = tmp_path / "noise"
    run = _blackbox(tmp_path, data_dir, "--layer", "relu2", "--data", "noise", "--queries", "1024", "--preset", "best",
                    "--epochs", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    record = json.load(open(out / "metrics.json"))
    check = record["levels_check"]
    assert check["queries"] == 30 * 10 and check["sampled_victims"] == 10 and len(check["mean_feature_distance"]) == 30
    assert record["queries_made_this_run"] == 1024 + 12 + 300  # the budget leaves room for probe and check


def test_an_int8_tflite_of_an_affine_head_still_probes_affine(tmp_path, data_dir):
    from mia_tf import data
    from mia_tf.attacks.inverse_network import probe_affine
    from mia_tf.attacks.oracle import QueryOracle

    images = data.attacker_set("mnist", "dist", data_dir, limit=8).images
    probe = probe_affine(QueryOracle.from_tflite(str(ROOT / "export" / "lenet_mnist_conv1_int8.tflite")), images)
    assert probe["affine"] and 1e-4 < probe["deviation"] < 0.05  # rounding, far below a ReLU split's 0.19+
