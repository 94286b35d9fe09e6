"""tf.distribute with real workers: two processes on loopback train as one mirrored process does.

`multiworker` runs one process per machine, each told the cluster by TF_CONFIG. Here two worker
processes on 127.0.0.1 (ports free at run time) train the target model and a decoder for one epoch
each and run rMLE on half the victims each; the chief's weights must equal those of the same run
under `mirrored` on two logical CPUs of one process (the same global batches, split the same way),
its gathered reconstructions that process's, and the other worker must leave no file behind. Bad cluster descriptions and absent workers end in one line and exit status 2.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import ROOT
from mia_tf.distributed import loopback_cluster

TRAIN_BOTH = """
import dataclasses, json, os, numpy as np, tensorflow as tf
if {logical_cpus} > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * {logical_cpus})
from mia_tf import distributed
strategy = distributed.make_strategy({strategy!r})  # first: multiworker sets TensorFlow up at start
from mia_tf import data, models, train
from mia_tf.attacks import inverse_network, learned_prior, whitebox
from mia_tf.attacks.context import AttackContext
from mia_tf.image_space import ImageSpace
from mia_tf.split import split
out, cache = distributed.writable_dirs(strategy, {out!r}, {cache!r})
report = train.train("mnist", out=out, epochs=1, batch_size=16, limit=1024, validation_freq=1,
                     data_dir={data!r}, strategy=strategy, verbose=0)
model = models.load_model("lenet_mnist")[0]
head, _ = split(model, "relu2")
decoder, _ = learned_prior.prior_decoder(
    head, ImageSpace.of_dataset("mnist"), data.attacker_set("mnist", "dist", {data!r}), AttackContext(cache, strategy),
    inverse_network.DecoderSettings(family="best", epochs=1, width=8, batch_size=32), limit=1024)
_, images, _ = data.victims("mnist", "paper10")
settings = dataclasses.replace(whitebox.preset("paper", head, ImageSpace.of_dataset("mnist")), steps=30)
rmle = distributed.sharded(strategy, lambda victims: whitebox.reconstruct(head, victims, settings).reconstruction,
                           head(data.normalize(images, "mnist")).numpy())
if distributed.is_chief(strategy):
    trained = models.ZOO["lenet_mnist"].build()
    trained.load_weights(os.path.join(out, "lenet_mnist.weights.h5"))
    np.savez(os.path.join(out, "weights.npz"), *trained.get_weights(), *decoder.get_weights())
    np.save(os.path.join(out, "rmle.npy"), rmle)
