"""Query-free attack (He et al. 2019, Algorithm 3): a shadow head trained through the frozen tail.

The attacker runs the cloud half (the tail f2) but may not query the device. It trains a shadow
head f1' so that f2(f1'(x)) classifies its own labelled images (softmax cross-entropy, as the
authors' code; the tail stays frozen), then runs rMLE through f1' against the real features v
(the authors' settings: 500 steps, lr 0.1, lambda_TV 2, zero start).

Four settings: the shadow trains on the target's training set or a disjoint set of the same
distribution (`data` same | dist) and has the head's structure or a different one (`net`
same | diff). The different structures of the zoo splits are the paper's (PAPER.md); for any
other head `different_structure` derives one from the head itself.

Presets: `paper` is the above. `best` uses what the curious server holds besides the tail: the
intercepted features themselves (unlabelled, but many). The tail tolerates many re-mappings of
its input, so a shadow trained on labels alone lands anywhere among them; `best` adds a penalty
that pulls the per-channel mean and standard deviation of the shadow's features towards those of
the intercepted ones (`feature_stats_weight`), then inverts exactly through an affine shadow (a
lone convolution) and with a decoder trained through the shadow on the attacker's images
otherwise. rMLE refinement of the decoder's guess through the shadow helps in some cells and
hurts in others, and a mismatched shadow leaves a grey veil that a levels map (black and white
points) lifts, so `best` decides both per cell by cross-shadow validation on the attacker's own
images (`cross_shadow_validation`). It trains three shadows and keeps, per victim, the
reconstruction whose shadow best explains the intercepted features. `experiments/queryfree_ablation/`
measures each part, and what did not help; figures in experiments/queryfree_ablation/results/.
"""

import dataclasses
import itertools
import time
from typing import TYPE_CHECKING

import numpy as np
import scipy.stats

from mia_tf import distributed, metrics, precision
from mia_tf.attacks import cache as cache_lib
from mia_tf.attacks import inverse_network, levels_check, whitebox
from mia_tf.attacks.context import DEFAULT_CONTEXT
from mia_tf.attacks.query_pairs import fit_pairs
from mia_tf.attacks.result import AttackResult, cached_training_seconds, timed_seconds
from mia_tf.attacks.zoo_splits import zoo_split
from mia_tf.errors import UsageError
from mia_tf.image_space import check_space_and_data

if TYPE_CHECKING:  # names in the public API's annotations
    import keras

    from mia_tf.attacks.context import AttackContext
    from mia_tf.image_space import AttackerData, ImageSpace

NETS = ("same", "diff")
PRESETS = ("paper", "best")
# rMLE through the shadow, as the authors' query-free code.
RMLE = whitebox.WhiteboxSettings(steps=500, learning_rate=0.1, tv_weight=2.0)
# `best`: weight of the feature-statistics penalty against the cross-entropy (the penalty is
# relative to the intercepted features' mean square, so one weight serves every split).
BEST_FEATURE_STATS_WEIGHT = 1.0
# `best` with an affine shadow (a lone convolution): least squares through it, 1000 CG iterations.
EXACT = whitebox.WhiteboxSettings(steps=1000, exact_linear=True)
# `best` trains this many shadows (seeds) and keeps, per victim, the reconstruction its shadow
# explains best (`select_by_residual`): shadows differ a lot (MNIST conv1, three seeds: 27.2,
# 22.6 and 9.2 dB) and the attacker can tell which is which without ground truth.
BEST_SHADOWS = 3
# `best` through a non-affine shadow: rMLE refinement from the decoder's guess, used only when
# cross-shadow validation on this many attacker images finds it helps (`cross_shadow_validation`).
# MNIST dist, victims 0-199, three shadows: at conv1 diff-net it gains 1.1 / 3.1 / 2.2 dB (cross-
# shadow validation: +0.6 to +2.4 per pair), at relu2 same-net it costs 2.9 / 2.5 / 3.2 dB
# (validation: -1.2 to -2.9), so it is taken at the first and not the second. 13-17 s here.
REFINE = whitebox.WhiteboxSettings(steps=300, learning_rate=0.01, box=True)
VALIDATION_IMAGES = 100
# `best` on a larger attacker set (the same set: 50,000 or 60,000 images): epochs of this many, a fresh
# random subset each, the dist set's size (9,000), so a same-set shadow costs what a dist one costs, as for
# the black-box `best` decoder: 50 epochs are 450,000 images, 7.5 to 9 passes. A set of at most this many
# (dist) is passed over whole each epoch.
BEST_EPOCH_EXAMPLES = inverse_network.PRESETS["best"].epoch_examples


