"""Inverse network (He et al. 2019, Algorithm 2): learn a decoder g with g(f1(x)) ~ x.

The attacker trains g on pairs (f1(x), x) from its own data (`AttackerData`) and
reconstructs a victim as g(v). Three decoder families:

- `paper_decoder`: the authors' tiny decoders per split (PAPER.md), for the zoo models only.
- `best_decoder`: built from any feature shape: a 3x3 convolution to `width` channels, then one
  upsampling stage (bilinear x2, two 3x3 convolutions with a residual connection) per halving of
  the image size, then a 3x3 convolution to the image's channels, resized to the image size.
  Flat features (fc splits) first go through a dense layer onto a 4x4 grid.
- `linear_decoder`: for an oracle that answers affinely (a head with no non-linearity, such as
  MNIST conv1 or CIFAR conv11; `probe_affine` tells with a dozen queries), the best decoder is
  linear: one dense layer (small features) or zero padding and one wide convolution, fitted in
  closed form by least squares (`fit_linear_decoder`) in seconds. It inverts the head to the
  precision of the float16 answers, even from noise queries (MNIST conv1: 92-101 dB, where the
  authors' linear decoder trained by gradient steps gets 35.56 dB from dist data).

`trained_decoder` asks a query oracle (`oracle.QueryOracle`: a Keras or `.tflite` head) for the
features of the attacker's images, once each, and trains the paper or best family on those pairs
with MSE in normalised pixel space (the authors' loss; see `query_pairs.py`), optionally plus an
SSIM term (`ssim_weight`; `mse_ssim_loss`), or fits the linear one, caching the result.
"""

import dataclasses
import math

import numpy as np

from mia_tf import distributed
from mia_tf.attacks.query_pairs import attacker_pairs, fit_pairs
from mia_tf.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DecoderSettings:
    family: str = "paper"  # "paper" or "best"
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3
    halve_every: int = 10  # epochs between learning-rate halvings
    width: int = 64  # best family: channels of the first stage (halved per upsampling, min 32)
    # loss = MSE in normalised space + ssim_weight * (1 - SSIM of the pixel images); 0: MSE only
    ssim_weight: float = 0.0
    # at most this many pairs per epoch, a fresh random subset each epoch (0: a full pass)
    epoch_examples: int = 0
    train_dtype: str = None  # bfloat16 or float16: the layers' arithmetic in training (`fit_pairs`); None: float32


# The black-box attack's presets. paper: the authors' decoders and training (PAPER.md); best: the
# family built from any feature shape, trained the same way but with an SSIM term in the loss
# (experiments/decoder_loss/: at w = 1 both PSNR and SSIM rose at MNIST relu2 and CIFAR relu22;
# on the attacker's held-out images, experiments/held_out_tuning/, w = 0 / 1 / 3 gave 20.97 / 21.73
# / 22.00 dB at MNIST relu2: 1 kept, 3's edge being within the spread of single training runs)
# and epochs of at most 9,000 pairs (the dist set's size), so a 50,000-image attacker set costs what
# the dist set costs: 270,000 examples, about 5.4 passes over it, instead of 30 passes.
PRESETS = {
    "paper": DecoderSettings(family="paper", epochs=50, batch_size=32, learning_rate=1e-3, halve_every=10),
    "best": DecoderSettings(family="best", epochs=30, batch_size=32, learning_rate=1e-3, halve_every=10,
                            ssim_weight=1.0, epoch_examples=9000),
}


def preset(name):
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def paper_decoder(zoo):
    """The authors' decoder for a zoo split (PAPER.md, "Black-box inverse network"): `zoo` is its
    (data set, layer) from `zoo_splits.zoo_split`, or None for a head outside the zoo."""
    import keras
    from keras import layers

    def conv_t(filters, kernel, strides=1, padding="same", **kw):
        return layers.Conv2DTranspose(filters, kernel, strides=strides, padding=padding, **kw)

    stacks = {
        ("cifar10", "conv11"): [conv_t(3, 3)],
        ("cifar10", "relu22"): [conv_t(64, 3, 2), layers.ReLU(), conv_t(3, 3)],
        ("cifar10", "relu32"): [conv_t(128, 3, 2), layers.ReLU(), conv_t(64, 3, 2), layers.ReLU(), conv_t(3, 3)],
        # PyTorch Conv2d(8, 1, 5, padding=4): 24x24 -> 28x28
        ("mnist", "conv1"): [layers.ZeroPadding2D(4), layers.Conv2D(1, 5)],
        # ConvTranspose2d(16, 8, 5) then ConvTranspose2d(8, 1, 5, stride 2, output_padding 1): 8 -> 12 -> 28
        ("mnist", "relu2"): [conv_t(8, 5, padding="valid"), layers.ReLU(),
                             conv_t(1, 5, 2, padding="valid", output_padding=1)],
    }
    if zoo not in stacks:
        known = ", ".join(f"{d} {l}" for d, l in stacks)
        raise UsageError(f"the paper has decoders only for the zoo splits ({known}), and this head is none of "
                         f"them: use the best family (preset best)")
    return keras.Sequential(stacks[zoo], name=f"paper_decoder_{zoo[0]}_{zoo[1]}")


