import numpy as np
import pytest

from mia_tf import data
from mia_tf.errors import UsageError


def test_normalise_round_trip_and_constants():
    images = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    x = data.normalize(images, "cifar10")
    expected = (np.array([0, 128, 255]) / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x[0, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(data.denormalize(x, "cifar10") * 255, images, atol=1e-3)
    # MNIST: mean 0.5, std 0.5 maps [0, 255] onto [-1, 1]
    np.testing.assert_allclose(data.normalize(np.array([[[0], [255]]], np.uint8), "mnist").ravel(), [-1, 1])


def test_load_from_data_dir_real_shapes(data_dir):
    x, y = data.load("mnist", "test", data_dir)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8
    assert y[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]  # the official MNIST test order
    x, y = data.load("cifar10", "train", data_dir)
    assert x.shape == (50000, 32, 32, 3) and set(np.unique(y)) == set(range(10))


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, data_dir)
    assert data.load("mnist", "test")[0].shape[0] == 10000


def test_shipped_sample_matches_the_real_test_set(data_dir):
    sample_x, sample_y = data.load_sample("mnist")
    x, y = data.load("mnist", "test", data_dir)
    assert (sample_x == x[:1000]).all() and (sample_y == y[:1000]).all()
    # CIFAR-10's sample is the lossless original; the full set is JPEG-derived (about 5.8/255 off)
    cifar_x, _ = data.load_sample("cifar10")
    exact = np.load(f"{data_dir}/cifar10_exact_subset.npz")["x_test"]
    assert (cifar_x == exact).all()


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_paper10_victims_are_the_first_test_image_of_each_class(name):
    indices, images, labels = data.victims(name, "paper10")
    assert labels.tolist() == list(range(10))
    _, all_labels = data.load_sample(name)
    for cls, index in enumerate(indices):
        assert index == np.flatnonzero(all_labels == cls)[0]


def test_victim_selections():
    assert data.parse_victims(5, "mnist").tolist() == [0, 1, 2, 3, 4]
    assert data.parse_victims("10-12", "cifar10").tolist() == [10, 11, 12]
    assert len(data.parse_victims("1000", "mnist")) == 1000
    for bad in ("1001", "0", "5-2", "abc", "0-1000"):
        with pytest.raises(UsageError, match="victims"):
            data.parse_victims(bad, "mnist")


def test_attacker_sets(data_dir):
    same_set = data.attacker_set("mnist", "same", data_dir, limit=100)
    same = same_set.images
    assert same_set.cache_key == "same" and len(same_set.labels) == 100 and not same_set.synthetic
    train_x, _ = data.load("mnist", "train", data_dir)
    np.testing.assert_allclose(same, data.normalize(train_x[:100], "mnist"))
    dist = data.attacker_set("mnist", "dist", data_dir).images
    test_x, _ = data.load("mnist", "test", data_dir)
    assert len(dist) == 9000  # test images 1000-9999: no training image, no victim
    np.testing.assert_allclose(dist[0], data.normalize(test_x[1000:1001], "mnist")[0])
    noise_set = data.attacker_set("cifar10", "noise", data_dir, limit=2000)
    noise, labels = noise_set.images, noise_set.labels
    assert labels is None and noise.shape == (2000, 32, 32, 3)
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1) < 0.01
    with pytest.raises(UsageError, match="same, dist, noise"):
        data.attacker_set("mnist", "public", data_dir)


def test_unknown_dataset_and_split():
    with pytest.raises(UsageError, match="cifar10, mnist"):
        data.load("svhn", "test")
    with pytest.raises(UsageError, match="train, test"):
        data.load("mnist", "validation")


def test_bad_npz_files(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(UsageError, match="cannot read .* as an npz"):
        data.load("mnist", "test", str(tmp_path))
    np.savez(tmp_path / "mnist.npz", x_test=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(UsageError, match="lacks y_test"):
        data.load("mnist", "test", str(tmp_path))
    np.savez(tmp_path / "mnist.npz", x_test=np.zeros((3, 32, 32), np.uint8), y_test=np.zeros(3))
    with pytest.raises(UsageError, match=r"shape \(N, 28, 28, 1\)"):
        data.load("mnist", "test", str(tmp_path))
    np.savez(tmp_path / "mnist.npz", x_test=np.zeros((3, 28, 28), object), y_test=np.zeros(3))
    with pytest.raises(UsageError):
        data.load("mnist", "test", str(tmp_path))  # object arrays need pickles: refused
    with pytest.raises(UsageError, match="does not exist"):
        data.load("mnist", "test", str(tmp_path / "nowhere"))


def test_tensorflow_datasets_path_reads_a_locally_built_dataset(data_dir, tmp_path):
    # Build a real TFDS "mnist" dataset from the npz (no network), then load it the normal way.
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.dataset_builders import adhoc_builder

    x, y = data.load("mnist", "test", data_dir)
    builder = tfds.builder("mnist")
    rows = tf.data.Dataset.from_tensor_slices({"image": x[:64], "label": y[:64]})
    adhoc_builder.store_as_tfds_dataset(
        name="mnist", version=str(builder.version), features=builder.info.features,
        split_datasets={"test": rows}, data_dir=str(tmp_path), disable_shuffling=True)
    loaded_x, loaded_y = data.load("mnist", "test", tfds_data_dir=str(tmp_path))
    assert (loaded_x == x[:64]).all() and (loaded_y == y[:64]).all()


def test_offline_without_data_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "TFDS_DOWNLOAD_HOST", "no-such-host.invalid")
    with pytest.raises(UsageError, match=r"--data-dir or \$MIA_TF_DATA_DIR.*network"):
        data.load("cifar10", "test", tfds_data_dir=str(tmp_path))
