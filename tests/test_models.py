import numpy as np
import pytest

from mia_tf import data, models
from mia_tf.errors import UsageError
from mia_tf.train import accuracy


PAPER_LAYERS = {
    "lenet_mnist": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                    "fc1", "fc1act", "fc2", "fc2act", "fc3"],
    "cifar10_cnn": ["conv11", "relu11", "conv12", "relu12", "pool1", "conv21", "relu21", "conv22",
                    "relu22", "pool2", "conv31", "relu31", "conv32", "relu32", "pool3", "flatten",
                    "fc1", "fc1act", "fc2"],
}


@pytest.mark.parametrize("name", ["lenet_mnist", "cifar10_cnn"])
def test_layer_names_and_shapes_follow_the_paper(name):
    model = models.ZOO[name].build()
    assert [l.name for l in model.layers[1:]] == PAPER_LAYERS[name]
    shapes = {l.name: tuple(l.output.shape[1:]) for l in model.layers[1:]}
    if name == "lenet_mnist":
        assert shapes["conv1"] == (24, 24, 8) and shapes["relu2"] == (8, 8, 16)
        assert shapes["flatten"] == (256,)
    else:
        assert shapes["conv11"] == (32, 32, 64) and shapes["relu22"] == (16, 16, 128)
        assert shapes["relu32"] == (8, 8, 128) and shapes["flatten"] == (2048,)


def test_authors_lenet_reproduces_their_accuracy(data_dir, reference_weights):
    model = models.load_he2019_lenet(reference_weights)
    x, y = data.load("mnist", "test", data_dir)
    assert accuracy(model, x, y, "mnist") == pytest.approx(0.9901, abs=1e-4)


def test_shipped_lenet_beats_the_authors_accuracy(data_dir):
    model, dataset, _ = models.load_model("lenet_mnist")
    x, y = data.load(dataset, "test", data_dir)
    assert accuracy(model, x, y, dataset) >= 0.991  # the authors' 99.14 %; 99.50 % measured


@pytest.mark.slow
def test_shipped_cifar_cnn_accuracy_on_lossless_and_jpeg_test_images(data_dir):
    """The authors report 87.19 % on the original CIFAR-10 test set. Here the whole test set exists
    only as a JPEG-derived copy (../shared/data/README.md), which costs this model about 4 points on
    the same images; the lossless originals exist for test images 0-999 (the shipped sample)."""
    model, dataset, _ = models.load_model("cifar10_cnn")
    lossless_x, lossless_y = data.load_sample(dataset)
    jpeg_x, jpeg_y = data.load(dataset, "test", data_dir)
    lossless = accuracy(model, lossless_x, lossless_y, dataset)
    assert lossless >= 0.872  # 88.00 % measured
    # The 87.2 % is not reached on the JPEG-derived copy (84.30 %): this guards the level reached.
    assert accuracy(model, jpeg_x, jpeg_y, dataset) >= 0.84
    assert lossless > accuracy(model, jpeg_x[:1000], jpeg_y[:1000], dataset)


def _authors_layout_with_a_short_conv2():
    """Arrays laid out as the authors' npz (PyTorch shapes), with conv2 cut to 8 filters."""
    arrays = {}
    for layer in models.lenet_mnist().layers:
        if layer.name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
            kernel, bias = layer.get_weights()
            kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T  # HWIO -> OIHW, (in, out) -> (out, in)
            arrays[f"{layer.name}.weight"], arrays[f"{layer.name}.bias"] = kernel, bias
    arrays["conv2.weight"] = arrays["conv2.weight"][:8]
    return arrays


def test_bad_model_files(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(UsageError, match="not a loadable Keras model"):
        models.load_model(str(junk))
    with pytest.raises(UsageError, match="not a .keras model file"):
        models.load_model(str(data.sample_path("mnist")))
    with pytest.raises(UsageError, match="neither a zoo name"):
        models.load_model("resnet9000")
    with pytest.raises(UsageError, match="wrong shape"):
        bad = tmp_path / "bad.npz"
        np.savez(bad, **_authors_layout_with_a_short_conv2())
        models.load_he2019_lenet(str(bad))


def test_keras_file_round_trip(tmp_path):
    model = models.lenet_mnist()
    path = tmp_path / "lenet.keras"
    model.save(path)
    loaded, dataset, label = models.load_model(str(path))
    assert label == "lenet.keras" and dataset is None
    x = np.random.default_rng(0).standard_normal((2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
