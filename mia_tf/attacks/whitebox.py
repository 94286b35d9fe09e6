"""White-box model inversion: rMLE (He et al. 2019, Algorithm 1) and exact linear inversion.

The attacker knows the head f1 and observes v = f1(x0). rMLE searches for x minimising

    mean((f1(x) - v)^2) + tv_weight * TV(x),  TV = mean(dy^2) + mean(dx^2)

from a zero start (the mean colour in normalised space), with Adam as in the authors' code
(PyTorch's Adam with amsgrad; the same update is written out below so it runs inside one
compiled loop, XLA-compiled on a GPU). A batch sums the per-image losses, so every image is
optimised as if alone.

Improvements the `best` preset switches on (each is a field of `WhiteboxSettings`):
- `exact_linear`: a head with no non-linearity (conv1, conv11) is an affine map A x + b, so x0
  solves the least-squares problem min |A x - (v - b)|^2; conjugate gradients on the normal
  equations, with A^T from autodiff, find it to float precision.
- `preactivation`: when the head ends in a ReLU, match its input z instead: (z - v)^2 where v > 0
  and relu(z)^2 where v = 0. Same minimisers, but no dead gradients where z < 0 and v > 0.
- `box`: keep x inside the valid pixel range [0, 1] (projected after every step).
- `lr_schedule="cosine"`: a larger step that decays to zero, reaching the same loss in fewer steps.
- `prior="decoder"`: start from a learned guess instead of zeros. The white-box attacker can run
  the head on any data it owns, so it trains an inverse network (`learned_prior.py`) on its own
  images and refines the decoder's output with rMLE. This is what the `best` preset does at
  non-linear splits; `prior="none"` keeps the zero start.
"""

import dataclasses
import functools
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING

import numpy as np

from mia_tf import distributed, precision
from mia_tf.attacks.cache import settings_fields
from mia_tf.attacks.context import DEFAULT_CONTEXT
from mia_tf.attacks.result import AttackResult, cached_training_seconds, timed_seconds
from mia_tf.attacks.zoo_splits import zoo_split
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace, check_space_and_data
from mia_tf.io import atomic_path

if TYPE_CHECKING:  # names in the public API's annotations
    import keras

    from mia_tf.attacks.context import AttackContext
    from mia_tf.image_space import AttackerData

LR_SCHEDULES = ("constant", "cosine")
PRESETS = ("paper", "best")
PRIORS = ("none", "decoder")


