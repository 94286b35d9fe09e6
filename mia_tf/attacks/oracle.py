"""The black-box attacker's only access to the head: a query oracle x -> f1(x), counted.

An oracle takes inputs in normalised space (the attacker chooses them: its own images, or noise
outside the pixel range) and returns float32 features. It counts every input it answers and
refuses to go past its budget, so an attack's query cost is measured, not assumed. It carries a
`fingerprint` of what answers (weights hash or file hash) and the split `layer`: the attack cache
keys what it learns from the answers by them. Two backings:

- `QueryOracle.from_keras(head)`: a Keras head (the simulation every table uses);
- `QueryOracle.from_tflite(path)`: the exported `.tflite` head run by LiteRT through the device
  code (`edge.head.EdgeHead`), int8 heads included: what a real device would answer.
"""

import numpy as np

from mia_tf.errors import UsageError


class QueryBudgetExceeded(UsageError):
    """An attack asked for more queries than its budget allows."""


class QueryOracle:
    """Answers queries x -> f1(x) in batches, within a budget (None: unlimited)."""

    def __init__(self, answer, input_shape, feature_shape, budget=None, batch_size=256, label="head",
                 fingerprint=None, layer="head"):
        """answer: normalised inputs -> features; fingerprint: what answers, for the cache (None:
        answers are never cached); layer: the split's name, for the cache's file names."""
        if budget is not None and (not isinstance(budget, (int, np.integer)) or budget < batch_size):
            raise UsageError(f"a query budget of {budget!r} is smaller than one batch of {batch_size} queries: "
                             f"give at least {batch_size} (or a smaller batch size)")
        self._answer, self.input_shape, self.feature_shape = answer, tuple(input_shape), tuple(feature_shape)
        self.budget, self.batch_size, self.label = budget, batch_size, label
        self.fingerprint, self.layer = fingerprint, layer
        self.queries = 0

    @classmethod
    def from_keras(cls, head, budget=None, batch_size=256, fingerprint=None, space=None):
        """An oracle answered by a Keras head; `fingerprint` defaults to its weights' SHA-256.
        With a `space` of a model that normalises its own input, queries (normalised) are turned
        into the pixels it takes."""
        import tensorflow as tf

        from mia_tf.models import weights_sha256

        answer = tf.function(lambda x: head(x, training=False), reduce_retracing=True)
        to_input = space.model_input if space is not None else (lambda x: x)
        return cls(lambda x: answer(to_input(x)).numpy(), head.input.shape[1:], head.output.shape[1:], budget,
                   batch_size, label=f"Keras head {head.name}", fingerprint=fingerprint or weights_sha256(head),
                   layer=head.layers[-1].name)

    @classmethod
    def from_tflite(cls, path, budget=None, batch_size=256, manifest=None):
        from edge.head import EdgeHead
        from edge.wire import dequantize

        from mia_tf.io import sha256_file

        device = EdgeHead(path, manifest)
        spec = device.manifest
        return cls(lambda x: dequantize(device.run_normalized(x), *device.output_quantization),
                   spec["input"]["shape"], spec["output"]["shape"], budget, batch_size, label=f".tflite head {path}",
                   fingerprint=sha256_file(path), layer=spec.get("layer", "head"))

    @classmethod
    def for_head(cls, head, model, tflite_path=None, budget=None):
        """The oracle of a split: the Keras `head` of `model` (its fingerprint the whole model's
        weights hash, as the cache has always keyed it), or the exported `.tflite` of that head."""
        from mia_tf.models import weights_sha256

        batch_size = min(256, budget or 256)
        if tflite_path is None:
            return cls.from_keras(head, budget, batch_size, fingerprint=weights_sha256(model))
        return cls.from_tflite(tflite_path, budget, batch_size)

    @property
    def remaining(self):
        return None if self.budget is None else self.budget - self.queries

    def __call__(self, x):
        """Features of the inputs `x` (normalised, (N, *input_shape)); each input costs one query."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape:
            raise UsageError(f"queries must have shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        if self.budget is not None and self.queries + len(x) > self.budget:
            raise QueryBudgetExceeded(f"{len(x)} more queries would exceed the budget of {self.budget} "
                                      f"({self.queries} used): raise the query budget or use fewer attacker images")
        parts = [self._answer(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        self.queries += len(x)
        features = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, *self.feature_shape), np.float32)
        if features.shape[1:] != self.feature_shape:
            raise UsageError(f"the oracle ({self.label}) answered features of shape {features.shape[1:]}, "
                             f"not the {self.feature_shape} it declared")
        return features

    def check_features(self, features, argument="features"):
        """UsageError unless `features` have this oracle's feature shape."""
        if tuple(np.shape(features)[1:]) != self.feature_shape:
            raise UsageError(f"{argument} have shape {tuple(np.shape(features)[1:])} per image, but the oracle "
                             f"({self.label}) answers {self.feature_shape}: they come from another split")
