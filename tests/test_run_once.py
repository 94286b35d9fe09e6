"""scripts/run_once.sh: copies of a reproduce script share its runs out, each run done once.

A stand-in reproduce script drives the real run_once.sh (real bash, real flock); a stand-in
`python` on the PATH plays the attack: it notes which copy ran it on how many threads, takes a
second and writes the run's metrics.json.
"""

import fcntl
import os
import shutil
import subprocess

from conftest import ROOT

REPRODUCE = """set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data
source scripts/run_once.sh
start_runners "$@"
for name in {names}; do run_once attack out "$name"; done
wait_for_runners
"""

ATTACK = """#!/usr/bin/env bash
# python -m mia_tf VERB --data-dir DATA --out OUT ...
out=$7
mkdir -p "$out"
echo "${RUNNERS:-1} ${TF_NUM_INTRAOP_THREADS:-unset} ${TF_NUM_INTEROP_THREADS:-unset}" >> "$out/calls"
sleep 1
[ "$(basename "$out")" != bad ] || exit 3
[ "$(basename "$out")" != exits-75 ] || exit 75  # flock's usual "busy" status, from the attack itself
echo '{}' > "$out/metrics.json"
"""


def reproduce(tmp_path, names, runners, **env):
    """Run the stand-in reproduce script with RUNNERS=`runners`; returns the finished process."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "bin").mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "run_once.sh", tmp_path / "scripts" / "run_once.sh")
    (tmp_path / "scripts" / "reproduce_stand_in.sh").write_text(REPRODUCE.format(names=" ".join(names)))
    attack = tmp_path / "bin" / "python"
    attack.write_text(ATTACK)
    attack.chmod(0o755)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TF_NUM_")}
    environment.update(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", TMPDIR=str(tmp_path), RUNNERS=str(runners),
                       **env)
    return subprocess.run(["bash", "scripts/reproduce_stand_in.sh"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=60)


def calls(tmp_path, name):
    path = tmp_path / "out" / name / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_two_runners_share_the_runs_out_each_on_its_share_of_the_cores(tmp_path):
    names = ["a", "b", "c", "d"]
    result = reproduce(tmp_path, names, 2)
    assert result.returncode == 0, result.stderr
    threads = max(1, os.cpu_count() // 2)
    runs = {name: calls(tmp_path, name) for name in names}
    assert all(len(lines) == 1 for lines in runs.values()), runs  # each run once
    assert all((tmp_path / "out" / name / "metrics.json").exists() for name in names)
    copies = {lines[0].split()[0] for lines in runs.values()}
    assert copies == {"1", "2"}, runs  # the first copy (RUNNERS=2) and the one it started both ran some
    assert {tuple(lines[0].split()[1:]) for lines in runs.values()} == {(str(threads), str(threads))}

    # a second start finds every run done and runs nothing
    again = reproduce(tmp_path, names, 2)
    assert again.returncode == 0, again.stderr
    assert all(len(calls(tmp_path, name)) == 1 for name in names)


def test_one_runner_leaves_tensorflow_its_default_threads(tmp_path):
    result = reproduce(tmp_path, ["a"], 1)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path, "a") == ["1 unset unset"]


def test_a_failed_run_in_another_copy_fails_the_script(tmp_path):
    # "bad" is first: one copy takes it and fails; the other runs "good"
    result = reproduce(tmp_path, ["bad", "good"], 2)
    assert result.returncode != 0
    assert (tmp_path / "out" / "good" / "metrics.json").exists()
    assert not (tmp_path / "out" / "bad" / "metrics.json").exists()


def test_a_run_locked_by_another_process_is_skipped_and_an_attack_exiting_75_is_not(tmp_path):
    with open(tmp_path / "mia_tf_run_once_out_a.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = reproduce(tmp_path, ["a", "b"], 1)
    assert result.returncode == 0, result.stderr
    assert "a is being run by another process; skipped here" in result.stderr
    assert calls(tmp_path, "a") == [] and len(calls(tmp_path, "b")) == 1

    result = reproduce(tmp_path, ["exits-75"], 1)
    assert result.returncode == 75 and "skipped" not in result.stderr


def test_runners_must_be_a_positive_whole_number(tmp_path):
    result = reproduce(tmp_path, ["a"], "two")
    assert result.returncode == 2
    assert "RUNNERS must be a positive whole number" in result.stderr and "'two'" in result.stderr
    assert calls(tmp_path, "a") == []
