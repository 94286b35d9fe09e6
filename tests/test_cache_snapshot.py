import os
import subprocess
import sys

from conftest import ROOT


def snapshot(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "scripts/cache_snapshot.py", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def test_snapshot_carries_models_and_checkpoints_but_not_query_answers(tmp_path):
    cache, saved, fresh = tmp_path / "cache", tmp_path / "snapshot", tmp_path / "fresh"
    write(cache / "shadows" / "cifar10_relu22_abc.weights.h5", b"weights")
    write(cache / "shadows" / "cifar10_relu22_def.backup" / "latest.weights.h5", b"epoch 12")
    write(cache / "rmle" / "0123.npz", b"adam state")
    write(cache / "rmle" / "big.npz", b"x" * 2 ** 20)
    write(cache / "pairs" / "cifar10_relu22_abc.npy", b"answers")
    write(cache / "shadows" / ".partial.tmp.weights.h5", b"being written")

    result = snapshot("save", "--cache-dir", str(cache), "--snapshot", str(saved), "--max-mb", "0.5")
    assert result.returncode == 0, result.stderr
    carried = sorted(str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file())
    assert carried == ["rmle/0123.npz", "shadows/cifar10_relu22_abc.weights.h5",
                       "shadows/cifar10_relu22_def.backup/latest.weights.h5"]
    assert "rmle/big.npz" in result.stdout  # said, not silently dropped

    # restore fills a fresh cache and keeps what a cache already has
    write(fresh / "rmle" / "0123.npz", b"newer state")
    result = snapshot("restore", "--cache-dir", str(fresh), "--snapshot", str(saved))
    assert result.returncode == 0, result.stderr
    assert (fresh / "shadows" / "cifar10_relu22_def.backup" / "latest.weights.h5").read_bytes() == b"epoch 12"
    assert (fresh / "rmle" / "0123.npz").read_bytes() == b"newer state"

    # a finished run removed its backup: --prune drops it from the snapshot too
    (cache / "shadows" / "cifar10_relu22_def.backup" / "latest.weights.h5").unlink()
    result = snapshot("save", "--cache-dir", str(cache), "--snapshot", str(saved), "--max-mb", "0.5", "--prune")
    assert result.returncode == 0, result.stderr
    assert not (saved / "shadows" / "cifar10_relu22_def.backup" / "latest.weights.h5").exists()
    assert (saved / "shadows" / "cifar10_relu22_abc.weights.h5").read_bytes() == b"weights"


def test_the_backup_of_a_finished_run_is_neither_restored_nor_kept(tmp_path):
    # saved while epoch 48 of 50 trained; the run finished after the save and deleted its backup
    cache, saved = tmp_path / "cache", tmp_path / "snapshot"
    write(saved / "queryfree" / "cifar10_relu22_abc.backup" / "latest.weights.h5", b"epoch 48")
    write(saved / "queryfree" / "cifar10_relu22_abc.weights.h5", b"epoch 50")
    write(saved / "queryfree" / "cifar10_relu22_def.backup" / "latest.weights.h5", b"epoch 12")

    result = snapshot("restore", "--cache-dir", str(cache), "--snapshot", str(saved))
    assert result.returncode == 0, result.stderr
    assert not (cache / "queryfree" / "cifar10_relu22_abc.backup").exists()
    assert (cache / "queryfree" / "cifar10_relu22_def.backup" / "latest.weights.h5").read_bytes() == b"epoch 12"

    result = snapshot("save", "--cache-dir", str(cache), "--snapshot", str(saved), "--prune")
    assert result.returncode == 0, result.stderr
    assert not (saved / "queryfree" / "cifar10_relu22_abc.backup" / "latest.weights.h5").exists()
    assert (saved / "queryfree" / "cifar10_relu22_abc.weights.h5").read_bytes() == b"epoch 50"


def test_restore_without_a_snapshot_says_so(tmp_path):
    result = snapshot("restore", "--cache-dir", str(tmp_path / "cache"), "--snapshot", str(tmp_path / "none"))
    assert result.returncode != 0
    assert "nothing to restore" in result.stderr
