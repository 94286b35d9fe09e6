"""Black-box shadow-model reconstruction (the paper's Table 8) and the hybrid attack.

The black-box attacker can query the head but not read its weights. Knowing the head's
structure (a published architecture), it trains a shadow head f1' with that structure on the
query pairs (x, f1(x)), MSE as for the inverse network, then runs white-box rMLE through f1'
against the intercepted features v (`whitebox.whitebox_attack` with the shadow as the head).

The hybrid starts that rMLE from the inverse network's guess g(v) instead of zeros: the decoder
gives the coarse picture, rMLE through the shadow sharpens what the shadow models well, and
`blackbox.py` keeps the refinement only where it gains on the attacker's own query pairs (a
shadow that is merely close can also pull the guess off the image). Both share one set of
queries (`query_pairs.attacker_pairs`).
"""

import dataclasses

from mia_tf.attacks import cache as cache_lib
from mia_tf import distributed
from mia_tf.attacks.query_pairs import attacker_pairs, fit_pairs


@dataclasses.dataclass(frozen=True)
class ShadowSettings:
    """How the shadow head is fitted to the query pairs (the authors' training schedule)."""

    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    halve_every: int = 10
    train_dtype: str = None  # bfloat16 or float16: the layers' arithmetic in training (`fit_pairs`); None: float32


def shadow_structure(head):
    """A fresh, untrained model with the head's structure (layers, shapes), new random weights."""
    import keras

    return keras.models.clone_model(head)


def trained_shadow(oracle, head, space, attacker_data, settings=ShadowSettings(), queries=None, context=None):
    """A shadow of `head`'s structure fitted to the oracle's answers, or loaded from the cache.

    Args:
      head: supplies the structure only; its weights are never read.
      attacker_data: `AttackerData`: the shadow learns the answers to its first `queries` images.
    Returns:
      (shadow, cache path, whether it came from the cache).
    """
    from mia_tf.attacks.context import DEFAULT_CONTEXT

    context = context or DEFAULT_CONTEXT
    fields = {"source": oracle.fingerprint, "dataset": space.cache_name, "layer": oracle.layer,
              "data": attacker_data.cache_key, "queries": queries,
              "shadow": cache_lib.settings_fields(settings, ("train_dtype",)),
              "structure": [type(l).__name__ for l in head.layers]}
    with distributed.scope(context.strategy):
        shadow = shadow_structure(head)

    def train(backup_dir):
        images, answers, _ = attacker_pairs(oracle, space, attacker_data, queries, context.cache_dir)
        return fit_pairs(shadow, images, answers, settings, context.strategy, backup_dir, verbose=context.verbose)

    path, cached = cache_lib.load_or_train("shadows", fields, shadow, train, context.cache_dir)
    return shadow, path, cached
