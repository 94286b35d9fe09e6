import keras
import numpy as np
import pytest

from mia_tf import data, models
from mia_tf.errors import UsageError
from mia_tf.split import split, split_points


@pytest.mark.parametrize("name", ["lenet_mnist", "cifar10_cnn"])
def test_tail_of_head_equals_model_at_every_split_point(name):
    model = models.ZOO[name].build()
    dataset = models.ZOO[name].dataset
    x = data.normalize(data.load_sample(dataset)[0][:16], dataset)
    expected = model(x)
    points = split_points(model)
    assert [p.layer for p in points] == [l.name for l in model.layers[1:-1]]
    for point in points:
        head, tail = split(model, point.layer)
        features = head(x)
        assert tuple(features.shape[1:]) == point.feature_shape
        np.testing.assert_allclose(tail(features), expected, atol=1e-5)


def test_split_points_report_sizes_and_flops():
    points = {p.layer: p for p in split_points(models.lenet_mnist())}
    assert points["relu2"].bytes_per_image == 8 * 8 * 16 * 4
    conv1 = 2 * 24 * 24 * 8 * 5 * 5 * 1
    conv2 = 2 * 8 * 8 * 16 * 5 * 5 * 8
    assert points["conv1"].head_flops == conv1
    assert points["pool2"].head_flops == conv1 + conv2
    assert points["fc1"].head_flops == conv1 + conv2 + 2 * 256 * 120


def test_unknown_layer_lists_valid_points():
    with pytest.raises(UsageError, match="no layer 'relu9'.*Valid split points: conv1, relu1, pool1"):
        split(models.lenet_mnist(), "relu9")


def _residual_model():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="inner_conv")(x)
    y = keras.layers.ReLU(name="inner_relu")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))


def test_inside_a_residual_block_is_not_a_split_point():
    model = _residual_model()
    assert [p.layer for p in split_points(model)] == ["stem", "add", "gap"]
    with pytest.raises(UsageError, match="cannot be a split point.*Valid split points: stem, add, gap"):
        split(model, "inner_relu")


def test_real_model_outside_the_zoo():
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None, classes=10, alpha=0.35)
    names = [p.layer for p in split_points(model)]
    assert "block_2_add" in names and "block_2_project" not in names  # inside a residual block
    head, tail = split(model, "block_3_expand_relu")
    x = np.random.default_rng(0).standard_normal((2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(tail(head(x)), model(x), atol=1e-5)


def test_sequential_model():
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, name="c"),
                              keras.layers.ReLU(name="r"), keras.layers.Flatten(name="f"),
                              keras.layers.Dense(2, name="d")])
    head, tail = split(model, "r")
    x = np.ones((1, 6, 6, 2), np.float32)
    np.testing.assert_allclose(tail(head(x)), model(x), atol=1e-6)
    with pytest.raises(UsageError, match="never built"):
        split(keras.Sequential([keras.layers.Dense(2, name="d")]), "d")


def test_subclassed_model_has_no_split_points():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(UsageError, match="no layer graph to cut.*No split points"):
        split(model, "dense")

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="inner_dense"),
                              keras.layers.ReLU(name="inner_relu"), keras.layers.Dense(3, name="inner_out")],
                             name="block")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="out")(inner(inputs)))
    assert [p.layer for p in split_points(outer)] == ["block/inner_dense", "block/inner_relu", "block"]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for name in ("inner_relu", "block/inner_dense", "block"):
        head, tail = split(outer, name)
        np.testing.assert_allclose(tail(head(x)), outer(x), atol=1e-6)
    assert split_points(outer)[1].head_flops == 2 * 4 * 4


def test_transfer_learning_model_with_a_nested_backbone():
    backbone = keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None, include_top=False, alpha=0.35)
    model = keras.Sequential([keras.Input((64, 64, 3)), backbone,
                              keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(5, name="logits")])
    names = [p.layer for p in split_points(model)]
    assert f"{backbone.name}/block_2_add" in names and f"{backbone.name}/block_2_project" not in names
    head, tail = split(model, "block_2_add")
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(tail(head(x)), model(x), atol=1e-5)
    with pytest.raises(UsageError, match="cannot be a split point"):
        split(model, "block_2_project")
