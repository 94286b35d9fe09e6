import dataclasses
import json

import numpy as np
import pytest

from mia_tf import data, metrics, models
from mia_tf.attacks import cache, inverse_network, learned_prior, whitebox
from mia_tf.attacks.context import AttackContext
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.split import split

from conftest import assert_beats_featureless, zoo_settings_key


def test_decoder_prior_is_cached_and_beats_a_zero_start(tmp_path, data_dir):
    model = models.load_model("lenet_mnist")[0]
    head, _ = split(model, "relu2")
    settings = inverse_network.DecoderSettings(family="best", epochs=1, width=16)
    args = (head, ImageSpace.of_dataset("mnist"), data.attacker_set("mnist", "dist", data_dir),
            AttackContext(str(tmp_path)), settings, 4096)
    decoder, record = learned_prior.prior_decoder(*args)
    path = record["cache"]
    assert not record["from_cache"] and path.startswith(str(tmp_path)) and record["training"]["seconds"] > 0
    again, record = learned_prior.prior_decoder(*args)
    assert record["from_cache"] and record["cache"] == path
    other_model = cache.entry_path("decoders", {"source": "0" * 64, "dataset": "mnist", "layer": "relu2", "data": "dist",
                                                "queries": 4096, "decoder": dataclasses.asdict(settings)}, str(tmp_path))
    assert other_model != path  # another model's decoder is never reused
    record = path.replace(".weights.h5", ".json")
    tampered = json.load(open(record)) | {"source": "f" * 64}
    json.dump(tampered, open(record, "w"))
    with pytest.raises(UsageError, match="trained for other settings \\(source differ"):
        learned_prior.prior_decoder(*args)

    _, images, _ = data.victims("mnist", "paper10")
    features = head(data.normalize(images, "mnist")).numpy()
    guess = inverse_network.invert(decoder, features)
    np.testing.assert_allclose(inverse_network.invert(again, features), guess, atol=1e-6)

    def psnr(x):
        return metrics.psnr(images / 255.0, data.denormalize(x, "mnist")).mean()

    refine = dataclasses.replace(whitebox.preset("best", *zoo_settings_key("mnist", "relu2")), steps=100)
    from_zero = whitebox.reconstruct(head, features, refine, pixel_range=data.pixel_range("mnist"))
    from_guess = whitebox.reconstruct(head, features, refine, init=guess, pixel_range=data.pixel_range("mnist"))
    assert psnr(from_guess.reconstruction) > psnr(from_zero.reconstruction) + 2
    assert psnr(from_guess.reconstruction) > psnr(guess)  # rMLE refines the decoder's guess
    assert_beats_featureless(psnr(from_guess.reconstruction), "mnist", "paper10", margin=3)  # 16.43 measured (1,024 images: 13.44)
