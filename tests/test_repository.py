"""What a clone carries: no training state, no large files outside the shipped assets."""

import re
import subprocess

import pytest

from conftest import ROOT

MAX_TRACKED_BYTES = 2 << 20
LARGE_FILES_ALLOWED_UNDER = ("mia_tf/zoo/", "mia_tf/sample/", "export/")


def _tracked():
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git work tree (an sdist or a copy): nothing tracked to check")
    return [name for name in listing.decode().split("\0") if name]


def test_no_large_file_outside_the_shipped_assets():
    too_large = [name for name in _tracked() if not name.startswith(LARGE_FILES_ALLOWED_UNDER)
                 and (ROOT / name).is_file() and (ROOT / name).stat().st_size > MAX_TRACKED_BYTES]
    assert not too_large, "trained models and caches stay out of git (docs/operations.md)"


def test_no_training_state_is_tracked():
    tracked = _tracked()
    weights = [n for n in tracked if n.endswith((".weights.h5", ".keras", ".ckpt")) and not n.startswith("mia_tf/zoo/")]
    assert not weights
    assert not [n for n in tracked if n.startswith(("checkpoints/", "runs/"))]


def test_tests_do_not_import_scripts_or_experiments():
    offenders = [p.name for p in (ROOT / "tests").glob("*.py")
                 if re.search(r"^\s*(from|import) (scripts|experiments)\b", p.read_text(), re.M)]
    assert not offenders
