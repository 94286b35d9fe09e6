"""A learned starting point for rMLE: an inverse network trained by the white-box attacker.

The white-box attacker holds the head, so it can make (f1(x), x) pairs from any images it owns
(by default `dist`: same distribution as the victims, disjoint from them and from the training
set) and train a decoder on them without a single query to the victim's device. rMLE then
refines decoder(v). Measured at MNIST relu2 on the authors' LeNet (test images 0-99): decoder
alone 21.45 dB, refined 25.67 dB, against 17-18.7 dB for rMLE from zeros.

The decoder is the black-box inverse network of `inverse_network.py` with the head itself as the
oracle, so it is cached the same way (`cache.py`) and a second attack on the split reuses it.
"""

import dataclasses

from mia_tf.attacks import inverse_network
from mia_tf.attacks.cache import model_record
from mia_tf.attacks.oracle import QueryOracle

DEFAULT_PRIOR_DECODER = inverse_network.DecoderSettings(family="best", epochs=5)


def prior_decoder(head, space, attacker_data, context=None, settings=DEFAULT_PRIOR_DECODER, limit=None, layer=None):
    """A decoder for `head` trained on the attacker's own images (`AttackerData`, the first `limit`
    of them), from the cache when it is there (keyed by the head's weights and `layer`, the
    split's name: default the head's last layer).

    Returns (decoder, the model's record: cache path, whether it was loaded, its training).
    """
    oracle = QueryOracle.from_keras(head)
    oracle.layer = layer or oracle.layer
    decoder, path, cached = inverse_network.trained_decoder(oracle, space, attacker_data, settings, queries=limit,
                                                            context=context)
    return decoder, {**model_record(path, cached), "decoder": dataclasses.asdict(settings),
                     "attacker_data": attacker_data.cache_key}