@dataclasses.dataclass(frozen=True)
class QueryFreeSettings:
    """The query-free attack: a preset and the shadows it trains."""

    preset: str = "paper"
    net: str = "same"  # the shadows' structure: the head's (same) or another (diff, `shadow_head`)
    shadows: int = None  # shadows trained (seeds seed, seed + 1, ...); None: 1 for paper, BEST_SHADOWS for best
    epochs: int = 50
    limit: int = None  # train on the first N attacker images only (None: all)
    seed: int = 0
    train_dtype: str = None  # bfloat16 or float16: the layers' arithmetic in training (`fit_pairs`); None: float32

    def __post_init__(self):
        """Choices and ranges are checked when settings are built, before any training."""
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}: use one of {', '.join(PRESETS)}")
        if self.net not in NETS:
            raise UsageError(f"unknown net {self.net!r}: use same (the head's structure) or diff")
        for name in ("epochs", "shadows", "limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive whole number, got {value!r}")
        precision.check_compute_dtype(self.train_dtype, "train_dtype")

    @property
    def shadow_count(self):
        return self.shadows or (BEST_SHADOWS if self.preset == "best" else 1)


@dataclasses.dataclass(frozen=True)
class TailShadowSettings:
    """How one shadow head is trained through the frozen tail (the authors' schedule)."""

    net: str = "same"
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    halve_every: int = 10
    limit: int = None  # train on the first N attacker images only (None: all)
    # > 0: also match the shadow's per-channel feature mean and std to the intercepted features'.
    feature_stats_weight: float = 0.0
    seed: int = 0  # the shadow's initial weights and batch order; another seed, another shadow
    epoch_examples: int = 0  # > 0: at most this many images per epoch, a fresh random subset each
    train_dtype: str = None  # bfloat16 or float16: the layers' arithmetic in training (`fit_pairs`); None: float32

    def __post_init__(self):
        if self.net not in NETS:
            raise UsageError(f"unknown net {self.net!r}: use same (the head's structure) or diff")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be a positive whole number, got {self.epochs!r}")
        if not self.feature_stats_weight >= 0:
            raise UsageError(f"feature_stats_weight must be non-negative, got {self.feature_stats_weight!r}")
        precision.check_compute_dtype(self.train_dtype, "train_dtype")


def shadow_training(settings, head, space, attacker_images):
    """The `TailShadowSettings` of the attack's preset for a shadow of `head` (see the module
    docstring), trained on `attacker_images` images.

    `best` matches feature statistics unless the shadow is affine: inverted exactly, a shadow
    trained on labels alone did better (MNIST conv1: 27.17 dB against 25.84 with the penalty).
    On a set larger than BEST_EPOCH_EXAMPLES its epochs are of that many images.
    """
    training = TailShadowSettings(settings.net, settings.epochs, limit=settings.limit, seed=settings.seed,
                                  train_dtype=settings.train_dtype)
    if settings.preset == "best" and not whitebox.is_affine(shadow_head(head, settings.net, zoo_split(head, space))):
        training = dataclasses.replace(training, feature_stats_weight=BEST_FEATURE_STATS_WEIGHT)
    if settings.preset == "best" and attacker_images > BEST_EPOCH_EXAMPLES:
        training = dataclasses.replace(training, epoch_examples=BEST_EPOCH_EXAMPLES)
    return training


