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

import numpy as np
import scipy.stats

from mia_tf import data as data_lib, distributed, metrics, precision
from mia_tf.attacks import cache as cache_lib, inverse_network, levels_check, whitebox
from mia_tf.attacks.query_pairs import fit_pairs
from mia_tf.errors import UsageError

NETS = ("same", "diff")
DATA = ("same", "dist")
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
# `best` on the same set (50,000 or 60,000 images): epochs of this many, a fresh random subset each,
# the dist set's size (9,000), so a same-set shadow costs what a dist one costs, as for the black-box
# `best` decoder: 50 epochs are 450,000 images, 7.5 to 9 passes. A dist epoch is a full pass either way.
BEST_EPOCH_EXAMPLES = inverse_network.PRESETS["best"].epoch_examples


@dataclasses.dataclass(frozen=True)
class QueryFreeSettings:
    data: str = "dist"
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

    def validate(self):
        if self.data not in DATA:
            raise UsageError(f"the query-free attack needs labelled images: --data must be one of "
                             f"{', '.join(DATA)}, got {self.data!r}")
        if self.net not in NETS:
            raise UsageError(f"unknown --net {self.net!r}: use same (the head's structure) or diff")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be a positive whole number, got {self.epochs!r}")
        if not self.feature_stats_weight >= 0:
            raise UsageError(f"feature_stats_weight must be non-negative, got {self.feature_stats_weight!r}")
        precision.check_compute_dtype(self.train_dtype, "--train-dtype")
        return self


def preset(name, head, dataset=None, layer=None, data="dist", net="same", epochs=50, limit=None, seed=0,
           train_dtype=None):
    """Shadow training settings of a named preset (`paper` or `best`, see the module docstring)
    for a shadow of `head` with structure `net`.

    `best` matches feature statistics unless the shadow is affine: inverted exactly, a shadow
    trained on labels alone did better (MNIST conv1: 27.17 dB against 25.84 with the penalty).
    On the same set its epochs are of BEST_EPOCH_EXAMPLES images.
    """
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    settings = QueryFreeSettings(data, net, epochs, limit=limit, seed=seed, train_dtype=train_dtype).validate()
    if name == "best" and not whitebox.is_affine(shadow_head(head, net, dataset, layer)):
        settings = dataclasses.replace(settings, feature_stats_weight=BEST_FEATURE_STATS_WEIGHT)
    if name == "best" and data == "same":
        settings = dataclasses.replace(settings, epoch_examples=BEST_EPOCH_EXAMPLES)
    return settings


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


def _paper_different_head(dataset, layer, input_shape):
    """The paper's different shadow structure for a zoo split, or None.

    Its layers have fixed names: a shadow's weights hash (the key of the decoder trained through
    it) must not depend on how many layers the process made before.
    """
    import keras
    from keras import layers

    if (dataset, layer) not in PAPER_DIFFERENT_STRUCTURES:
        return None
    x = inputs = keras.Input(input_shape)
    for i, step in enumerate(PAPER_DIFFERENT_STRUCTURES[(dataset, layer)]):
        if step == "relu":
            x = layers.ReLU(name=f"shadow_relu_{i}")(x)
        elif step == "pool":
            x = layers.MaxPooling2D(2, name=f"shadow_pool_{i}")(x)
        else:
            filters, kernel, padding = step
            x = layers.Conv2D(filters, kernel, padding=padding, name=f"shadow_conv_{i}")(x)
    return keras.Model(inputs, x, name=f"shadow_diff_{layer}")


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
            raise UsageError(f"--net diff needs a head that is a chain of layers; {layer.name} is not: use --net same")
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


def shadow_through_tail(head, tail, net, dataset=None, layer=None, penalty=None):
    """A fresh shadow for `head` and the model image -> frozen `tail`(shadow(image)) that trains it.

    `penalty`: an optional layer between shadow and tail (identity on the features, adds a loss).
    Returns (shadow, through_tail).
    """
    import keras

    shadow = shadow_head(head, net, dataset, layer)
    if tuple(tail.input.shape[1:]) != tuple(shadow.output.shape[1:]):
        raise UsageError(f"the tail takes {tuple(tail.input.shape[1:])}, the shadow gives "
                         f"{tuple(shadow.output.shape[1:])}: the tail and the head are from different splits")
    tail.trainable = False
    x = keras.Input(head.input.shape[1:])
    features = shadow(x) if penalty is None else penalty(shadow(x))
    return shadow, keras.Model(x, tail(features, training=False))


