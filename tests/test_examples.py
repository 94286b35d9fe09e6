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
    """The literate example on a model outside the zoo (batch norm, a residual block), quick mode."""
    result = _run_example(data_dir, tmp_path, "--quick")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        splits = json.load(f)["splits"]
    assert sorted(splits) == ["block_out", "conv2", "stem_relu"]
    # one convolution, batch norm and a ReLU hide next to nothing from a white-box server
    assert splits["stem_relu"]["whitebox"][0] > 20
    for name, found in splits.items():
        assert_beats_featureless(found["blackbox"][0], "mnist", "paper10", margin=2.4)
        # lambda_TV follows the features' scale at splits no preset was tuned on (1.0 would swamp them)
        assert 0 < found["whitebox_tv_weight"] < 0.1, name
    assert splits["stem_relu"]["device_share_of_flops"] < splits["conv2"]["device_share_of_flops"]


@pytest.mark.slow
def test_attack_your_own_model_at_full_size(data_dir, tmp_path):
    """The example as documented (2,000 rMLE steps, a 5-epoch decoder on 9,000 queries)."""
    result = _run_example(data_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        splits = json.load(f)["splits"]
    for name, found in splits.items():
        assert_beats_featureless(found["whitebox"][0], "mnist", "paper10", margin=8)
        assert_beats_featureless(found["blackbox"][0], "mnist", "paper10", margin=10)
