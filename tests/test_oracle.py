import numpy as np
import pytest

import mia_tf
from mia_tf import export as export_lib
from mia_tf.attacks.oracle import QueryBudgetExceeded, QueryOracle
from mia_tf.errors import UsageError


@pytest.fixture(scope="module")
def head():
    return mia_tf.split(mia_tf.load_model("lenet_mnist")[0], "relu2")[0]


@pytest.fixture(scope="module")
def queries():
    return mia_tf.normalize(mia_tf.load_sample("mnist")[0][:40], "mnist")


def test_keras_oracle_answers_like_the_head_and_counts(head, queries):
    oracle = QueryOracle.from_keras(head, budget=64, batch_size=16)
    np.testing.assert_allclose(oracle(queries[:30]), head.predict(queries[:30], verbose=0), atol=1e-5)
    assert oracle.queries == 30 and oracle.remaining == 34
    with pytest.raises(QueryBudgetExceeded, match="exceed the budget of 64 \\(30 used\\)"):
        oracle(queries[:40])
    assert oracle.queries == 30  # a refused request costs nothing


def test_tflite_oracle_answers_from_the_exported_head(head, queries, tmp_path):
    lenet = mia_tf.load_model("lenet_mnist")[0]
    images, labels = mia_tf.load_sample("mnist")
    path, _ = export_lib.export_head(lenet, "relu2", "float32", str(tmp_path), "mnist", "lenet_mnist", None,
                                     images[:20], images[:100], labels[:100])
    oracle = QueryOracle.from_tflite(path)
    noise = np.random.default_rng(0).standard_normal((5, 28, 28, 1)).astype(np.float32)  # outside pixel range
    np.testing.assert_allclose(oracle(noise), head.predict(noise, verbose=0), atol=1e-4)
    assert oracle.queries == 5 and oracle.remaining is None


def test_bad_budgets_and_mismatched_oracles_are_refused(head, queries):
    with pytest.raises(UsageError, match="smaller than one batch of 256"):
        QueryOracle.from_keras(head, budget=100)
    oracle = QueryOracle.from_keras(head)
    with pytest.raises(UsageError, match="queries must have shape"):
        oracle(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(UsageError, match="come from another split"):
        oracle.check_features(np.zeros((1, 24, 24, 8)))
    liar = QueryOracle(lambda x: np.zeros((len(x), 3)), (28, 28, 1), (8, 8, 16))
    with pytest.raises(UsageError, match="not the \\(8, 8, 16\\) it declared"):
        liar(queries[:2])