def trained_shadow(head, tail, tail_sha256, dataset, layer, settings=QueryFreeSettings(), data_dir=None, cache=None,
                   strategy=None, verbose=0, intercepted=None):
    """A shadow head trained so that the frozen `tail` classifies the attacker's labelled images.

    `head` supplies only the structure (and the input shape); its weights are never read.
    `intercepted`: features the server has seen, needed when `settings.feature_stats_weight` > 0
    (only their per-channel statistics are used).
    Returns (shadow, cache path, whether it came from the cache).
    """
    import keras

    settings.validate()
    keras.utils.set_random_seed(settings.seed)
    fields = {"tail": tail_sha256, "dataset": dataset, "layer": layer,
              **cache_lib.settings_fields(settings, ("epoch_examples", "train_dtype"))}
    if settings.feature_stats_weight > 0:
        if intercepted is None:
            raise UsageError("feature-statistics matching needs the intercepted features")
        target_mean, target_std = feature_statistics(intercepted)
        # 4 significant digits: the same victims' features computed in other batch sizes differ
        # in the last bits, and must still find the same shadow
        fields["intercepted_stats"] = cache_lib.cache_key([f"{value:.4g}" for value in (*target_mean, *target_std)])
    with distributed.scope(strategy):
        penalty = (_feature_stats_penalty(target_mean, target_std, settings.feature_stats_weight)
                   if settings.feature_stats_weight > 0 else None)
        shadow, through_tail = shadow_through_tail(head, tail, settings.net, dataset, layer, penalty)

    def train(backup_dir):
        images, labels = data_lib.attacker_set(dataset, settings.data, data_dir, limit=settings.limit)
        classes = int(tail.output.shape[-1])
        if labels.min() < 0 or labels.max() >= classes:
            raise UsageError(f"attacker labels span {labels.min()}..{labels.max()}, but the tail has {classes} classes")
        return fit_pairs(through_tail, images, labels.astype(np.float32), settings, strategy, backup_dir,
                         seed=settings.seed, verbose=verbose, metrics=["accuracy"],
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    path, cached = cache_lib.load_or_train("queryfree", fields, shadow, train, cache)
    return shadow, path, cached


def shadow_decoder_settings(attacker_data, train_dtype=None):
    """The decoder trained through a shadow: the white-box prior's, with epochs of at most
    BEST_EPOCH_EXAMPLES images on the same set (5 full passes over 60,000 MNIST images took some
    75 min at conv1 with three jobs on the cores), its layers computing in `train_dtype`."""
    from mia_tf.attacks import learned_prior

    settings = dataclasses.replace(learned_prior.DEFAULT_PRIOR_DECODER, train_dtype=train_dtype)
    return dataclasses.replace(settings, epoch_examples=BEST_EPOCH_EXAMPLES) if attacker_data == "same" else settings


def shadow_decoder(shadow, dataset, layer, attacker_data="dist", data_dir=None, cache=None, limit=None, verbose=0,
                   train_dtype=None):
    """A decoder trained through the shadow on the attacker's images (`shadow_decoder_settings`,
    cached under the shadow's weights hash). Returns (decoder, cache path, cached)."""
    from mia_tf import models as models_lib
    from mia_tf.attacks import learned_prior

    return learned_prior.prior_decoder(shadow, dataset, layer, models_lib.weights_sha256(shadow), data_dir,
                                       attacker_data, settings=shadow_decoder_settings(attacker_data, train_dtype),
                                       limit=limit,
                                       cache=cache, verbose=verbose)


def invert_through_shadows(shadows, features, dataset, layer, preset_name="paper", attacker_data="dist",
                           data_dir=None, cache=None, limit=None, verbose=0, train_dtype=None, log=print):
    """Invert the real intercepted features through each trained shadow.

    `paper`: the authors' rMLE from zeros. `best`: least squares through an affine shadow;
    through any other, a decoder trained through the shadow on the attacker's images
    (`attacker_data`, its first `limit` if given; cached under the shadow's weights hash),
    applied to the real features, then refined by rMLE through the shadow if cross-shadow
    validation (`cross_shadow_validation`) says that helps. The levels map that validation also
    chooses is for the caller to put on the final reconstruction (`apply_levels`), after the
    per-victim choice of shadow, which compares each shadow's own inversion with the features.
    The rMLE runs through the shadows (the `paper` inversion; the refinement of 1,000 CIFAR
    victims through three shadows took over half an hour) log their progress with `log` and keep
    resumable state in the cache, so a killed run picks up where it stopped.
    Returns (one reconstruction per shadow in normalised space, one record per shadow, the
    validation's decision or None: `paper`, or a single shadow).
    """
    pixel_range = data_lib.pixel_range(dataset)

    def rmle_through(k, settings, init=None):
        return whitebox.whitebox_attack(
            shadows[k], features, settings, init=init, pixel_range=pixel_range,
            progress=whitebox.progress_lines(log, f"rMLE through shadow {k + 1} of {len(shadows)}", settings.steps),
            checkpoint_dir=cache_lib.rmle_checkpoint_dir(cache)).reconstruction

    if preset_name == "paper":
        record = {"rmle": dataclasses.asdict(RMLE)}
        return [rmle_through(k, RMLE) for k in range(len(shadows))], [record] * len(shadows), None
    reconstructions, records, inverters = [], [], []
    for shadow in shadows:
        if whitebox.is_affine(shadow):  # measured at MNIST conv1: 10 dB above a decoder through the shadow
            inverters.append(lambda v, shadow=shadow: whitebox.whitebox_attack(shadow, v, EXACT).reconstruction)
            records.append({"rmle": dataclasses.asdict(EXACT)})
        else:
            decoder, path, cached = shadow_decoder(shadow, dataset, layer, attacker_data, data_dir, cache, limit,
                                                   verbose, train_dtype)
            inverters.append(lambda v, decoder=decoder: inverse_network.invert(decoder, v))
            records.append({"decoder": dataclasses.asdict(shadow_decoder_settings(attacker_data, train_dtype)),
                            "decoder_cache": path,
                            "decoder_from_cache": cached, "decoder_training": cache_lib.training_record(path)})
        reconstructions.append(inverters[-1](features))
    if len(shadows) < 2:  # nothing to validate against: keep the inversion as it is
        return reconstructions, records, None
    attacker_images, _ = data_lib.attacker_set(dataset, attacker_data, data_dir, limit=VALIDATION_IMAGES)
    refinable = not whitebox.is_affine(shadows[0])  # least squares through an affine shadow is final
    decision = cross_shadow_validation(shadows, inverters, attacker_images, dataset, refinable)
    levels = f"levels {decision['levels']['black']:g}-{decision['levels']['white']:g}"
    if refinable:
        gain = decision["cross_shadow_gain_db"]
        choice = "refining" if decision["refined"] else "keeping the decoders' guesses"
        log(f"refinement through the shadows {'gains' if gain > 0 else 'loses'} {abs(gain):.2f} dB on "
            f"{len(attacker_images)} of the attacker's images: {choice}, then {levels}")
    else:
        log(f"{levels} gain {decision['levels_gain_db']:.2f} dB on {len(attacker_images)} of the attacker's images")
    if decision["refined"]:
        reconstructions = [rmle_through(k, REFINE, init=guess) for k, guess in enumerate(reconstructions)]
    return reconstructions, records, decision


def cross_shadow_validation(shadows, inverters, images, dataset, refinable=True):
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
    truth = data_lib.denormalize(images, dataset)
    stand_ins = [shadow.predict(images, batch_size=256, verbose=0) for shadow in shadows]
    pairs = list(itertools.permutations(range(len(shadows)), 2))
    options = {"inverted": [], "refined": []}  # per pair, reconstructions in pixels
    for a, b in pairs:
        guess = inverters[a](stand_ins[b])
        options["inverted"].append(data_lib.denormalize(guess, dataset))
        if refinable:
            refined = whitebox.whitebox_attack(shadows[a], stand_ins[b], REFINE, init=guess,
                                               pixel_range=data_lib.pixel_range(dataset)).reconstruction
            options["refined"].append(data_lib.denormalize(refined, dataset))
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


def apply_levels(reconstruction, dataset, decision):
    """The reconstruction (normalised space) under the levels map cross-shadow validation chose
    (`decision` from `invert_through_shadows`; None, as for the paper preset: unchanged)."""
    if decision is None:
        return reconstruction
    return levels_check.level_reconstruction(reconstruction, dataset, decision["levels"]["black"],
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
