"""The attacker's own arithmetic in a lower precision (Keras mixed precision).

What the victim's device computes stays float32: the intercepted features and the oracle's
answers are what they are. What the attacker computes on its own side (the thousands of
gradient steps of rMLE through a head or a shadow) can run in bfloat16 on CPUs that have it
(AVX512-BF16, AMX) or float16 on GPUs, with the optimised images, Adam's state and the loss kept
in float32. `scripts/precision_check.py` measures the time and the PSNR of both
(`results/precision_check.md`: on the 2-core AMD EPYC with AVX512-BF16, an rMLE step through the
CIFAR relu32 head took 2.61-2.84 ms per image in bfloat16 against 4.78-5.01 in float32).
Training the attacker's decoders and shadows can do the same (`train_dtype`, in
`query_pairs.fit_pairs`): a copy computing in the lower type trains, its float32 weights go back.
"""

from mia_tf.errors import UsageError

COMPUTE_DTYPES = ("bfloat16", "float16")  # besides None: float32, as the model was built


def check_compute_dtype(compute_dtype, option="--compute-dtype"):
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
    policy = keras.DTypePolicy(f"mixed_{compute_dtype}")

    def clone(layer):
        if isinstance(layer, keras.Model):
            return computing_in(layer, compute_dtype)
        config = layer.get_config()
        config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except (TypeError, ValueError) as error:
        raise UsageError(f"cannot rebuild {model.name} to compute in {compute_dtype} ({error}): run it in "
                         f"float32 (leave out the compute dtype)") from None
    copy.set_weights(model.get_weights())
    return copy
