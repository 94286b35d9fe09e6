"""mia_tf: model inversion attacks against split (edge-cloud) neural networks.

The public API, for notebooks and scripts:

    import mia_tf
    images, labels = mia_tf.load("cifar10", "test", data_dir="../shared/data")
    model, dataset, _ = mia_tf.load_model("cifar10_cnn")
    head, tail = mia_tf.split(model, "relu22")
    features = head(mia_tf.normalize(images[:10], "cifar10"))

Data: `load`, `load_sample`, `victims`, `attacker_set`, `normalize`, `denormalize`.
Models: `load_model`, `lenet_mnist`, `cifar10_cnn`, `load_he2019_lenet`.
Splitting: `split`, `split_points`. Errors from bad input: `UsageError` (a ValueError).
Attacks (plain functions over a head or a query oracle, see `mia_tf.attacks`): `whitebox_attack`
with `WhiteboxSettings`, `blackbox_attack` with `BlackboxSettings` and `QueryOracle`.
"""

from mia_tf.attacks.blackbox import BlackboxSettings, blackbox_attack
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.attacks.whitebox import WhiteboxSettings, whitebox_attack
from mia_tf.data import attacker_set, denormalize, load, load_sample, normalize, victims
from mia_tf.errors import UsageError
from mia_tf.models import cifar10_cnn, lenet_mnist, load_he2019_lenet, load_model
from mia_tf.split import split, split_points

__all__ = [
    "BlackboxSettings", "QueryOracle", "UsageError", "WhiteboxSettings", "attacker_set", "blackbox_attack",
    "cifar10_cnn", "denormalize", "lenet_mnist", "load", "load_he2019_lenet", "load_model", "load_sample",
    "normalize", "split", "split_points", "victims", "whitebox_attack",
]
__version__ = "0.1.0"
