"""Query-checked levels on the shipped LeNet's relu2 head and real MNIST test digits."""

import numpy as np
import pytest

from mia_tf import data as data_lib, metrics, models
from mia_tf.attacks import levels_check
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.split import split

MNIST = ImageSpace.of_dataset("mnist")


@pytest.fixture(scope="module")
def relu2():
    model, _, _ = models.load_model("lenet_mnist")
    head, _ = split(model, "relu2")
    _, images, _ = data_lib.victims("mnist", "paper10")
    return head, images.astype(np.float32) / 255


def test_the_oracle_tells_the_right_levels_of_a_washed_out_image(relu2):
    head, truth = relu2
    washed_out = 0.5 + 0.5 * truth  # black drawn as mid-grey, as a noise-trained decoder does
    oracle = QueryOracle.from_keras(head)
    features = head(data_lib.normalize_pixels(truth, "mnist")).numpy()
    fixed, record = levels_check.check_levels(oracle, features, data_lib.normalize_pixels(washed_out, "mnist"),
                                              MNIST)
    assert oracle.queries == record["queries"] == levels_check.queries_needed(len(truth)) == 30 * len(truth)
    assert (record["black"], record["white"]) == (0.5, 1.0)
    assert levels_check.queries_needed(1000) == 30 * levels_check.SAMPLE_VICTIMS  # one map, chosen on a sample
    before = metrics.psnr(truth, washed_out).mean()
    after = metrics.psnr(truth, data_lib.denormalize(fixed, "mnist")).mean()
    assert before < 8 and after > 60  # the map is exactly undone


def test_a_right_image_keeps_its_levels(relu2):
    head, truth = relu2
    features = head(data_lib.normalize_pixels(truth, "mnist")).numpy()
    _, record = levels_check.check_levels(QueryOracle.from_keras(head), features,
                                          data_lib.normalize_pixels(truth, "mnist"), MNIST)
    assert (record["black"], record["white"]) == (0.0, 1.0)


def test_a_budget_without_room_is_refused_before_any_query(relu2):
    head, truth = relu2
    oracle = QueryOracle.from_keras(head, budget=256)
    features = head(data_lib.normalize_pixels(truth, "mnist")).numpy()
    with pytest.raises(UsageError, match="raise the query budget"):
        levels_check.check_levels(oracle, features, data_lib.normalize_pixels(truth, "mnist"), MNIST)
    assert oracle.queries == 0