@dataclasses.dataclass(frozen=True)
class WhiteboxSettings:
    steps: int = 5000  # Adam steps (rMLE) or conjugate-gradient iterations (exact_linear)
    learning_rate: float = 1e-2
    epsilon: float = 1e-3  # Adam's epsilon (the authors use 1e-3, not PyTorch's 1e-8)
    amsgrad: bool = True
    tv_weight: float = 0.0
    lr_schedule: str = "constant"
    box: bool = False
    preactivation: bool = False
    exact_linear: bool = False
    steps_per_call: int = 100  # steps run inside one compiled call; progress is reported between
    # Compile the optimisation loop with XLA (True), as a plain tf.function graph (False), or
    # None: XLA on a GPU, a plain graph on a CPU, where XLA's convolutions measured 3-5x slower
    # (results/bench_whitebox.md: CIFAR relu22, batch 100, 5.3 against 1.0 ms per step per image).
    xla: bool | None = None
    prior: str = "none"  # "none" (zero start) or "decoder" (start from a learned decoder's output)
    # The head's arithmetic in rMLE: None (float32), "bfloat16" or "float16" (`mia_tf.precision`;
    # images, Adam's state and the loss stay float32). The exact linear solver is always float32.
    compute_dtype: str | None = None
    preset: str = "custom"  # the preset these settings came from: a label for results, in no cache key

    def __post_init__(self):
        """Choices and ranges are checked when settings are built, before any work."""
        if self.prior not in PRIORS:
            raise UsageError(f"unknown prior {self.prior!r}: use one of {', '.join(PRIORS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"unknown lr_schedule {self.lr_schedule!r}: use {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise UsageError(f"steps must be a positive whole number, got {self.steps!r}")
        if not isinstance(self.steps_per_call, (int, np.integer)) or self.steps_per_call < 1:
            raise UsageError(f"steps_per_call must be a positive whole number, got {self.steps_per_call!r}")
        if not self.learning_rate > 0 or not self.tv_weight >= 0:
            raise UsageError(f"learning_rate must be positive and tv_weight non-negative, got "
                             f"{self.learning_rate!r} and {self.tv_weight!r}")
        precision.check_compute_dtype(self.compute_dtype)


# Settings tuned at the zoo splits are registered under (data set, layer) and found by the head's
# structure (`zoo_split`), never by a layer's name: any other head gets values derived from itself.
# lambda_TV per split in the authors' code (PAPER.md); conv1 is not given there: 0 is natural.
PAPER_TV_WEIGHTS = {
    ("mnist", "conv1"): 0.0, ("mnist", "relu2"): 1.0,
    ("cifar10", "conv11"): 0.0, ("cifar10", "relu22"): 10.0, ("cifar10", "relu32"): 1000.0,
}
DEFAULT_TV_WEIGHT = 1.0  # `paper` at split points the paper does not cover
# `best` from a zero start at MNIST relu2, chosen on the attacker's own images (held out from its
# dist set, no victim read; experiments/held_out_tuning/, lenet_mnist, 200 images): lambda_TV 0.1
# gave 18.85 dB where 0.03 gave 18.49, 0.3 17.64 and 1 15.25. (It was 0.3, chosen on test images 0-99.)
BEST_TV_WEIGHTS = {("mnist", "relu2"): 0.1}
# `best` from a zero start at a split with no tuned weight (a model outside the zoo, a Table 8
# shadow): lambda_TV in proportion to the features' mean square, the ratio of MNIST relu2 (0.1 at
# 1.557 on those images), so the TV term weighs against the feature loss as it does there. A fixed
# 1.0 swamps the feature loss of small features (mean squares 0.04-0.12 in the example's model).
BEST_TV_PER_FEATURE_ENERGY = 0.064
# rMLE steps refining the decoder prior's guess, at every split. On the attacker's own held-out
# images (experiments/held_out_tuning/, 200 images) 1000 beat 300 and 100 everywhere: CIFAR relu22
# 24.33 (decoder alone) / 25.21 / 25.92 / 26.96 dB after 0 / 100 / 300 / 1000 steps, relu32 17.91 /
# 17.92 / 17.97 / 18.00, MNIST relu2 20.90 / 23.65 / 25.33 / 27.08. (CIFAR had 300 and 100, chosen on
# the paper's 10 victims and for speed: 1.7 ms per image and step at relu22 on the 2-core CPU.)
BEST_REFINE_STEPS = 1000
# With a checkpoint directory, a long rMLE run saves its state (images and Adam moments) this often,
# so a killed run resumes where it stopped: 5000 steps on 1,000 CIFAR victims take 1.5-2 h here.
CHECKPOINT_SECONDS = 300


def feature_energy_tv_weight(features, per_energy=None):
    """lambda_TV for a zero start where none was tuned: `per_energy` (BEST_TV_PER_FEATURE_ENERGY
    unless given) x the features' mean square."""
    per_energy = BEST_TV_PER_FEATURE_ENERGY if per_energy is None else per_energy
    return float(f"{per_energy * np.mean(np.square(features, dtype=np.float64)):.3g}")


def preset(name, head=None, space=None, prior=None, features=None):
    """Settings of a named preset for a head: `paper` (the authors' code) or `best`.

    The values tuned at a zoo split apply when `head` has that split's structure in `space`
    (`zoo_split`); elsewhere `paper` takes DEFAULT_TV_WEIGHT and `best` derives lambda_TV from
    the intercepted `features` (`feature_energy_tv_weight`). `best` starts from a learned
    decoder's output (prior "decoder") unless `prior="none"`.
    """
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    prior = prior or ("none" if name == "paper" else "decoder")
    if prior not in PRIORS:
        raise UsageError(f"unknown prior {prior!r}: use one of {', '.join(PRIORS)}")
    zoo = zoo_split(head, space) if head is not None else None
    tv_weight = PAPER_TV_WEIGHTS.get(zoo, DEFAULT_TV_WEIGHT)
    if name == "paper":
        return WhiteboxSettings(tv_weight=tv_weight, prior=prior, preset=name)
    if prior == "decoder":  # refine a good guess: small steps, no smoothing (measured: tv 0 > tv 0.3)
        return WhiteboxSettings(steps=BEST_REFINE_STEPS, learning_rate=0.01,
                                tv_weight=0.0, box=True,
                                preactivation=True, exact_linear=True, prior=prior, preset=name)
    # The paper's absolute lambda_TV fit the authors' feature scale, not the shipped CIFAR CNN's
    # (RMS 0.58 at relu22): through the relu22 Table 8 shadow, 20 victims, 1000 steps, the paper's
    # 10 gave 13.45 dB / SSIM 0.215, 1 gave 15.83, the feature-energy rule's 0.070 gave 17.49 / 0.760;
    # at relu32 the paper's 1000 gave 12.38 / 0.002 (a flat image), 1 gave 14.24, the rule's 0.21 14.00 / 0.315.
    tuned = BEST_TV_WEIGHTS.get(zoo)
    if tuned is None and features is not None:
        tuned = feature_energy_tv_weight(features)
    return WhiteboxSettings(steps=5000, learning_rate=0.1, tv_weight=tv_weight if tuned is None else tuned,
                            lr_schedule="cosine", box=True, preactivation=True, exact_linear=True, prior=prior,
                            preset=name)


def whitebox_attack(head: "keras.Model", features: np.ndarray, settings: "WhiteboxSettings | str" = "best", *,
                    attacker_data: "AttackerData | None" = None, space: ImageSpace,
                    context: "AttackContext | None" = None) -> AttackResult:
    """The white-box attack: rebuild the inputs of `head` from its outputs, knowing its weights.

    Args:
      head: the device half, a Keras model (called, never modified).
      features: what the head sent, (N, *head output shape).
      settings: `WhiteboxSettings`, or a preset name ("paper", "best") resolved for this head.
      attacker_data: `AttackerData`, the attacker's own images: the decoder prior of `best`
        trains on them through the head (no victim is seen); not needed with prior "none".
      space: the `ImageSpace` of the head's input.
      context: `AttackContext` (cache, strategy, progress); None for the defaults.
    Returns:
      `AttackResult` (not scored: see `mia_tf.score`).
    """
    from mia_tf.attacks import inverse_network, learned_prior

    context = context or DEFAULT_CONTEXT
    head = check_space(space, head)
    if isinstance(settings, str):
        settings = preset(settings, head, space, features=features)
    features = validate(head, features, settings)
    started = time.time()
    initial, models = None, []
    if trains_prior(head, settings):
        if attacker_data is None:
            raise UsageError("the decoder prior (the best preset) trains on the attacker's own images: pass "
                             "attacker_data, or settings with prior='none'")
        check_space_and_data(space, attacker_data)
        decoder, record = learned_prior.prior_decoder(head, space, attacker_data, context)
        models.append(record)
        initial = inverse_network.invert(decoder, features)
    methods = set()

    def attack_share(victims, starts, indices):  # this worker's victims; all of them on one
        parts = []
        for first in range(0, len(victims), context.batch_size):
            part = slice(first, first + context.batch_size)
            result = reconstruct(head, victims[part], settings, init=None if starts is None else starts[part],
                                 pixel_range=space.pixel_range(),
                                 progress=context.progress_for("white-box rMLE", settings.steps, int(indices[first])),
                                 checkpoint_dir=context.rmle_checkpoints)
            parts.append(result.reconstruction)
            methods.add(result.method)
        return np.concatenate(parts)

    reconstructions = distributed.sharded(context.strategy, attack_share, features, initial,
                                          np.arange(len(features)))
    return AttackResult("whitebox", "+".join(sorted(methods)), settings.preset, reconstructions, space,
                        dataclasses.asdict(settings), timed_seconds(started, models),
                        {"prior": models[0] if models else None}, cached_training_seconds(models))


def trains_prior(head, settings):
    """Whether the attack trains a decoder prior (and so needs the attacker's images): prior
    "decoder", unless the head is affine and solved exactly."""
    return settings.prior == "decoder" and not (settings.exact_linear and is_affine(head))


def check_space(space, head):
    """The head the attacks invert in `space` (`ImageSpace.attack_head`), or a UsageError."""
    if not isinstance(space, ImageSpace):
        raise UsageError(f"space must be an ImageSpace (mia_tf.ImageSpace(shape, mean, std)), got {type(space).__name__}")
    if tuple(head.input.shape[1:]) != space.shape:
        raise UsageError(f"the head takes inputs of shape {tuple(head.input.shape[1:])}, but the space's images are "
                         f"{space.shape}: give the ImageSpace of this model's input")
    return space.attack_head(head)


@dataclasses.dataclass
class WhiteboxResult:
    reconstruction: np.ndarray  # normalised space, like the head's input
    loss: np.ndarray  # total loss (summed over images) before each step; CG: residual norms
    method: str  # "rmle" or "exact_linear"
    seconds: float


def validate(head, features, settings):
    """The features as float32, or a UsageError for anything that would make the attack meaningless."""
    if not isinstance(settings, WhiteboxSettings):
        raise UsageError(f"settings must be WhiteboxSettings or a preset name, got {type(settings).__name__}")
    features = np.asarray(features, dtype=np.float32)
    expected = tuple(head.output.shape[1:])
    if features.ndim != len(expected) + 1 or features.shape[1:] != expected:
        raise UsageError(f"features have shape {features.shape[1:]} per image, but the head's output "
                         f"is {expected}: check the split layer")
    if not np.all(np.isfinite(features)):
        raise UsageError("features contain NaN or infinite values: they cannot come from this head")
    return features


def reconstruct(head, features, settings=WhiteboxSettings(), init=None, pixel_range=None,
                progress=None, checkpoint_dir=None):
    """Reconstruct the inputs of `head` from its outputs `features`: the optimisation alone, on
    one batch, from a given start (the attacks build on it; `whitebox_attack` is the whole attack).

    Args:
      head: a Keras model (the device half); called, never modified.
      features: observed head outputs, (N, *head output shape).
      settings: `WhiteboxSettings` (see `preset`).
      init: starting images in normalised space (default zeros); another attack's output here
        makes a hybrid attack.
      pixel_range: (low, high) arrays broadcastable to an image: the normalised values of pixels 0
        and 1, for `box`. Required when settings.box is on.
      progress: called as progress(step, loss, reconstruction) between compiled calls.
      checkpoint_dir: if given, rMLE saves its state there every CHECKPOINT_SECONDS under a key
        of (head weights, settings, features, start) and resumes from it; removed when done.
    Returns:
      `WhiteboxResult`.
    """
    import tensorflow as tf

    features = validate(head, features, settings)
    if settings.box and pixel_range is None:
        raise UsageError("box=True needs pixel_range: the normalised values of pixels 0 and 1")
    shape = (len(features), *head.input.shape[1:])
    x0 = np.zeros(shape, np.float32) if init is None else np.asarray(init, np.float32).reshape(shape)
    started = time.time()
    if settings.exact_linear and is_affine(head):
        x, loss = _solve_linear(head, tf.constant(features), tf.constant(x0), settings.steps, use_xla(settings.xla))
        method = "exact_linear"
    else:
        x, loss = _rmle(head, features, x0, settings, pixel_range, progress, checkpoint_dir)
        method = "rmle"
    return WhiteboxResult(np.asarray(x), np.asarray(loss), method, time.time() - started)


def refinement_gain(head, features, guess, images, settings, space):
    """Mean PSNR gain in dB of refining `guess` by this attack through `head`, on images whose truth
    the attacker knows (its own; `features` are what it holds for them, `guess` its prior's output,
    all normalised in `space`). Attacks that cannot score their victims use it to decide whether to refine.
    """
    from mia_tf import metrics

    refined = reconstruct(head, features, settings, init=guess, pixel_range=space.pixel_range()).reconstruction
    truth = space.denormalize(images)
    return float(np.mean(metrics.psnr(truth, space.denormalize(refined)) - metrics.psnr(truth, space.denormalize(guess))))


def use_xla(xla):
    """Whether to compile with XLA: as asked, or (None) only when TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU")) if xla is None else bool(xla)


def total_variation(x):
    """Per-image TV: mean squared vertical plus mean squared horizontal differences."""
    import tensorflow as tf

    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy), axis=[1, 2, 3]) + tf.reduce_mean(tf.square(dx), axis=[1, 2, 3])


def _preactivation_head(head):
    """The head without its final ReLU, or None if it does not end in a plain ReLU."""
    import keras

    operation, node_index, _ = head.output._keras_history
    plain_relu = isinstance(operation, keras.layers.ReLU) and not operation.max_value and \
        not operation.negative_slope and not operation.threshold
    is_relu_activation = isinstance(operation, keras.layers.Activation) and \
        getattr(operation.activation, "__name__", "") == "relu"
    if not (plain_relu or is_relu_activation):
        return None
    node = operation._inbound_nodes[node_index]
    return keras.Model(head.input, node.input_tensors[0])


def _feature_loss_fn(head, settings):
    """per-image feature loss(x, v): mean squared error, or its pre-activation form."""
    import tensorflow as tf

    head = precision.computing_in(head, settings.compute_dtype)
    pre_head = _preactivation_head(head) if settings.preactivation else None
    axes = list(range(1, len(head.output.shape)))
    if pre_head is None:
        return lambda x, v: tf.reduce_mean(tf.square(tf.cast(head(x, training=False), tf.float32) - v), axis=axes)

    def preactivation_loss(x, v):
        z = tf.cast(pre_head(x, training=False), tf.float32)
        return tf.reduce_mean(tf.where(v > 0, tf.square(z - v), tf.square(tf.nn.relu(z))), axis=axes)

    return preactivation_loss


def _rmle(head, features, x0, settings, pixel_range, progress, checkpoint_dir=None):
    import tensorflow as tf

    box = tuple(tuple(np.ravel(r).tolist()) for r in pixel_range) if settings.box else None
    run = _rmle_program(head, settings, box)
    x = tf.constant(x0)
    zeros = tf.zeros_like(x)
    m, v, v_max = zeros, zeros, zeros
    target = tf.constant(features)
    history = []
    done, total = 0, int(settings.steps)
    inputs = checkpoint_dir and _input_fingerprint(features, x0)
    checkpoint = checkpoint_dir and _checkpoint_path(checkpoint_dir, head, inputs, (features.shape, x0.shape),
                                                     settings, box)
    if checkpoint and os.path.exists(checkpoint):
        with np.load(checkpoint) as saved:
            if _same_inputs(saved.get("inputs"), inputs):  # else another run's state under this key: start afresh
                x, m, v, v_max = (tf.constant(saved[name]) for name in ("x", "m", "v", "v_max"))
                history, done = [saved["losses"]], int(saved["done"])
                if progress is not None:  # tell the caller where the run resumes
                    progress(done, float(history[-1][-1]), x.numpy())
    saved_at = time.time()
    while done < total:
        count = min(int(settings.steps_per_call), total - done)
        x, m, v, v_max, losses = run(x, m, v, v_max, target, tf.constant(done), tf.constant(count))
        history.append(losses.numpy())
        done += count
        if progress is not None:
            progress(done, float(history[-1][-1]), x.numpy())
        if checkpoint and done < total and time.time() - saved_at >= CHECKPOINT_SECONDS:
            with atomic_path(checkpoint) as tmp:
                np.savez(tmp, x=x.numpy(), m=m.numpy(), v=v.numpy(), v_max=v_max.numpy(),
                         losses=np.concatenate(history), done=done, inputs=inputs)
            saved_at = time.time()
    if checkpoint and os.path.exists(checkpoint):
        os.remove(checkpoint)
    return x.numpy(), np.concatenate(history)


def _checkpoint_path(directory, head, inputs, shapes, settings, box):
    """`<directory>/<key>.npz`, the key hashing the head's weights, the settings and the inputs'
    shapes and 3-digit mean and RMS (from their `_input_fingerprint`), not the inputs' bytes: features
    computed on another machine differ in their last bits (the CIFAR relu22 Table 8 run lost 1,700
    steps to a new key that way), so `_same_inputs` compares them to a tolerance when the run resumes.
    """
    from mia_tf.models import weights_sha256

    means = inputs.mean(axis=0)  # images are equal-sized: the means of per-image means and squares
    coarse = [[list(shape), f"{means[2 * i]:.3g}", f"{np.sqrt(np.mean(np.square(inputs[:, 2 * i + 1]))):.3g}"]
              for i, shape in enumerate(shapes)]
    digest = hashlib.sha256(weights_sha256(head).encode())
    fields = settings_fields(settings, later_fields=("compute_dtype",), labels=("preset",))  # float32 runs keep their keys
    digest.update(json.dumps([fields, box, coarse], sort_keys=True).encode())
    return os.path.join(directory, f"{digest.hexdigest()[:24]}.npz")


def _input_fingerprint(features, x0):
    """Per-image mean and root mean square of the features and of the start, (N, 4) float64."""
    columns = []
    for array in (features, x0):
        flat = np.asarray(array, np.float64).reshape(len(array), -1)
        columns += [flat.mean(axis=1), np.sqrt(np.mean(np.square(flat), axis=1))]
    return np.stack(columns, axis=1)


def _same_inputs(saved_fingerprint, fingerprint):
    """Whether a checkpoint's fingerprint (None from an older checkpoint) is of these inputs, to
    float32 rounding noise."""
    return saved_fingerprint is not None and saved_fingerprint.shape == fingerprint.shape and \
        np.allclose(saved_fingerprint, fingerprint, rtol=1e-4, atol=1e-6)


@functools.lru_cache(maxsize=8)
def _rmle_program(head, settings, box):
    """The compiled rMLE loop for a head and settings, built once so that every batch reuses it.

    box: ((low per channel), (high per channel)) of the valid pixels, or None for no box.
    """
    import tensorflow as tf

    feature_loss = _feature_loss_fn(head, settings)
    total = int(settings.steps)
    lr0, eps, tv_weight = float(settings.learning_rate), float(settings.epsilon), float(settings.tv_weight)
    beta1, beta2 = 0.9, 0.999
    image_shape = tuple(head.input.shape[1:])
    low, high = (tf.constant(np.broadcast_to(np.array(r, np.float32), image_shape)) for r in box) \
        if box is not None else (None, None)
    cosine = settings.lr_schedule == "cosine"

    # The loop is an explicit tf.while_loop, so AutoGraph is not needed; it would re-read this
    # file's source at trace time and fail ("closure mismatch") if the file changed since import.
    @tf.function(jit_compile=use_xla(settings.xla), autograph=False)
    def run(x, m, v, v_max, v_target, first, count):
        def body(i, x, m, v, v_max, losses):
            step = tf.cast(first + i, tf.float32)  # 0-based
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(feature_loss(x, v_target) + tv_weight * total_variation(x))
            grad = tape.gradient(loss, x)
            lr = lr0 * 0.5 * (1.0 + tf.cos(np.pi * step / total)) if cosine else lr0
            t = step + 1.0
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * tf.square(grad)
            v_max = tf.maximum(v_max, v) if settings.amsgrad else v
            denom = tf.sqrt(v_max) / tf.sqrt(1 - beta2 ** t) + eps  # PyTorch's Adam
            x = x - (lr / (1 - beta1 ** t)) * m / denom
            if low is not None:
                x = tf.clip_by_value(x, low, high)
            return i + 1, x, m, v, v_max, losses.write(i, loss)

        losses = tf.TensorArray(tf.float32, size=count)
        _, x, m, v, v_max, losses = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(0), x, m, v, v_max, losses))
        return x, m, v, v_max, losses.stack()

    return run


AFFINE_LAYERS = ("InputLayer", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "Dense", "Flatten",
                 "Reshape", "Permute", "ZeroPadding2D", "Cropping2D", "AveragePooling2D",
                 "GlobalAveragePooling2D", "Identity")


def is_affine(head):
    """True when every layer of the head is affine (convolutions and dense layers without activation)."""
    for layer in head.layers:
        if type(layer).__name__ not in AFFINE_LAYERS:
            return False
        activation = getattr(layer, "activation", None)
        if activation is not None and getattr(activation, "__name__", "") != "linear":
            return False
    return True


def _solve_linear(head, features, x0, iterations, xla):
    """Least squares for an affine head by conjugate gradients on A^T A x = A^T (v - b)."""
    x, norms = _linear_program(head, int(iterations), xla)(x0, features)
    return x.numpy(), norms.numpy()


@functools.lru_cache(maxsize=8)
def _linear_program(head, iterations, xla):
    """The compiled conjugate-gradient solver for an affine head, built once for every batch."""
    import tensorflow as tf

    bias = head(tf.zeros((1, *head.input.shape[1:])), training=False)
    axes = list(range(1, len(head.input.shape)))

    def apply_a(x):
        return head(x, training=False) - bias

    def apply_at(y, like):
        probe = tf.zeros_like(like)
        with tf.GradientTape() as tape:
            tape.watch(probe)
            inner = tf.reduce_sum(apply_a(probe) * y)
        return tape.gradient(inner, probe)

    def dot(a, b):
        return tf.reduce_sum(a * b, axis=axes, keepdims=True)

    @tf.function(jit_compile=xla, autograph=False)  # an explicit tf.while_loop, as in `_rmle_program`
    def solve(x, features):
        r = apply_at(features - bias, x) - apply_at(apply_a(x), x)
        p, rs = r, dot(r, r)
        norms = tf.TensorArray(tf.float32, size=iterations)

        def body(i, x, r, p, rs, norms):
            ap = apply_at(apply_a(p), x)
            alpha = tf.math.divide_no_nan(rs, dot(p, ap))
            x, r = x + alpha * p, r - alpha * ap
            rs_new = dot(r, r)
            p = r + tf.math.divide_no_nan(rs_new, rs) * p
            return i + 1, x, r, p, rs_new, norms.write(i, tf.sqrt(tf.reduce_sum(rs_new)))

        _, x, _, _, _, norms = tf.while_loop(lambda i, *_: i < iterations, body,
                                             (tf.constant(0), x, r, p, rs, norms))
        return x, norms.stack()

    return solve
