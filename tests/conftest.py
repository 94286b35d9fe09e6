import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REFERENCE_WEIGHTS = ROOT.parent / "shared" / "reference" / "he2019_lenet_mnist_weights.npz"


@pytest.fixture(scope="session")
def data_dir():
    if not (SHARED_DATA / "mnist.npz").exists():
        pytest.fail(f"the real data sets are expected at {SHARED_DATA} (see ../shared/data/README.md)")
    return str(SHARED_DATA)


def pytest_collection_finish(session):
    # An empty selection would make pytest exit 5 ("no tests"): fail loudly instead.
    if not session.items:
        raise pytest.UsageError("no tests were selected: check the test paths and the -m filter")
