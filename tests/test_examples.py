import json
import os
import subprocess
import sys

from conftest import ROOT


def test_attack_your_own_model_runs_top_to_bottom(data_dir, tmp_path):
    """The literate example on a model outside the zoo (batch norm, a residual block), quick mode."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "examples/attack_your_own_model.py", "--quick", "--data-dir", data_dir,
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        splits = json.load(f)["splits"]
    assert sorted(splits) == ["block_out", "conv2", "stem_relu"]
    # one convolution, batch norm and a ReLU hide next to nothing from a white-box server
    assert splits["stem_relu"]["whitebox"][0] > 20
    for name, found in splits.items():
        assert found["blackbox"][0] > 14, name  # a black image scores about 10 dB on these victims
        # lambda_TV follows the features' scale at splits no preset was tuned on (1.0 would swamp them)
        assert 0 < found["whitebox_tv_weight"] < 0.1, name
    assert splits["stem_relu"]["device_share_of_flops"] < splits["conv2"]["device_share_of_flops"]
