"""mia_tf: model inversion attacks against split (edge-cloud) neural networks.

The public API, for notebooks and scripts (examples/attack_your_own_model.py walks through it):

    import mia_tf
    head, tail = mia_tf.split(model, "block_out")            # any Keras functional model
    space = mia_tf.ImageSpace.from_model(model)               # or ImageSpace(shape, mean, std)
    mine = mia_tf.AttackerData.from_images(my_images, space, my_labels)
    result = mia_tf.whitebox_attack(head, features, "best", attacker_data=mine, space=space)
    result = mia_tf.blackbox_attack(head, features, "best", attacker_data=mine, space=space, structure=head)
    result = mia_tf.queryfree_attack(tail, features, "best", attacker_data=mine, space=space, structure=head)
    print(mia_tf.score(result, victims).table())

Attacks: `whitebox_attack`, `blackbox_attack`, `queryfree_attack`, each with its settings class
(`WhiteboxSettings`, `BlackboxSettings`, `QueryFreeSettings`) or a preset name ("paper", "best";
`whitebox_preset` gives the white-box one for a head to adjust), returning an
`AttackResult`; `score` measures one against the truth; `AttackContext` says where models are
cached, on which devices they train and how progress is reported. `QueryOracle` counts queries.
Data: `ImageSpace`, `AttackerData`, `attacker_set` (the zoo's attacker sets), `load`,
`load_sample`, `victims`, `normalize`, `denormalize`.
Models: `load_model`, `lenet_mnist`, `cifar10_cnn`, `load_he2019_lenet`; `split`, `split_points`.
Errors from bad input: `UsageError` (a ValueError).
"""

from mia_tf.attacks.blackbox import BlackboxSettings, blackbox_attack
from mia_tf.attacks.context import AttackContext
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.attacks.query_free import QueryFreeSettings, queryfree_attack
from mia_tf.attacks.result import AttackResult, score
from mia_tf.attacks.whitebox import WhiteboxSettings, whitebox_attack
from mia_tf.attacks.whitebox import preset as whitebox_preset
from mia_tf.data import attacker_set, denormalize, load, load_sample, normalize, victims
from mia_tf.errors import UsageError
from mia_tf.image_space import AttackerData, ImageSpace
from mia_tf.models import cifar10_cnn, lenet_mnist, load_he2019_lenet, load_model
from mia_tf.split import split, split_points

__all__ = [
    "AttackContext", "AttackResult", "AttackerData", "BlackboxSettings", "ImageSpace", "QueryFreeSettings",
    "QueryOracle", "UsageError", "WhiteboxSettings", "attacker_set", "blackbox_attack", "cifar10_cnn", "denormalize",
    "lenet_mnist", "load", "load_he2019_lenet", "load_model", "load_sample", "normalize", "queryfree_attack", "score",
    "split", "split_points", "victims", "whitebox_attack", "whitebox_preset",
]
__version__ = "0.1.0"
