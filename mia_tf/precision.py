"""The attacker's own arithmetic in a lower precision (Keras mixed precision).

What the victim's device computes stays float32: the intercepted features and the oracle's
answers are what they are. What the attacker computes on its own side (the thousands of
gradient steps of rMLE through a head or a shadow) can run in bfloat16 on CPUs that have it
(AVX512-BF16, AMX) or float16 on GPUs, with the optimised images, Adam's state and the loss kept
in float32. `scripts/precision_check.py` measures the time and the PSNR of both
(`results/precision_check.md`: on a 2-core AMD EPYC with AVX512-BF16, an rMLE step through the
CIFAR relu32 head took 2.61-2.84 ms per image in bfloat16 against 4.78-5.01 in float32).
Training the attacker's decoders and shadows can do the same (`train_dtype`, in
`query_pairs.fit_pairs`): a copy computing in the lower type trains, its float32 weights go back.
Where the CPU lacks bfloat16 (`native_bfloat16`) and no GPU is visible, it is emulated, slowly,
and `computing_in` warns.
"""

import warnings

from mia_tf.errors import UsageError

COMPUTE_DTYPES = ("bfloat16", "float16")  # besides None: float32, as the model was built
# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic. Without them TensorFlow emulates it: on
# a 2-core AMD EPYC with AVX2 only, a CIFAR relu22 query-free shadow epoch took 19-30 min in
# bfloat16 against 1.5-2 min in float32, an rMLE step 10-12 times as long
# (results/precision_check_no_native_bfloat16.md).
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU does bfloat16 arithmetic itself (AVX512-BF16 or AMX); False where unknown."""
    try:
        with open(cpuinfo) as file:
            flags = set(file.read().split())
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BFLOAT16_FLAGS)


def warn_if_emulated(compute_dtype):
    """A warning when bfloat16 would be emulated here (no GPU, no CPU support): many times slower."""
    if compute_dtype != "bfloat16" or native_bfloat16():
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        warnings.warn(f"bfloat16 was asked for, but this CPU has no bfloat16 arithmetic (none of "
                      f"{', '.join(NATIVE_BFLOAT16_FLAGS)} in /proc/cpuinfo), so it is emulated and runs many "
                      f"times slower than float32: leave out --compute-dtype / --train-dtype here", stacklevel=3)


def check_compute_dtype(compute_dtype, option="compute_dtype"):
    if compute_dtype is not None and compute_dtype not in COMPUTE_DTYPES:
        raise UsageError(f"unknown {option} {compute_dtype!r}: use {' or '.join(COMPUTE_DTYPES)} "
                         f"(or leave it out for float32)")


def computing_in(model, compute_dtype):
    """A copy of a Keras model (nested models included) whose layers compute in `compute_dtype`
    with float32 weights, the same weights as `model`; `model` itself when compute_dtype is None.
    Its outputs are in `compute_dtype`: cast them to float32 before comparing them to features."""
    import keras

    check_compute_dtype(compute_dtype)
    if compute_dtype is None:
        return model
    warn_if_emulated(compute_dtype)  # once, not again for each nested model
    policy = keras.DTypePolicy(f"mixed_{compute_dtype}")

    def copy_of(original):
        def clone(layer):
            if isinstance(layer, keras.Model):
                return copy_of(layer)
            config = layer.get_config()
            config["dtype"] = policy
            return layer.__class__.from_config(config)

        try:
            return keras.models.clone_model(original, clone_function=clone)
        except (TypeError, ValueError) as error:
            raise UsageError(f"cannot rebuild {original.name} to compute in {compute_dtype} ({error}): run it in "
                             f"float32 (leave out the compute dtype)") from None

    copy = copy_of(model)
    copy.set_weights(model.get_weights())  # nested models' weights included, set once
    return copy