def queryfree_attack(tail: "keras.Model", features: np.ndarray, settings: "QueryFreeSettings | str" = "best", *,
                     attacker_data: "AttackerData", space: "ImageSpace", context: "AttackContext | None" = None,
                     structure: "keras.Model") -> AttackResult:
    """The query-free attack: rebuild the inputs behind `features` holding only the tail (the
    cloud half) and the attacker's labelled images; the device is never queried.

    Args:
      tail: the cloud half, a Keras model (frozen; its weights hash keys the cache).
      features: the intercepted features, (N, *tail input shape).
      settings: `QueryFreeSettings`, or a preset name ("paper", "best").
      attacker_data: `AttackerData` with labels (classes of the tail).
      space: the `ImageSpace` of the head's input.
      context: `AttackContext` (cache, strategy, progress); None for the defaults.
      structure: a Keras model with the head's structure (never its weights): net "same" copies
        it, "diff" derives another from it.
    Returns:
      `AttackResult`; `stages["before_levels"]` holds the reconstruction before the levels map.
    """
    from mia_tf import models as models_lib

    context = context or DEFAULT_CONTEXT
    if isinstance(settings, str):
        settings = QueryFreeSettings(preset=settings)
    if not isinstance(settings, QueryFreeSettings):
        raise UsageError(f"settings must be QueryFreeSettings or a preset name, got {type(settings).__name__}")
    check_space_and_data(space, attacker_data)
    head = whitebox.check_space(space, structure)
    features = np.asarray(features, np.float32)
    if features.shape[1:] != tuple(tail.input.shape[1:]):
        raise UsageError(f"features have shape {features.shape[1:]} per image, but the tail takes "
                         f"{tuple(tail.input.shape[1:])}: they come from another split")
    training = shadow_training(settings, head, space, len(attacker_data))
    tail_sha256 = models_lib.weights_sha256(tail)
    started = time.time()
    shadows, shadow_models = [], []
    for k in range(settings.shadow_count):  # shadow k has seed + k
        shadow, path, cached = trained_shadow(head, tail, tail_sha256, space, attacker_data,
                                              dataclasses.replace(training, seed=settings.seed + k), context,
                                              intercepted=features)
        context.log(f"shadow {'loaded from' if cached else f'trained on {attacker_data.cache_key}, saved to'} {path}")
        shadows.append(shadow)
        shadow_models.append(cache_lib.model_record(path, cached))
    reconstructions, inversions, decision = invert_through_shadows(
        shadows, features, space, attacker_data, settings.preset, context, settings.train_dtype, settings.limit,
        head.layers[-1].name)
    # one record per shadow: the shadow's model, then what its inversion did (and the decoder it trained)
    records = [{**model, **{k: v for k, v in inversion.items() if k != "decoder_model"}}
               for model, inversion in zip(shadow_models, inversions, strict=True)]
    models = shadow_models + [inversion["decoder_model"] for inversion in inversions if "decoder_model" in inversion]
    reconstruction, choice, residuals = select_by_residual(shadows, features, reconstructions)
    provenance = {"attacker_data": attacker_data.cache_key, "shadow": dataclasses.asdict(training),
                  "shadows": records, "refinement": decision,
                  "chosen_shadow_counts": np.bincount(choice, minlength=len(shadows)).tolist(),
                  "mean_feature_residual": [round(float(r), 4) for r in residuals.mean(axis=1)]}
    return AttackResult("queryfree", "inversion through shadows trained via the tail", settings.preset,
                        apply_levels(reconstruction, space, decision), space, dataclasses.asdict(settings),
                        timed_seconds(started, models), provenance, cached_training_seconds(models),
                        stages={} if decision is None else {"before_levels": reconstruction})


