"""Which zoo split a head is, told from its structure: the key of the settings tuned there.

The paper's settings (its lambda_TV per split, its decoders, its other shadow structures) and the
`best` values tuned on the zoo models belong to those models, not to a layer's name: a user model
with a layer called relu22 is not the paper's CNN. `zoo_split(head, space)` names the zoo split
(data set, layer) whose head has the same layers, configurations and shapes as `head` (weights
aside: the zoo LeNet and the authors' share them) and whose image space is `space`; any other head
gets settings derived from itself (see each attack's `preset`).
"""

import hashlib
import json

# The zoo splits the paper and this project tuned settings at, by the structure signature of their
# heads. Written out, not computed: building the zoo models to compute them would draw weights from
# Keras' global random state and so change the next model a caller initialises (a shadow's start).
# tests/test_api.py rebuilds the zoo heads and checks these.
TUNED_SPLITS = {
    ("mnist", "conv1"): "244aa1ef2316477cd5604d30b54a082bdcc28bdb99bf6633fdaf388c81ef29af",
    ("mnist", "relu2"): "0bb05904920dca4dbaccf6b89c00ef464f59d355166163105465efc16122c9bf",
    ("cifar10", "conv11"): "5ffe3bc7f0e4cf946578d6d9cdce5b58330b4f055813230c7fc0cc14cf3d5586",
    ("cifar10", "relu22"): "d9aaeb91951836e5c32a4fee4d70c7a3570e14f0fbfcb8b8f2cf6249c2f1fec0",
    ("cifar10", "relu32"): "7e6c832468081fbd2329bfd247c47c8a69dcdc0d09e30285e639a9bbb510c1d8",
}
_BY_SIGNATURE = {(signature, dataset): layer for (dataset, layer), signature in TUNED_SPLITS.items()}
_UNSTRUCTURAL = ("name", "trainable", "dtype", "build_config", "batch_shape", "sparse", "ragged", "optional")


def structure_signature(model):
    """SHA-256 of a model's layers in order: class, configuration (names and dtypes aside), output shape."""
    layers = []
    for layer in model.layers:
        config = {k: v for k, v in layer.get_config().items() if k not in _UNSTRUCTURAL}
        layers.append([type(layer).__name__, config, list(layer.output.shape[1:])])
    layers.append(list(model.input.shape[1:]))
    return hashlib.sha256(json.dumps(layers, sort_keys=True, default=str).encode()).hexdigest()


def zoo_split(head, space):
    """(data set, layer) of the zoo split `head` has the structure of, in `space`, or None."""
    if space is None or space.name is None or space.pixel_scale is not None:
        return None
    layer = _BY_SIGNATURE.get((structure_signature(head), space.name))
    return None if layer is None else (space.name, layer)