print("REPORT", json.dumps(report))
"""


def _start(code, tf_config=None, env_extra=None, **values):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **(env_extra or {}))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code).format(**values)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout=600):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.split("REPORT", 1)[1])


def test_two_workers_on_loopback_train_what_one_mirrored_process_trains(tmp_path, data_dir):
    cluster = loopback_cluster(2)
    worker_tmp = tmp_path / "worker1_tmp"
    worker_tmp.mkdir()
    values = dict(strategy="multiworker", logical_cpus=1, data=data_dir)
    workers = [
        _start(TRAIN_BOTH, cluster[0], out=str(tmp_path / "chief"), cache=str(tmp_path / "chief_cache"),
               **values),
        _start(TRAIN_BOTH, cluster[1], {"TMPDIR": str(worker_tmp)}, out=str(tmp_path / "worker1"),
               cache=str(tmp_path / "worker1_cache"), **values),
    ]
    mirrored = _start(TRAIN_BOTH, strategy="mirrored", logical_cpus=2, data=data_dir, out=str(tmp_path / "mirrored"),
                      cache=str(tmp_path / "mirrored_cache"))
    reports = [_finish(w) for w in workers]
    mirrored_report = _finish(mirrored)

    assert [r["replicas"] for r in reports] == [2, 2] and mirrored_report["replicas"] == 2
    chief = np.load(tmp_path / "chief" / "weights.npz")
    reference = np.load(tmp_path / "mirrored" / "weights.npz")
    assert len(chief.files) == len(reference.files) > 10
    for name in reference.files:  # two replicas' sums are the same either way: equal, here bit for bit
        np.testing.assert_allclose(chief[name], reference[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert reports[0]["test_accuracy"] > 0.25, reports[0]  # 32 steps from scratch, well above chance (0.10)
    assert reports[0]["test_accuracy"] == mirrored_report["test_accuracy"]
    # rMLE: each worker took 5 of the 10 victims; the chief gathered all 10, in order
    np.testing.assert_allclose(np.load(tmp_path / "chief" / "rmle.npy"), np.load(tmp_path / "mirrored" / "rmle.npy"),
                               atol=1e-4)
    # the other worker wrote nothing: not its out, not its cache, and its temporary copies are gone
    assert not (tmp_path / "worker1").exists() and not (tmp_path / "worker1_cache").exists()
    assert list(worker_tmp.iterdir()) == []


CLI_TRAIN = [sys.executable, "-m", "mia_tf", "train", "--dataset", "mnist", "--epochs", "1", "--limit", "64",
             "--strategy", "multiworker"]


def _cli(args, tf_config, cwd, env_extra=None, timeout=120):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **(env_extra or {}))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("tf_config, message", [
    (None, "strategy multiworker needs TF_CONFIG on every worker"),
    ("{not json", "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "host:port strings"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "task index must be 0 to 0"),
    ('{"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}',
     "may list only workers"),
])
def test_a_bad_cluster_description_says_what_is_wrong(tf_config, message):
    from mia_tf.distributed import read_tf_config
    from mia_tf.errors import UsageError

    with pytest.raises(UsageError, match=message):
        read_tf_config(tf_config)


def _one_error_line(result):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mia_tf: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_the_cli_refuses_a_bad_cluster_description_in_one_line_before_any_work(tmp_path):
    assert "TF_CONFIG is not a cluster description" in _one_error_line(_cli(CLI_TRAIN, "{not json", tmp_path))
    assert not (tmp_path / "runs").exists()


def test_a_worker_that_cannot_reach_the_others_gives_up_in_one_line(tmp_path):
    cluster = loopback_cluster(2)  # worker 1 never starts
    result = _cli(CLI_TRAIN, json.dumps(cluster[0]), tmp_path, {"MIA_TF_CONNECT_SECONDS": "10"})
    assert "could not reach worker 1 at" in _one_error_line(result)
    assert not (tmp_path / "runs").exists()


TRAIN_ONLY = """
import json
from mia_tf import distributed
strategy = distributed.make_strategy("multiworker")
from mia_tf import train
report = train.train("mnist", out={out!r}, epochs=3, batch_size=16, limit=2048, validation_freq=3,
                     data_dir={data!r}, strategy=strategy, verbose=0)
print("REPORT", json.dumps(report))
"""


@pytest.mark.slow
def test_killing_a_worker_stops_the_other_and_both_resume_from_the_chiefs_backup(tmp_path, data_dir):
    def start_both(cluster):
        return [_start(TRAIN_ONLY, config, out=str(tmp_path / f"worker{i}"), data=data_dir)
                for i, config in enumerate(cluster)]

    backup = tmp_path / "worker0" / "checkpoints" / "backup"
    workers = start_both(loopback_cluster(2))
    deadline = time.monotonic() + 600
    while not backup.is_dir():  # the first epoch's backup is whole once the directory exists
        assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, workers[0].stderr.read()
        time.sleep(0.1)
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait()
    try:
        workers[0].wait(timeout=300)  # its next all-reduce fails: it must end, not hang
    except subprocess.TimeoutExpired:
        workers[0].kill()
        pytest.fail("the chief went on waiting for a killed worker for 300 s")
    assert workers[0].returncode != 0
    epoch_backed_up = json.loads((backup / "training_metadata.json").read_text())["epoch"]
    assert 1 <= epoch_backed_up < 3

    reports = [_finish(w) for w in start_both(loopback_cluster(2))]
    history = (tmp_path / "worker0" / "lenet_mnist.history.csv").read_text().splitlines()
    assert len(history) == 1 + 3  # header, then each epoch once: the resumed run began where the backup was
    assert reports[0]["test_accuracy"] > 0.8, reports[0]  # 3 epochs on 2,048 images
    assert not (tmp_path / "worker1").exists()
