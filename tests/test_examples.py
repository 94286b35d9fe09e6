import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, assert_beats_featureless


def _run_example(data_dir, out, *flags):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "examples/attack_your_own_model.py", *flags, "--data-dir", data_dir,
                           "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)


def test_attack_your_own_model_runs_top_to_bottom(data_dir, tmp_path):
    """The literate example, quick mode: all three attacks at `best`, from `import mia_tf` alone, on a
    model outside the zoo that normalises its own input (one cut, 512 attacker images, one epoch)."""
    result = _run_example(data_dir, tmp_path, "--quick")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        run = json.load(f)
    # the space was read off the model's Normalization layer: MNIST's own statistics, not the zoo's 0.5 / 0.5
    assert run["space"]["pixel_scale"] == 255 and abs(run["space"]["mean"][0] - 0.1307) < 0.002
    assert abs(run["space"]["std"][0] - 0.3081) < 0.002
    found = run["splits"]["block_out"]
    assert sorted(run["splits"]) == ["block_out"] and 0.5 < found["device_share_of_flops"] < 1
    assert_beats_featureless(found["whitebox"][0], "mnist", "paper10", margin=15)
    assert_beats_featureless(found["blackbox"][0], "mnist", "paper10", margin=8)
    assert_beats_featureless(found["queryfree"][0], "mnist", "paper10", margin=3)
    # settings derived from the head, never tuned on this model: lambda_TV 0 on the decoder's guess
    assert found["whitebox_settings"]["prior"] == "decoder" and found["whitebox_settings"]["steps"] == 100


@pytest.mark.slow
def test_attack_your_own_model_at_full_size(data_dir, tmp_path):
    """The example as documented: three cuts, the `best` presets as they are."""
    result = _run_example(data_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        splits = json.load(f)["splits"]
    for found in splits.values():
        assert_beats_featureless(found["whitebox"][0], "mnist", "paper10", margin=15)
        assert_beats_featureless(found["blackbox"][0], "mnist", "paper10", margin=10)
        assert_beats_featureless(found["queryfree"][0], "mnist", "paper10", margin=5)
