import numpy as np
import pytest

from mia_tf import data, models
from mia_tf.attacks import inverse_network as inv, query_pairs
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.split import split


@pytest.mark.parametrize("dataset,layer", [("mnist", "conv1"), ("mnist", "relu2"), ("cifar10", "conv11"),
                                           ("cifar10", "relu22"), ("cifar10", "relu32")])
@pytest.mark.parametrize("family", ["paper", "best"])
def test_decoders_map_features_back_to_image_shape(dataset, layer, family):
    model = models.ZOO[models.DEFAULT_MODEL[dataset]].build()
    head, _ = split(model, layer)
    image_shape = data.spec(dataset).image_shape
    decoder = inv.make_decoder(inv.DecoderSettings(family=family), (dataset, layer),
                               tuple(head.output.shape[1:]), image_shape)
    out = decoder(np.zeros((2, *head.output.shape[1:]), np.float32))
    assert tuple(out.shape) == (2, *image_shape)


def test_best_decoder_handles_fc_features_and_the_paper_family_refuses_them():
    decoder = inv.best_decoder((120,), (28, 28, 1))
    assert tuple(decoder.output.shape[1:]) == (28, 28, 1)
    with pytest.raises(UsageError, match="only for the zoo splits.*use the best family"):
        inv.paper_decoder(None)  # a head outside the zoo (`zoo_splits.zoo_split` found none)


def test_short_training_learns_to_invert_conv1(data_dir):
    import keras

    keras.utils.set_random_seed(0)  # the decoder's initial weights decide how fast the loss falls
    model = models.lenet_mnist()
    head, _ = split(model, "conv1")
    images = data.attacker_set("mnist", "dist", data_dir, limit=2048).images
    settings = inv.DecoderSettings(family="paper", epochs=4)
    decoder = inv.make_decoder(settings, ("mnist", "conv1"), (24, 24, 8), (28, 28, 1))
    features = query_pairs.collect_answers(QueryOracle.from_keras(head), images)
    history = query_pairs.fit_pairs(decoder, features, images, settings)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    _, victims, _ = data.victims("mnist", "paper10")
    x = data.normalize(victims, "mnist")
    mse = np.mean((inv.invert(decoder, head(x).numpy()) - x) ** 2)
    assert mse < np.mean(x ** 2) * 0.2  # far better than the mean image