def best_decoder(feature_shape, image_shape, width=64):
    """A decoder for any feature shape: upsampling stages matched to the head's downsampling."""
    import keras
    from keras import layers

    inputs = keras.Input(feature_shape, name="features")
    x = inputs
    height = image_shape[0]
    if len(feature_shape) == 1:  # fc split: onto a 4x4 grid
        x = layers.Dense(4 * 4 * width * 2, activation="relu")(x)
        x = layers.Reshape((4, 4, width * 2))(x)
    elif len(feature_shape) != 3:
        raise UsageError(f"best_decoder needs features of shape (H, W, C) or (D,), got {feature_shape}")
    stages = max(0, math.ceil(math.log2(height / x.shape[1])))
    channels = width * 2 ** min(stages, 1)
    x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    x = _residual_block(x, channels)
    for _ in range(stages):
        channels = max(32, channels // 2)
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        x = _residual_block(x, channels)
    x = layers.Conv2D(image_shape[-1], 3, padding="same")(x)
    if tuple(x.shape[1:3]) != tuple(image_shape[:2]):
        x = layers.Resizing(image_shape[0], image_shape[1], interpolation="bilinear")(x)
    return keras.Model(inputs, x, name="best_decoder")


def _residual_block(x, channels):
    from keras import layers

    y = layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(channels, 3, padding="same")(y)
    return layers.ReLU()(layers.Add()([x, y]))


def make_decoder(settings, zoo, feature_shape, image_shape):
    if settings.family == "paper":
        decoder = paper_decoder(zoo)
        decoder.build((None, *feature_shape))
    elif settings.family == "best":
        decoder = best_decoder(feature_shape, image_shape, settings.width)
    else:
        raise UsageError(f"unknown decoder family {settings.family!r}: use paper or best")
    if tuple(decoder.compute_output_shape((None, *feature_shape))[1:]) != tuple(image_shape):
        raise UsageError(f"decoder output {decoder.compute_output_shape((None, *feature_shape))[1:]} "
                         f"does not match the image shape {image_shape}")
    return decoder


AFFINE_PROBES = 4  # midpoint checks of `probe_affine`; each costs three queries
AFFINE_PROBE_QUERIES = 3 * AFFINE_PROBES
# Relative deviation below which a head counts as affine. results/affine_probe.md (dist and noise
# probe images): conv1 / conv11 6e-8 to 9e-8 in float32 and as a float16 .tflite, 0.009 as an int8
# .tflite (rounding; an int8 affine head is still best inverted by a linear decoder); every ReLU,
# pooling or fc split of the zoo models 0.19 to 0.87.
AFFINE_TOLERANCE = 0.05
DENSE_UNKNOWNS = 8192  # features + 1 up to which the linear decoder is one dense layer
LINEAR_UNKNOWNS = 2048  # weights per image channel of a convolutional linear decoder: sets its window
EQUATIONS_PER_UNKNOWN = 32  # the linear decoder is fitted on enough pairs for this (H x W equations each)
HELD_OUT_PAIRS = 100  # further pairs it is scored on, for the training record


def probe_affine(oracle, attacker_images):
    """Whether the oracle answers affinely: f((a + b) / 2) = (f(a) + f(b)) / 2 for AFFINE_PROBES pairs
    of the attacker's images, to within AFFINE_TOLERANCE of |f(a) - f(b)|.

    Costs AFFINE_PROBE_QUERIES queries beyond the attack's own. Returns a dict for the result record:
    affine (bool, or None when the budget has no room), deviation, queries.
    """
    needed = AFFINE_PROBE_QUERIES
    if oracle.remaining is not None and oracle.remaining < needed:
        return {"affine": None, "reason": f"no room in the query budget for the {needed} probe queries"}
    pairs = np.asarray(attacker_images[:2 * AFFINE_PROBES], np.float32)
    a, b = pairs[0::2], pairs[1::2]
    answers_a, answers_b, answers_mid = np.split(oracle(np.concatenate([a, b, (a + b) / 2])), 3)
    deviation = float(np.linalg.norm(answers_mid - (answers_a + answers_b) / 2)
                      / max(float(np.linalg.norm(answers_a - answers_b)), 1e-12))
    return {"affine": deviation < AFFINE_TOLERANCE, "deviation": float(f"{deviation:.3g}"), "queries": needed}


def linear_decoder(feature_shape, image_shape, pairs=None, unknowns=LINEAR_UNKNOWNS):
    """A linear decoder for the feature shape, or None when there is none that least squares can fit.

    Features of at most DENSE_UNKNOWNS - 1 values, with `pairs` (None: plenty) enough for two
    equations per weight: one dense layer from all of them to every pixel (the best linear
    estimate; it needs no locality). Larger stride-1 feature maps, at most the image's size
    (H' = H - k + 1 after a valid convolution, k < H' / 2): zero padding and one K x K convolution
    onto the image, K the widest window with at most `unknowns` weights per image channel (and at
    least what the trim needs). Larger strided maps: None, left to the non-linear family.
    """
    import keras
    from keras import layers

    inputs = keras.Input(feature_shape, name="features")
    height, width, channels = image_shape
    dense_unknowns = math.prod(feature_shape) + 1
    if dense_unknowns <= DENSE_UNKNOWNS and (pairs is None or pairs - HELD_OUT_PAIRS >= 2 * dense_unknowns):
        x = layers.Dense(height * width * channels, name="linear_map")(layers.Flatten()(inputs))
        return keras.Model(inputs, layers.Reshape(image_shape)(x), name="linear_decoder")
    if len(feature_shape) != 3:
        return None
    trim_h, trim_w = height - feature_shape[0], width - feature_shape[1]
    if not (0 <= 2 * trim_h < feature_shape[0] and 0 <= 2 * trim_w < feature_shape[1]):  # else strided
        return None
    window = max(trim_h + 1, trim_w + 1, int(math.sqrt(unknowns / feature_shape[2])))
    pad_h, pad_w = trim_h + window - 1, trim_w + window - 1  # output = input + pad - window + 1 = image
    x = layers.ZeroPadding2D(((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)),
                             name="linear_padding")(inputs)
    x = layers.Conv2D(channels, window, padding="valid", name="linear_map")(x)
    return keras.Model(inputs, x, name="linear_decoder")


def fit_linear_decoder(decoder, features, images, chunk_values=2 ** 24):
    """Least squares for `linear_decoder`'s weights, in closed form (normal equations in float64), on
    the first pairs that give EQUATIONS_PER_UNKNOWN equations per weight, scored on the next
    HELD_OUT_PAIRS. Returns a history dict."""
    import tensorflow as tf

    linear_map = decoder.get_layer("linear_map")
    padding = decoder.get_layer("linear_padding") if any(l.name == "linear_padding" for l in decoder.layers) else None

    def design_rows(batch):  # one row per output value position: the inputs it is a linear function of, and 1
        batch = np.asarray(batch, np.float32)
        if padding is None:
            rows = batch.reshape(len(batch), -1)
        else:
            window = linear_map.kernel_size[0], linear_map.kernel_size[1]
            patches = tf.image.extract_patches(padding(batch), [1, *window, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
            rows = patches.numpy().reshape(-1, patches.shape[-1])  # ordered (row, column, channel), as the kernel
        return np.concatenate([rows, np.ones((len(rows), 1), rows.dtype)], axis=1).astype(np.float64)

    def targets(batch):
        batch = np.asarray(batch, np.float64)
        return batch.reshape(len(batch), -1) if padding is None else batch.reshape(-1, batch.shape[-1])

    unknowns = int(np.prod(linear_map.kernel.shape[:-1])) + 1
    equations_per_pair = 1 if padding is None else int(np.prod(images.shape[1:3]))
    wanted = -(-EQUATIONS_PER_UNKNOWN * unknowns // equations_per_pair)
    count = min(wanted, max(len(images) - HELD_OUT_PAIRS, len(images) // 2))  # keep some pairs to score on
    chunk = max(1, chunk_values // (equations_per_pair * unknowns))  # pairs per step of the Gram matrix
    gram, moment = 0.0, 0.0
    for first in range(0, count, chunk):
        rows = design_rows(features[first:min(count, first + chunk)])
        gram = gram + rows.T @ rows
        moment = moment + rows.T @ targets(images[first:min(count, first + chunk)])
    ridge = 1e-10 * np.trace(gram) / len(gram)  # only guards exactly dependent columns
    solution = np.linalg.solve(gram + ridge * np.eye(len(gram)), moment)
    kernel_shape = linear_map.kernel.shape
    linear_map.set_weights([solution[:-1].reshape(kernel_shape).astype(np.float32), solution[-1].astype(np.float32)])
    held_out = slice(count, count + HELD_OUT_PAIRS)
    history = {"pairs": [count]}
    if len(images[held_out]):
        error = np.mean((invert(decoder, features[held_out]) - np.asarray(images[held_out])) ** 2)
        history["held_out_mse"] = [float(error)]
    return history


def trained_decoder(oracle, space, attacker_data, settings, queries=None, context=None, linear=False, zoo=None):
    """A decoder for the oracle's split, trained on the attacker's own data or loaded from the cache.

    Args:
      oracle: `oracle.QueryOracle` for the head (its budget must allow `queries`); its fingerprint
        keys the cache, so another model's decoder is never reused.
      space: the `ImageSpace` the decoder reconstructs into.
      attacker_data: `AttackerData`, the images whose answers it learns from.
      queries: how many of the attacker's images to query (None: all of them).
      context: `AttackContext` (cache, strategy, Keras progress bars).
      linear: the oracle is affine (`probe_affine`): fit `linear_decoder` by least squares
        instead of training `settings`' family, when the feature shape allows one.
      zoo: the zoo split (data set, layer) the head is (`zoo_splits.zoo_split`), for the paper family.
    Returns:
      (decoder, cache path, whether it came from the cache).
    """
    from mia_tf.attacks import cache as cache_lib
    from mia_tf.attacks.context import DEFAULT_CONTEXT

    context = context or DEFAULT_CONTEXT
    if queries is not None and queries < settings.batch_size:
        raise UsageError(f"a query budget of {queries} is smaller than one training batch of {settings.batch_size}: "
                         f"give at least {settings.batch_size} queries")
    fields = {"source": oracle.fingerprint, "dataset": space.cache_name, "layer": oracle.layer,
              "data": attacker_data.cache_key, "queries": queries,
              "decoder": cache_lib.settings_fields(settings, ("ssim_weight", "epoch_examples", "train_dtype"))}
    decoder = linear_decoder(oracle.feature_shape, space.shape, queries) if linear else None
    if decoder is not None:
        fields["decoder"] = {"family": "linear least squares", "dense_unknowns": DENSE_UNKNOWNS,
                             "unknowns": LINEAR_UNKNOWNS, "equations_per_unknown": EQUATIONS_PER_UNKNOWN}
    else:
        with distributed.scope(context.strategy):
            decoder = make_decoder(settings, zoo, oracle.feature_shape, space.shape)

    def train(backup_dir):
        images, features, _ = attacker_pairs(oracle, space, attacker_data, queries, context.cache_dir)
        if decoder.name == "linear_decoder":
            return fit_linear_decoder(decoder, features, images)
        loss = mse_ssim_loss(space, settings.ssim_weight) if settings.ssim_weight else "mse"
        return fit_pairs(decoder, features, images, settings, context.strategy, backup_dir, verbose=context.verbose,
                         loss=loss)

    path, cached = cache_lib.load_or_train("decoders", fields, decoder, train, context.cache_dir)
    return decoder, path, cached


def mse_ssim_loss(space, ssim_weight):
    """Per image: MSE in normalised space + ssim_weight * (1 - SSIM), SSIM on the pixel scale [0, 1]
    (TensorFlow's: 7x7 Gaussian window, sigma 1.5, so 28x28 MNIST fits), for images of `space`."""
    import tensorflow as tf

    mean, std = tf.constant(space.mean, tf.float32), tf.constant(space.std, tf.float32)

    def loss(images, reconstructions):
        mse = tf.reduce_mean(tf.square(images - reconstructions), axis=[1, 2, 3])
        ssim = tf.image.ssim(images * std + mean, reconstructions * std + mean, max_val=1.0, filter_size=7)
        return mse + ssim_weight * (1.0 - ssim)

    return loss


def invert(decoder, features, batch_size=256):
    """x0 ~ g(v): the decoder's reconstructions (normalised space)."""
    return np.asarray(decoder.predict(np.asarray(features, np.float32), batch_size=batch_size, verbose=0))