def feature_statistics(features):
    """Per-channel (last axis) mean and standard deviation of intercepted features, as float32."""
    features = np.asarray(features, np.float64)
    axes = tuple(range(features.ndim - 1))
    return features.mean(axis=axes).astype(np.float32), features.std(axis=axes).astype(np.float32)


def _feature_stats_penalty(target_mean, target_std, weight):
    """A pass-through layer that adds `weight` x (squared gap between the batch's per-channel mean
    and std and the targets, relative to the targets' mean square) to the training loss."""
    import keras
    from keras import ops

    scale = float(np.mean(target_mean.astype(np.float64) ** 2 + target_std.astype(np.float64) ** 2)) or 1.0

    class MatchFeatureStatistics(keras.layers.Layer):
        def call(self, features):
            values = ops.cast(features, "float32")  # statistics of a bfloat16 batch in float32
            axes = tuple(range(len(features.shape) - 1))
            mean = ops.mean(values, axis=axes)
            # the epsilon keeps the gradient finite for a channel that is all zeros (a dead ReLU)
            std = ops.sqrt(ops.mean(ops.square(values - mean), axis=axes) + 1e-8)
            gap = ops.mean(ops.square(mean - target_mean)) + ops.mean(ops.square(std - target_std))
            self.add_loss(weight * gap / scale)
            return features

    return MatchFeatureStatistics(name="match_feature_statistics")


# The paper's different shadow structures for the zoo splits (PAPER.md, Algorithm 3): a
# convolution is (filters, kernel size, padding), "relu" a ReLU, "pool" a 2 x 2 max pooling.
PAPER_DIFFERENT_STRUCTURES = {
    ("mnist", "conv1"): [(8, 3, "valid"), "relu", (8, 3, "valid")],
    ("mnist", "relu2"): [(8, 3, "valid"), "relu", (16, 3, "valid"), "relu", "pool", (16, 3, "valid"), "relu",
                         (16, 3, "valid"), "relu"],
    ("cifar10", "conv11"): [(16, 3, "same"), "relu", (64, 3, "same")],
    ("cifar10", "relu22"): [(64, 5, "same"), "relu", "pool", (128, 5, "same"), "relu"],
    ("cifar10", "relu32"): [(64, 5, "same"), "relu", "pool", (128, 5, "same"), "relu", "pool", (128, 5, "same"),
                            "relu"],
}


def _paper_different_head(zoo, input_shape):
    """The paper's different shadow structure for a zoo split ((data set, layer) or None), or None.

    Its layers have fixed names: a shadow's weights hash (the key of the decoder trained through
    it) must not depend on how many layers the process made before.
    """
    import keras
    from keras import layers

    if zoo not in PAPER_DIFFERENT_STRUCTURES:
        return None
    x = inputs = keras.Input(input_shape)
    for i, step in enumerate(PAPER_DIFFERENT_STRUCTURES[zoo]):
        if step == "relu":
            x = layers.ReLU(name=f"shadow_relu_{i}")(x)
        elif step == "pool":
            x = layers.MaxPooling2D(2, name=f"shadow_pool_{i}")(x)
        else:
            filters, kernel, padding = step
            x = layers.Conv2D(filters, kernel, padding=padding, name=f"shadow_conv_{i}")(x)
    return keras.Model(inputs, x, name=f"shadow_diff_{zoo[1]}")