def test_query_pairs_are_kept_on_disk_and_training_resumes_from_its_backup(data_dir, tmp_path):
    model = models.lenet_mnist()
    head, _ = split(model, "conv1")
    images = data.attacker_set("mnist", "dist", data_dir, limit=600).images
    oracle = QueryOracle.from_keras(head, budget=1200)
    path = str(tmp_path / "pairs.npy")
    features = query_pairs.collect_answers(oracle, images, path)
    assert features.dtype == np.float16 and features.shape == (600, 24, 24, 8) and oracle.queries == 600
    np.testing.assert_allclose(features, head(images).numpy(), atol=2e-2, rtol=1e-2)
    query_pairs.collect_answers(oracle, images, path)  # read back, not queried again
    assert oracle.queries == 600

    settings = inv.DecoderSettings(family="paper", epochs=2)
    backup = str(tmp_path / "backup")

    class StopAfterFirstEpoch(__import__("keras").callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # a kill after epoch 1 was saved

    decoder = inv.make_decoder(settings, ("mnist", "conv1"), (24, 24, 8), (28, 28, 1))
    with pytest.raises(KeyboardInterrupt):
        query_pairs.fit_pairs(decoder, features, images, settings, backup_dir=backup,
                              callbacks=[StopAfterFirstEpoch()])
    resumed = inv.make_decoder(settings, ("mnist", "conv1"), (24, 24, 8), (28, 28, 1))
    history = query_pairs.fit_pairs(resumed, features, images, settings, backup_dir=backup)
    assert len(history["loss"]) == 1  # only the second epoch was left to run


def test_mse_ssim_loss_adds_the_ssim_of_the_pixel_images():
    from skimage.metrics import structural_similarity

    space = ImageSpace.of_dataset("cifar10")
    rng = np.random.default_rng(0)
    pixels = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    blurred = (0.5 * pixels + 0.5 * pixels.mean()).astype(np.float32)  # same mean, half the contrast
    normalised = [data.normalize((p * 255).astype(np.uint8), "cifar10") for p in (pixels, blurred)]
    truth, guess = (n.astype(np.float32) for n in normalised)
    pixel_truth, pixel_guess = (data.denormalize(n, "cifar10") for n in (truth, guess))
    expected = [np.mean((t - g) ** 2) + 0.5 * (1 - structural_similarity(
        pt, pg, win_size=7, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=-1)) for t, g, pt, pg in zip(truth, guess, pixel_truth, pixel_guess)]
    loss = np.asarray(inv.mse_ssim_loss(space, 0.5)(truth, guess))
    assert loss == pytest.approx(expected, rel=2e-3)
    assert np.asarray(inv.mse_ssim_loss(space, 0.5)(truth, truth)) == pytest.approx([0.0, 0.0], abs=1e-5)


def test_epoch_examples_caps_each_epoch_to_a_fresh_random_subset():
    inputs = np.arange(100, dtype=np.float32).reshape(100, 1)
    def seen(epoch):
        batches = query_pairs.pair_batches(inputs, inputs, batch_size=8, seed=0, epoch_examples=20, epoch=epoch)
        assert int(batches.cardinality()) == 3  # ceil(20 / 8) batches per epoch
        return np.concatenate([x.numpy()[:, 0] for x, _ in batches])

    epochs = [seen(0), seen(1)]
    assert [len(pairs) for pairs in epochs] == [20, 20]
    assert all(len(set(pairs)) == 20 for pairs in epochs)  # without replacement within an epoch
    assert set(epochs[0]) != set(epochs[1])  # and another subset the next epoch
    np.testing.assert_array_equal(seen(1), epochs[1])  # epoch 1 again, as a resumed run sees it
    whole = query_pairs.pair_batches(inputs, inputs, batch_size=8, seed=0, epoch_examples=1000)
    assert sorted(np.concatenate([x.numpy()[:, 0] for x, _ in whole])) == list(range(100))


def test_the_affinity_probe_tells_a_linear_head_from_a_relu_head(data_dir):
    model = models.lenet_mnist()
    images = data.attacker_set("mnist", "dist", data_dir, limit=8).images
    linear = inv.probe_affine(QueryOracle.from_keras(split(model, "conv1")[0]), images)
    assert linear["affine"] and linear["deviation"] < 1e-5 and linear["queries"] == 12
    assert not inv.probe_affine(QueryOracle.from_keras(split(model, "relu2")[0]), images)["affine"]
    spent = QueryOracle.from_keras(split(model, "conv1")[0], budget=10, batch_size=10)
    assert inv.probe_affine(spent, images)["affine"] is None and spent.queries == 0  # no room: not probed


def _psnr_of_linear_decoder(dataset, head, attacker_images, decoder):
    history = inv.fit_linear_decoder(decoder, head(attacker_images).numpy(), attacker_images)
    _, victims, _ = data.victims(dataset, "paper10")
    x = data.normalize(victims, dataset)
    error = np.mean((data.denormalize(inv.invert(decoder, head(x).numpy()), dataset) - victims / 255.0) ** 2)
    return history, 10 * np.log10(1 / error)


def test_least_squares_dense_decoder_inverts_an_affine_head_from_noise(data_dir):
    head, _ = split(models.lenet_mnist(), "conv1")  # random weights: still an invertible 5x5 convolution
    noise = data.attacker_set("mnist", "noise", data_dir, limit=6000).images
    decoder = inv.linear_decoder((24, 24, 8), (28, 28, 1))  # 4,608 features: one dense layer
    history, psnr = _psnr_of_linear_decoder("mnist", head, noise, decoder)
    assert history["pairs"] == [5900] and history["held_out_mse"][0] < 1e-6
    assert psnr > 50  # digits rebuilt by a decoder that only ever saw noise


def test_least_squares_convolutional_decoder_inverts_a_wide_affine_head(data_dir):
    head, _ = split(models.cifar10_cnn(), "conv11")  # 65,536 features: a convolution over a window
    images = data.attacker_set("cifar10", "dist", data_dir, limit=200).images
    decoder = inv.linear_decoder((32, 32, 64), (32, 32, 3), unknowns=256)
    assert decoder.get_layer("linear_map").kernel.shape == (2, 2, 64, 3)
    history, psnr = _psnr_of_linear_decoder("cifar10", head, images, decoder)
    assert history["pairs"] == [9] and psnr > 40


def test_linear_decoder_shapes():
    assert tuple(inv.linear_decoder((120,), (28, 28, 1)).output.shape[1:]) == (28, 28, 1)
    assert inv.linear_decoder((16, 16, 64), (32, 32, 3)) is None  # strided: left to the non-linear family
    few_pairs = inv.linear_decoder((24, 24, 8), (28, 28, 1), pairs=2000)  # too few for 4,609 weights a pixel
    assert few_pairs.get_layer("linear_map").kernel.shape == (16, 16, 8, 1)
