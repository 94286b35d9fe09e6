import os
import pathlib
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE_WEIGHTS = ROOT.parent / "shared" / "reference" / "he2019_lenet_mnist_weights.npz"


def mia_tf(*args, cwd=None, module="mia_tf"):
    """Run `python -m mia_tf ARGS` (or another module) as a user would, without $MIA_TF_DATA_DIR."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MIA_TF_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


@pytest.fixture(scope="session")
def data_dir():
    if not (SHARED_DATA / "mnist.npz").exists():
        pytest.fail(f"the real data sets are expected at {SHARED_DATA} (see ../shared/data/README.md)")
    return str(SHARED_DATA)


def pytest_collection_finish(session):
    # An empty selection would make pytest exit 5 ("no tests"): fail loudly instead.
    if not session.items:
        raise pytest.UsageError("no tests were selected: check the test paths and the -m filter")