def different_structure(head):
    """A head of another structure with the same input and output shapes, derived from `head`.

    Each k x k convolution (k >= 5, odd) becomes (k - 1) / 2 stacked 3 x 3 convolutions with ReLUs
    between (same receptive field and output size); each 3 x 3 one becomes a 3 x 3 convolution to
    half the filters, a ReLU and a 1 x 1 convolution; every other layer is copied with fresh
    weights. The head must be a chain of layers (one input and one output each). Layer names
    derive from the head's, so the shadow's weights hash does not depend on the process's history.
    """
    import keras
    from keras import layers

    x = inputs = keras.Input(head.input.shape[1:])
    for layer in head.layers[1:]:
        inbound = layer._inbound_nodes
        if len(inbound) != 1 or len(inbound[0].input_tensors) != 1:
            raise UsageError(f"net diff needs a head that is a chain of layers; {layer.name} is not: use net same")
        if isinstance(layer, layers.Conv2D) and type(layer) is layers.Conv2D and layer.kernel_size[0] == layer.kernel_size[1]:
            k, filters, padding = layer.kernel_size[0], layer.filters, layer.padding
            activation = layer.get_config()["activation"]
            if k >= 5 and k % 2 == 1 and layer.strides == (1, 1):
                for i in range((k - 1) // 2):
                    last = i == (k - 1) // 2 - 1
                    x = layers.Conv2D(filters, 3, padding=padding, activation=activation if last else "relu",
                                      name=f"{layer.name}_3x3_{i}")(x)
                continue
            if k == 3 and layer.strides == (1, 1):
                x = layers.Conv2D(max(8, filters // 2), 3, padding=padding, activation="relu",
                                  name=f"{layer.name}_3x3")(x)
                x = layers.Conv2D(filters, 1, activation=activation, name=f"{layer.name}_1x1")(x)
                continue
        x = layer.__class__.from_config(layer.get_config() | {"name": f"{layer.name}_copy"})(x)
    return keras.Model(inputs, x, name=f"{head.name}_shadow_diff")


def shadow_head(head, net, zoo=None):
    """A fresh shadow for `head`: its own structure (`same`) or a different one (`diff`: the
    paper's for the zoo split `zoo`, else `different_structure`)."""
    import keras

    if net == "same":
        return keras.models.clone_model(head)
    shadow = _paper_different_head(zoo, head.input.shape[1:]) or different_structure(head)
    if tuple(shadow.output.shape[1:]) != tuple(head.output.shape[1:]):
        raise UsageError(f"the different shadow gives features {tuple(shadow.output.shape[1:])}, but the tail "
                         f"takes {tuple(head.output.shape[1:])}: use net same")
    return shadow


def shadow_through_tail(head, tail, net, zoo=None, penalty=None):
    """A fresh shadow for `head` and the model image -> frozen `tail`(shadow(image)) that trains it.

    `penalty`: an optional layer between shadow and tail (identity on the features, adds a loss).
    Returns (shadow, through_tail).
    """
    import keras

    shadow = shadow_head(head, net, zoo)
    if tuple(tail.input.shape[1:]) != tuple(shadow.output.shape[1:]):
        raise UsageError(f"the tail takes {tuple(tail.input.shape[1:])}, the shadow gives "
                         f"{tuple(shadow.output.shape[1:])}: the tail and the head are from different splits")
    tail.trainable = False
    x = keras.Input(head.input.shape[1:])
    features = shadow(x) if penalty is None else penalty(shadow(x))
    return shadow, keras.Model(x, tail(features, training=False))


def trained_shadow(head, tail, tail_sha256, space, attacker_data, settings=TailShadowSettings(), context=None,
                   intercepted=None):
    """A shadow head trained so that the frozen `tail` classifies the attacker's labelled images.

    `head` supplies only the structure (and the input shape); its weights are never read.
    `attacker_data`: `AttackerData` with labels, `settings.limit` of them used; its `cache_key`
    names it in the cache key. `intercepted`: features the server has seen, needed when
    `settings.feature_stats_weight` > 0 (only their per-channel statistics are used).
    Returns (shadow, cache path, whether it came from the cache).
    """
    import keras

    context = context or DEFAULT_CONTEXT
    keras.utils.set_random_seed(settings.seed)
    fields = {"tail": tail_sha256, "dataset": space.cache_name, "layer": head.layers[-1].name, "data": attacker_data.cache_key,
              **cache_lib.settings_fields(settings, ("epoch_examples", "train_dtype"))}
    if settings.feature_stats_weight > 0:
        if intercepted is None:
            raise UsageError("feature-statistics matching needs the intercepted features")
        target_mean, target_std = feature_statistics(intercepted)
        # 4 significant digits: the same victims' features computed in other batch sizes differ
        # in the last bits, and must still find the same shadow
        fields["intercepted_stats"] = cache_lib.cache_key([f"{value:.4g}" for value in (*target_mean, *target_std)])
    data = attacker_data.take(settings.limit)
    labels = data.labelled(int(tail.output.shape[-1]))
    with distributed.scope(context.strategy):
        penalty = (_feature_stats_penalty(target_mean, target_std, settings.feature_stats_weight)
                   if settings.feature_stats_weight > 0 else None)
        shadow, through_tail = shadow_through_tail(head, tail, settings.net, zoo_split(head, space), penalty)

    def train(backup_dir):
        return fit_pairs(through_tail, data.images, labels.astype(np.float32), settings, context.strategy, backup_dir,
                         seed=settings.seed, verbose=context.verbose, metrics=["accuracy"],
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    path, cached = cache_lib.load_or_train("queryfree", fields, shadow, train, context.cache_dir)
    return shadow, path, cached


def shadow_decoder_settings(attacker_images, train_dtype=None):
    """The decoder trained through a shadow: the white-box prior's, with epochs of at most
    BEST_EPOCH_EXAMPLES images on a larger set (5 full passes over 60,000 MNIST images took some
    75 min at conv1 with three jobs on the cores), its layers computing in `train_dtype`."""
    from mia_tf.attacks import learned_prior

    settings = dataclasses.replace(learned_prior.DEFAULT_PRIOR_DECODER, train_dtype=train_dtype)
    return dataclasses.replace(settings, epoch_examples=BEST_EPOCH_EXAMPLES) \
        if attacker_images > BEST_EPOCH_EXAMPLES else settings


def invert_through_shadows(shadows, features, space, attacker_data, preset_name="paper", context=None,
                           train_dtype=None, limit=None, layer=None):
    """Invert the real intercepted features through each trained shadow.

    `paper`: the authors' rMLE from zeros. `best`: least squares through an affine shadow;
    through any other, a decoder trained through the shadow on the attacker's images
    (`attacker_data`, its first `limit`; cached under the shadow's weights hash and the split's
    name `layer`), applied to the real features,
    then refined by rMLE through the shadow if cross-shadow validation (`cross_shadow_validation`)
    says that helps. The levels map that validation also chooses is for the caller to put on the
    final reconstruction (`apply_levels`), after the per-victim choice of shadow, which compares
    each shadow's own inversion with the features. The rMLE runs through the shadows (the `paper`
    inversion; the refinement of 1,000 CIFAR victims through three shadows took over half an
    hour) report progress through the context and keep resumable state in its cache.
    Returns (one reconstruction per shadow in normalised space, one record per shadow (with the
    decoder's model record under "decoder_model"), the validation's decision or None: `paper`,
    or a single shadow).
    """
    from mia_tf.attacks import learned_prior

    context = context or DEFAULT_CONTEXT
    pixel_range = space.pixel_range()

    def rmle_through(k, settings, init=None):
        return whitebox.reconstruct(
            shadows[k], features, settings, init=init, pixel_range=pixel_range,
            progress=context.progress_for(f"rMLE through shadow {k + 1} of {len(shadows)}", settings.steps),
            checkpoint_dir=context.rmle_checkpoints).reconstruction

    if preset_name == "paper":
        record = {"rmle": dataclasses.asdict(RMLE)}
        return [rmle_through(k, RMLE) for k in range(len(shadows))], [record] * len(shadows), None
    reconstructions, records, inverters = [], [], []
    decoder_settings = shadow_decoder_settings(len(attacker_data), train_dtype)
    for shadow in shadows:
        if whitebox.is_affine(shadow):  # measured at MNIST conv1: 10 dB above a decoder through the shadow
            inverters.append(lambda v, shadow=shadow: whitebox.reconstruct(shadow, v, EXACT).reconstruction)
            records.append({"rmle": dataclasses.asdict(EXACT)})
        else:
            decoder, model = learned_prior.prior_decoder(shadow, space, attacker_data, context, decoder_settings,
                                                         limit, layer)
            inverters.append(lambda v, decoder=decoder: inverse_network.invert(decoder, v))
            records.append({"decoder": model["decoder"], "decoder_cache": model["cache"],
                            "decoder_from_cache": model["from_cache"], "decoder_training": model["training"],
                            "decoder_model": model})
        reconstructions.append(inverters[-1](features))
    if len(shadows) < 2:  # nothing to validate against: keep the inversion as it is
        return reconstructions, records, None
    attacker_images = attacker_data.images[:VALIDATION_IMAGES]
    refinable = not whitebox.is_affine(shadows[0])  # least squares through an affine shadow is final
    decision = cross_shadow_validation(shadows, inverters, attacker_images, space, refinable)
    levels = f"levels {decision['levels']['black']:g}-{decision['levels']['white']:g}"
    if refinable:
        gain = decision["cross_shadow_gain_db"]
        choice = "refining" if decision["refined"] else "keeping the decoders' guesses"
        context.log(f"refinement through the shadows {'gains' if gain > 0 else 'loses'} {abs(gain):.2f} dB on "
                    f"{len(attacker_images)} of the attacker's images: {choice}, then {levels}")
    else:
        context.log(f"{levels} gain {decision['levels_gain_db']:.2f} dB on {len(attacker_images)} of the "
                    f"attacker's images")
    if decision["refined"]:
        reconstructions = [rmle_through(k, REFINE, init=guess) for k, guess in enumerate(reconstructions)]
    return reconstructions, records, decision


def cross_shadow_validation(shadows, inverters, images, space, refinable=True):
    """Cross-shadow validation: whether to refine the inversion by rMLE through the shadow, and
    which levels map (`levels_check.LEVELS`, black and white points) to put on the result.

    The attacker cannot score reconstructions of the victims, but it can play both sides on its
    own images: shadow b's features stand in for the real head's, and shadow a's inversion
    (`inverters[a]`, then refinement) inverts them, a mismatch of the same kind as between a
    shadow and the real head. Inverting a mismatched shadow's features leaves a grey veil over
    the image (MNIST conv1, conv-ReLU-conv shadows: SSIM 0.605 on the victims without a map,
    0.850 with the one chosen here), which a levels map lifts. For each option (the inversion,
    and if `refinable` its refinement) the map is the one whose PSNR gain over the pairs a != b
    has the highest lower confidence bound (`gain_lower_bound`; the identity's is 0); then the
    option with the higher mean PSNR under its map is taken.
    Returns the decision record (for metrics.json): cross_shadow_gain_db is what refinement
    gains, each option under its own map; levels_gain_db and levels_pair_gains_db what the
    chosen map gains, on average and in each pair.
    """
    truth = space.denormalize(images)
    stand_ins = [shadow.predict(images, batch_size=256, verbose=0) for shadow in shadows]
    pairs = list(itertools.permutations(range(len(shadows)), 2))
    options = {"inverted": [], "refined": []}  # per pair, reconstructions in pixels
    for a, b in pairs:
        guess = inverters[a](stand_ins[b])
        options["inverted"].append(space.denormalize(guess))
        if refinable:
            refined = whitebox.reconstruct(shadows[a], stand_ins[b], REFINE, init=guess,
                                           pixel_range=space.pixel_range()).reconstruction
            options["refined"].append(space.denormalize(refined))
    identity = levels_check.LEVELS.index((0.0, 1.0))
    chosen_map, scores, pair_gains = {}, {}, {}
    for name, reconstructions in options.items():
        if not reconstructions:
            continue
        psnr = np.array([[metrics.psnr(truth, levels_check.apply_levels(pixels, black, white)).mean()
                          for pixels in reconstructions] for black, white in levels_check.LEVELS])  # (maps, pairs)
        gains = psnr - psnr[identity]
        chosen_map[name] = int(np.argmax(gain_lower_bound(gains)))
        scores[name] = float(psnr[chosen_map[name]].mean())
        pair_gains[name] = gains[chosen_map[name]]
    refined = refinable and scores["refined"] > scores["inverted"]
    chosen = "refined" if refined else "inverted"
    black, white = levels_check.LEVELS[chosen_map[chosen]]
    decision = {"refined": bool(refined), "levels": {"black": black, "white": white},
                "levels_gain_db": round(float(pair_gains[chosen].mean()), 3),
                "levels_pair_gains_db": [round(float(gain), 3) for gain in pair_gains[chosen]],
                "validation_images": len(images), "pairs": len(pairs)}
    if refinable:
        decision["cross_shadow_gain_db"] = round(scores["refined"] - scores["inverted"], 3)
        decision["settings"] = dataclasses.asdict(REFINE)
    return decision


def gain_lower_bound(gains):
    """One-sided 95% lower bound (Student t) on the mean over the last axis (the validation pairs).

    The identity map's gains are all 0, so its bound is 0, and a map is put on only when its gain
    is clearly above noise. The best mean alone is not enough: at CIFAR conv11 same/same levels
    0.1-0.9 had a mean of +0.002 dB (pairs +3.46 to -7.29 in a one-off probe) and cost the victims 2.36 dB. Nor is a
    gain in every pair needed: at MNIST conv1 with affine shadows the two pairs that invert the
    third shadow's features lose up to 0.4 dB while the other four gain up to 3 dB, and the map
    the bound picks gave the victims +2.16 dB (dist set). The pairs share shadows, so they are
    not independent samples: the bound ranks maps, it is not a test.
    """
    gains = np.asarray(gains, np.float64)
    pairs = gains.shape[-1]
    spread = gains.std(axis=-1, ddof=1) / np.sqrt(pairs)
    return gains.mean(axis=-1) - scipy.stats.t.ppf(0.95, pairs - 1) * spread


def apply_levels(reconstruction, space, decision):
    """The reconstruction (normalised space) under the levels map cross-shadow validation chose
    (`decision` from `invert_through_shadows`; None, as for the paper preset: unchanged)."""
    if decision is None:
        return reconstruction
    return levels_check.level_reconstruction(reconstruction, space, decision["levels"]["black"],
                                             decision["levels"]["white"])


def feature_residuals(shadow, features, reconstruction):
    """Per victim, ||shadow(reconstruction) - v|| / ||v||: how well the shadow explains the real
    features with this reconstruction (the attacker can compute it; no ground truth needed)."""
    features = np.asarray(features, np.float32).reshape(len(features), -1)
    predicted = np.asarray(shadow.predict(reconstruction, batch_size=256, verbose=0)).reshape(len(features), -1)
    return np.linalg.norm(predicted - features, axis=1) / np.maximum(np.linalg.norm(features, axis=1), 1e-12)


def select_by_residual(shadows, features, reconstructions):
    """Per victim, the reconstruction (one per shadow) with the smallest feature residual.

    Returns (reconstructions chosen, index of the chosen shadow per victim, residuals (shadows, N)).
    """
    residuals = np.stack([feature_residuals(shadow, features, reconstruction)
                          for shadow, reconstruction in zip(shadows, reconstructions)])
    choice = np.argmin(residuals, axis=0)
    chosen = np.stack(reconstructions)[choice, np.arange(len(choice))]
    return chosen, choice, residuals
