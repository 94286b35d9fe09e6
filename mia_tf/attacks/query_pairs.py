"""Learning from query answers: ask an oracle once per input, keep the answers, fit on the pairs.

Both black-box attacks learn from pairs (x, f1(x)) the oracle answered: the inverse network fits
f1(x) -> x, the shadow model x -> f1(x). `collect_answers` asks once per attacker image and can keep
the answers on disk; `fit_pairs` trains any Keras model on pairs through tf.data, under any
tf.distribute strategy, resuming after a kill from its per-epoch backup, in float32 or (a settings'
`train_dtype`) with the layers computing in bfloat16 or float16.
"""

import os

import numpy as np

from mia_tf import distributed
from mia_tf.backup import backup_and_restore
from mia_tf.errors import UsageError


def collect_answers(oracle, images, path=None, batch_size=1024):
    """The oracle's features of the attacker's images, each image queried once.

    With `path`, the features are kept in a float16 `.npy` there (memory-mapped, so a `same` set
    of CIFAR-10 at relu22, 50,000 x 32,768 values, costs 3.3 GB of disk, not of memory) and
    reused by the next run; the file appears only once every query is answered.
    """
    from mia_tf.io import atomic_path

    if path is not None and os.path.exists(path):
        features = np.load(path, mmap_mode="r")
        if features.shape == (len(images), *oracle.feature_shape):
            return features
    if path is None:
        return oracle(images)
    with atomic_path(path) as tmp:
        features = np.lib.format.open_memmap(tmp, "w+", np.float16, (len(images), *oracle.feature_shape))
        for first in range(0, len(images), batch_size):
            features[first:first + batch_size] = oracle(images[first:first + batch_size])
        features.flush()
        del features
    return np.load(path, mmap_mode="r")


def pair_batches(inputs, targets, batch_size, seed, epoch_examples=0, epoch=0):
    """tf.data of (inputs, targets) batches read from (possibly memory-mapped) arrays, in a random
    order drawn from (seed, epoch), so a resumed run sees what an uninterrupted one saw; with
    `epoch_examples` (0: all), each epoch is a random subset of at most that many pairs."""
    import tensorflow as tf

    count = len(targets)
    per_epoch = min(count, epoch_examples) if epoch_examples else count

    def batches():
        order = np.random.default_rng([seed, epoch]).permutation(count)[:per_epoch]
        for first in range(0, per_epoch, batch_size):
            index = np.sort(order[first:first + batch_size])  # sorted reads are kinder to a memmap
            yield np.asarray(inputs[index], np.float32), np.asarray(targets[index], np.float32)

    signature = (tf.TensorSpec((None, *inputs.shape[1:]), tf.float32),
                 tf.TensorSpec((None, *targets.shape[1:]), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # Keras needs the length to schedule epochs of a generator.
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-per_epoch // batch_size))).prefetch(2)


def fit_pairs(model, inputs, targets, settings, strategy=None, backup_dir=None, seed=0, verbose=0, callbacks=(),
              loss="mse", metrics=()):
    """Train `model` so that model(inputs) ~ targets (MSE unless `loss` says otherwise), Adam (the
    authors' epsilon and amsgrad) with the learning rate halved every `settings.halve_every` epochs.

    A decoder learns features -> images, a shadow head images -> features, a query-free shadow
    (through the frozen tail) images -> labels with cross-entropy.

    Args:
      model: built under `strategy.scope()` when a strategy is given.
      inputs, targets: the pairs; arrays or memory maps (see `collect_answers`).
      settings: anything with epochs, batch_size, learning_rate and halve_every; an
        `epoch_examples` field (0: a full pass) caps the pairs seen per epoch, so training on a
        large set costs what it costs on a small one; a `train_dtype` field (bfloat16 or
        float16; None: float32) trains a copy whose layers compute in that type (weights, Adam
        and the loss stay float32; `mia_tf.precision.computing_in`) and copies its weights back.
      strategy: a tf.distribute strategy (see `mia_tf.distributed.make_strategy`), or None.
      backup_dir: with it, weights, optimizer and epoch are saved after every epoch and a killed
        run resumes there.
      metrics: ("accuracy",) to track top-1 accuracy of integer labels besides the loss.
    Returns:
      the Keras history dict (loss and `metrics` per epoch; a resumed run: the epochs it trained).
    """
    import keras

    from mia_tf import precision

    if len(inputs) != len(targets):
        raise UsageError(f"{len(inputs)} inputs but {len(targets)} targets: pairs must match")
    train_dtype = getattr(settings, "train_dtype", None)
    with distributed.scope(strategy):
        # A copy computing in train_dtype trains; its weights (kept float32) go back to `model` after.
        # Keras losses take predictions in float32, so a custom loss sees float32 too.
        trained = precision.computing_in(model, train_dtype)
        optimizer = keras.optimizers.Adam(settings.learning_rate, epsilon=1e-3, amsgrad=True)
        if train_dtype == "float16":  # float16 gradients underflow without loss scaling (bfloat16's range is float32's)
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        trained.compile(optimizer=optimizer)

    def halving(epoch, _lr=None):
        return settings.learning_rate * 0.5 ** (epoch // settings.halve_every)

    extra = [backup_and_restore(backup_dir)] if backup_dir else []
    history = distributed.fit(
        trained, lambda epoch: pair_batches(inputs, targets, settings.batch_size, seed,
                                            getattr(settings, "epoch_examples", 0), epoch),
        settings.epochs, loss, strategy, [*extra, keras.callbacks.LearningRateScheduler(halving), *callbacks],
        verbose, accuracy="accuracy" in metrics)
    if trained is not model:
        model.set_weights(trained.get_weights())
    return history


def attacker_pairs(oracle, space, attacker_data, queries=None, cache=None):
    """(attacker images, the oracle's answers, queries made now) for an attack: the first
    `queries` (None: all) of `attacker_data` (`AttackerData`), the answers kept in the cache.

    The answers file is keyed by what answers (`oracle.fingerprint`), the split, the attacker data
    and the query count, so the inverse network and the shadow model of one split share one set
    of queries.
    """
    from mia_tf.attacks import cache as cache_lib

    data = attacker_data.take(queries)
    if queries is not None and len(data) < queries:  # else a larger budget would silently mean fewer
        raise UsageError(f"a query budget of {queries} is more than the {len(data)} images of the attacker's data "
                         f"({attacker_data.cache_key}): give at most {len(data)} queries, or none for all")
    fields = {"source": oracle.fingerprint, "dataset": space.cache_name, "layer": oracle.layer,
              "data": attacker_data.cache_key, "queries": queries}
    before = oracle.queries
    answers = collect_answers(oracle, data.images, cache_lib.entry_path("pairs", fields, cache, suffix=".npy"))
    return data.images, answers, oracle.queries - before
