"""Query-free attack (He et al. 2019, Algorithm 3): a shadow head trained through the frozen tail.

The attacker runs the cloud half (the tail f2) but may not query the device. It trains a shadow
head f1' so that f2(f1'(x)) classifies its own labelled images (softmax cross-entropy, as the
authors' code; the tail stays frozen), then runs rMLE through f1' against the real features v
(the authors' settings: 500 steps, lr 0.1, lambda_TV 2, zero start).

Four settings: the shadow trains on the target's training set or a disjoint set of the same
distribution (`data` same | dist) and has the head's structure or a different one (`net`
same | diff). The different structures of the zoo splits are the paper's (PAPER.md); for any
other head `different_structure` derives one from the head itself.
"""

import dataclasses

import numpy as np

from mia_tf import data as data_lib
from mia_tf.attacks import cache as cache_lib, whitebox
from mia_tf.attacks.query_pairs import fit_pairs, strategy_scope
from mia_tf.errors import UsageError

NETS = ("same", "diff")
DATA = ("same", "dist")
# rMLE through the shadow, as the authors' query-free code.
RMLE = whitebox.WhiteboxSettings(steps=500, learning_rate=0.1, tv_weight=2.0)


@dataclasses.dataclass(frozen=True)
class QueryFreeSettings:
    data: str = "dist"
    net: str = "same"
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    halve_every: int = 10
    limit: int = None  # train on the first N attacker images only (None: all)

    def validate(self):
        if self.data not in DATA:
            raise UsageError(f"the query-free attack needs labelled images: --data must be one of "
                             f"{', '.join(DATA)}, got {self.data!r}")
        if self.net not in NETS:
            raise UsageError(f"unknown --net {self.net!r}: use same (the head's structure) or diff")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be a positive whole number, got {self.epochs!r}")
        return self


def _conv(filters, kernel, padding, name=None):
    from keras import layers

    return layers.Conv2D(filters, kernel, padding=padding, name=name)


def _paper_different_head(dataset, layer, input_shape):
    """The paper's different shadow structure for a zoo split, or None (PAPER.md, Algorithm 3)."""
    import keras
    from keras import layers

    relu, pool = layers.ReLU, layers.MaxPooling2D
    stacks = {
        ("mnist", "conv1"): [_conv(8, 3, "valid"), relu(), _conv(8, 3, "valid")],
        ("mnist", "relu2"): [_conv(8, 3, "valid"), relu(), _conv(16, 3, "valid"), relu(), pool(2),
                             _conv(16, 3, "valid"), relu(), _conv(16, 3, "valid"), relu()],
        ("cifar10", "conv11"): [_conv(16, 3, "same"), relu(), _conv(64, 3, "same")],
        ("cifar10", "relu22"): [_conv(64, 5, "same"), relu(), pool(2), _conv(128, 5, "same"), relu()],
        ("cifar10", "relu32"): [_conv(64, 5, "same"), relu(), pool(2), _conv(128, 5, "same"), relu(), pool(2),
                                _conv(128, 5, "same"), relu()],
    }
    if (dataset, layer) not in stacks:
        return None
    x = inputs = keras.Input(input_shape)
    for step in stacks[(dataset, layer)]:
        x = step(x)
    return keras.Model(inputs, x, name=f"shadow_diff_{layer}")


def different_structure(head):
    """A head of another structure with the same input and output shapes, derived from `head`.

    Each k x k convolution (k >= 5, odd) becomes (k - 1) / 2 stacked 3 x 3 convolutions with ReLUs
    between (same receptive field and output size); each 3 x 3 one becomes a 3 x 3 convolution to
    half the filters, a ReLU and a 1 x 1 convolution; every other layer is copied with fresh
    weights. The head must be a chain of layers (one input and one output each).
    """
    import keras
    from keras import layers

    x = inputs = keras.Input(head.input.shape[1:])
    for layer in head.layers[1:]:
        inbound = layer._inbound_nodes
        if len(inbound) != 1 or len(inbound[0].input_tensors) != 1:
            raise UsageError(f"--net diff needs a head that is a chain of layers; {layer.name} is not: use --net same")
        if isinstance(layer, layers.Conv2D) and type(layer) is layers.Conv2D and layer.kernel_size[0] == layer.kernel_size[1]:
            k, filters, padding = layer.kernel_size[0], layer.filters, layer.padding
            activation = layer.get_config()["activation"]
            if k >= 5 and k % 2 == 1 and layer.strides == (1, 1):
                for i in range((k - 1) // 2):
                    last = i == (k - 1) // 2 - 1
                    x = layers.Conv2D(filters, 3, padding=padding, activation=activation if last else "relu")(x)
                continue
            if k == 3 and layer.strides == (1, 1):
                x = layers.Conv2D(max(8, filters // 2), 3, padding=padding, activation="relu")(x)
                x = layers.Conv2D(filters, 1, activation=activation)(x)
                continue
        x = layer.__class__.from_config(layer.get_config() | {"name": f"{layer.name}_copy"})(x)
    return keras.Model(inputs, x, name=f"{head.name}_shadow_diff")


def shadow_head(head, net, dataset=None, layer=None):
    """A fresh shadow for `head`: its own structure (`same`) or a different one (`diff`)."""
    import keras

    if net == "same":
        return keras.models.clone_model(head)
    shadow = _paper_different_head(dataset, layer, head.input.shape[1:]) or different_structure(head)
    if tuple(shadow.output.shape[1:]) != tuple(head.output.shape[1:]):
        raise UsageError(f"the different shadow gives features {tuple(shadow.output.shape[1:])}, but the tail "
                         f"takes {tuple(head.output.shape[1:])}: use --net same")
    return shadow


def trained_shadow(head, tail, tail_sha256, dataset, layer, settings=QueryFreeSettings(), data_dir=None, cache=None,
                   strategy=None, verbose=0):
    """A shadow head trained so that the frozen `tail` classifies the attacker's labelled images.

    `head` supplies only the structure (and the input shape); its weights are never read.
    Returns (shadow, cache path, whether it came from the cache).
    """
    import keras

    settings.validate()
    with strategy_scope(strategy):
        shadow = shadow_head(head, settings.net, dataset, layer)
        if tuple(tail.input.shape[1:]) != tuple(shadow.output.shape[1:]):
            raise UsageError(f"the tail takes {tuple(tail.input.shape[1:])}, the shadow gives "
                             f"{tuple(shadow.output.shape[1:])}: the tail and the head are from different splits")
        tail.trainable = False
        x = keras.Input(head.input.shape[1:])
        through_tail = keras.Model(x, tail(shadow(x), training=False))
    fields = {"tail": tail_sha256, "dataset": dataset, "layer": layer, **dataclasses.asdict(settings)}

    def train(backup_dir):
        images, labels = data_lib.attacker_set(dataset, settings.data, data_dir, limit=settings.limit)
        classes = int(tail.output.shape[-1])
        if labels.min() < 0 or labels.max() >= classes:
            raise UsageError(f"attacker labels span {labels.min()}..{labels.max()}, but the tail has {classes} classes")
        fit_pairs(through_tail, images, labels.astype(np.float32), settings, strategy, backup_dir, verbose=verbose,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    path, cached = cache_lib.load_or_train("queryfree", fields, shadow, train, cache)
    return shadow, path, cached


def query_free_attack(shadow, features, dataset, rmle=RMLE):
    """rMLE through the trained shadow against the real intercepted features (normalised result)."""
    return whitebox.whitebox_attack(shadow, features, rmle, pixel_range=data_lib.pixel_range(dataset))
