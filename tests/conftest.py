import atexit
import contextlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import types

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# pytest-xdist workers share the cores: TensorFlow in each (and in the CLI subprocesses it starts)
# takes its share of them, not a thread for every core, which oversubscribes them (as two copies
# of a reproduce script did: scripts/run_once.sh, start_runners).
_xdist_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _xdist_workers > 1:
    for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_variable, str(max(1, (os.cpu_count() or 1) // _xdist_workers)))
# An empty attack cache for the whole run, inherited by every CLI subprocess: a work tree whose
# ~/.cache/mia_tf holds trained decoders and shadows must test (and time) like a fresh clone.
os.environ["MIA_TF_CACHE"] = tempfile.mkdtemp(prefix="mia_tf_test_cache_")
atexit.register(shutil.rmtree, os.environ["MIA_TF_CACHE"], ignore_errors=True)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The full data sets and the authors' LeNet weights are not in the repository (too large; the
# weights have no licence). Tests that need them look here, else at these variables, and skip
# with one line saying so; everything else runs on the shipped weights and sample.
SHARED_DATA = pathlib.Path(os.environ.get("MIA_TF_DATA_DIR") or ROOT.parent / "shared" / "data")
REFERENCE_WEIGHTS = pathlib.Path(os.environ.get("MIA_TF_REFERENCE_WEIGHTS") or
                                 ROOT.parent / "shared" / "reference" / "he2019_lenet_mnist_weights.npz")


# A hang guard, not a speed bar: the CLI runs took up to 5 min on a machine 3-4x slower than most.
SUBPROCESS_TIMEOUT = 1200


def mia_tf(*args, cwd=None, module="mia_tf"):
    """Run `python -m mia_tf ARGS` (or another module) as a user would, without $MIA_TF_DATA_DIR."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MIA_TF_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=SUBPROCESS_TIMEOUT)


def mia_tf_in_process(*args):
    """`python -m mia_tf ARGS` in this process, as `mia_tf` without $MIA_TF_DATA_DIR, for checks of
    refusals: the same exit code and messages without a new interpreter importing TensorFlow
    (about 4 s each). Only `mia_tf` shows that a real process prints a one-line error."""
    from mia_tf.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_data_dir = os.environ.pop("MIA_TF_DATA_DIR", None)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as e:  # fire exits for flags it cannot parse
                code = e.code if isinstance(e.code, int) else 1
    finally:
        if saved_data_dir is not None:
            os.environ["MIA_TF_DATA_DIR"] = saved_data_dir
    return types.SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def start_server(log, *args, python=("-m", "mia_tf")):
    """`python -m mia_tf serve --port 0 --intercept-log LOG ARGS` as a process, once it listens: (process,
    its base URL). `python` replaces `-m mia_tf` (for example `-c CODE` that sets limits first)."""
    from mia_tf.serve import url_in_banner

    server = subprocess.Popen([sys.executable, *python, "serve", "--port", "0", "--intercept-log", str(log), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = server.stdout.readline()
    try:
        return server, url_in_banner(line)
    except ValueError:
        server.kill()
        raise AssertionError(line + server.stderr.read()) from None


@pytest.fixture(scope="session")
def data_dir():
    """The directory with the full mnist.npz and cifar10.npz; the test skips without it."""
    if not (SHARED_DATA / "mnist.npz").exists() or not (SHARED_DATA / "cifar10.npz").exists():
        pytest.skip(f"needs the full data sets: set MIA_TF_DATA_DIR (looked in {SHARED_DATA})")
    return str(SHARED_DATA)


@pytest.fixture(scope="session")
def reference_weights():
    """The paper authors' MNIST LeNet weights (not shipped); the test skips without them."""
    if not REFERENCE_WEIGHTS.exists():
        pytest.skip(f"needs the authors' LeNet weights: set MIA_TF_REFERENCE_WEIGHTS (looked at {REFERENCE_WEIGHTS})")
    return str(REFERENCE_WEIGHTS)


def pytest_collection_finish(session):
    # An empty selection would make pytest exit 5 ("no tests"): fail loudly instead.
    if not session.items:
        raise pytest.UsageError("no tests were selected: check the test paths and the -m filter")


def zoo_settings_key(dataset, layer):
    """(a head with the zoo split's structure, the data set's ImageSpace): what the attacks' presets
    look the settings tuned there up by (`mia_tf.attacks.zoo_splits`)."""
    from mia_tf import models
    from mia_tf.image_space import ImageSpace
    from mia_tf.split import split

    return split(models.ZOO[models.DEFAULT_MODEL[dataset]].build(), layer)[0], ImageSpace.of_dataset(dataset)


def featureless_psnr(dataset, images):
    """The best mean PSNR a guess made without any features scores on `images` (uint8 NHWC victims):
    a black image, a constant grey at the sample's mean pixel, or the sample's mean image (the
    shipped test images 0-999, victims included, so the bar is if anything high)."""
    import numpy as np

    from mia_tf import data, metrics

    sample = data.load_sample(dataset)[0].astype(np.float32) / 255.0
    truth = images.astype(np.float32) / 255.0
    guesses = [np.zeros_like(truth), np.full_like(truth, sample.mean()), np.broadcast_to(sample.mean(axis=0), truth.shape)]
    return max(float(metrics.psnr(truth, guess).mean()) for guess in guesses)


def assert_beats_featureless(psnr, dataset, victims, margin):
    """`psnr` (a mean over `victims`: "paper10", N or "a-b") is at least `margin` dB above every
    featureless guess: a floor that a blank or mean image cannot pass."""
    from mia_tf import data

    floor = featureless_psnr(dataset, data.victims(dataset, victims)[1])
    assert psnr > floor + margin, f"{psnr:.2f} dB is not {margin} dB above the featureless {floor:.2f} dB"
