"""A learned starting point for rMLE: an inverse network trained by the white-box attacker.

The white-box attacker holds the head, so it can make (f1(x), x) pairs from any images it owns
(by default `dist`: same distribution as the victims, disjoint from them and from the training
set) and train a decoder on them without a single query. rMLE then refines decoder(v). Measured
at MNIST relu2 on the authors' LeNet (test images 0-99): decoder alone 21.45 dB, refined 25.67 dB,
against 17-18.7 dB for rMLE from zeros.

Decoders are cached on disk under a key of (model weights hash, layer, attacker data, decoder
settings), so a second attack on the same split reuses the first one's training.
"""

import dataclasses
import hashlib
import json
import os

from mia_tf import data as data_lib
from mia_tf.attacks import inverse_network
from mia_tf.io import atomic_path

CACHE_ENV = "MIA_TF_CACHE"
DEFAULT_PRIOR_DECODER = inverse_network.DecoderSettings(family="best", epochs=5)


def cache_dir(path=None):
    """Where trained attack models are kept: `path`, else $MIA_TF_CACHE, else ~/.cache/mia_tf."""
    return path or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "mia_tf")


def cache_key(model_sha256, layer, attacker_data, settings, limit):
    fields = dict(model=model_sha256, layer=layer, data=attacker_data, limit=limit,
                  decoder=dataclasses.asdict(settings))
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def prior_decoder(head, dataset, layer, model_sha256, data_dir=None, attacker_data="dist",
                  settings=DEFAULT_PRIOR_DECODER, limit=None, cache=None, verbose=0):
    """A decoder for `head` trained on the attacker's own data, from the cache when it is there.

    Returns (decoder, cache path, whether it was loaded from the cache).
    """
    spec = data_lib.spec(dataset)
    feature_shape = tuple(head.output.shape[1:])
    decoder = inverse_network.make_decoder(settings, spec.name, layer, feature_shape, spec.image_shape)
    key = cache_key(model_sha256, layer, attacker_data, settings, limit)
    path = os.path.join(cache_dir(cache), "decoders", f"{spec.name}_{layer}_{key}.weights.h5")
    if os.path.exists(path):
        decoder.load_weights(path)
        return decoder, path, True
    images, _ = data_lib.attacker_set(spec.name, attacker_data, data_dir, limit=limit)
    inverse_network.train_decoder(head, decoder, images, settings, verbose=verbose)
    with atomic_path(path) as tmp:
        decoder.save_weights(tmp)
    return decoder, path, False
