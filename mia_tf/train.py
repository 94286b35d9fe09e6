"""Train the zoo's target models: a tf.data pipeline, tf.distribute, and resume after a kill.

The recipe follows the authors' code (Adam lr 1e-3, epsilon 1e-3, amsgrad, softmax cross-entropy,
the paper's augmentation for CIFAR-10) with one documented change: the learning rate follows a
cosine decay over the run instead of being halved every 20 epochs, and MNIST gets small random
shifts. Both changes exist to clear the authors' accuracies (99.14 % / 87.19 %) reliably.

Resume: `mia_tf.backup` (Keras' BackupAndRestore, saving all-or-nothing) writes weights, optimizer
state and the epoch to the checkpoint directory after every epoch; running the same command again
continues from there.
"""

import dataclasses
import math
import os
import platform
import shutil
import time

import numpy as np

from mia_tf import data as data_lib
from mia_tf import distributed
from mia_tf import models as models_lib
from mia_tf.backup import backup_and_restore
from mia_tf.errors import UsageError
from mia_tf.io import atomic_path, sha256_file, write_json


@dataclasses.dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    learning_rate: float
    flip: bool  # random horizontal flip
    rotation_degrees: float
    translation: float  # fraction of height and width
    zoom: float  # scale in 1 +- zoom
    cutout: int = 0  # side in pixels of a square set to the mean colour at a random place; 0 = off
    weight_decay: float = 0.0  # decoupled weight decay of Adam (AdamW style); 0 = off


RECIPES = {
    "mnist": Recipe(epochs=30, batch_size=32, learning_rate=1e-3, flip=False,
                    rotation_degrees=0.0, translation=0.08, zoom=0.0),
    "cifar10": Recipe(epochs=50, batch_size=32, learning_rate=1e-3, flip=True,
                      rotation_degrees=10.0, translation=0.1, zoom=0.1),
}


def make_augmenter(recipe, seed=0):
    """A Keras layer stack applying the recipe's random augmentation to [0, 1] image batches."""
    import keras
    from keras import layers

    steps = []
    if recipe.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if recipe.rotation_degrees:
        steps.append(layers.RandomRotation(recipe.rotation_degrees / 360.0, seed=seed + 1))
    if recipe.translation:
        steps.append(layers.RandomTranslation(recipe.translation, recipe.translation, seed=seed + 2))
    if recipe.zoom:
        steps.append(layers.RandomZoom((-recipe.zoom, recipe.zoom), seed=seed + 3))

    return keras.Sequential(steps, name="augment") if steps else None


def cutout(x, size, seed=None):
    """Set a size x size square at a random centre of each image (clipped at the border) to 0.

    Applied to normalised images, 0 is the data set's mean colour (DeVries and Taylor 2017).
    """
    import tensorflow as tf

    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    cy = tf.random.uniform([batch, 1, 1, 1], 0, height, dtype=tf.int32, seed=seed)
    cx = tf.random.uniform([batch, 1, 1, 1], 0, width, dtype=tf.int32, seed=None if seed is None else seed + 1)
    ys = tf.range(height)[None, :, None, None]
    xs = tf.range(width)[None, None, :, None]
    inside = (tf.abs(ys - cy) <= size // 2) & (tf.abs(xs - cx) <= size // 2)
    inside &= (ys - cy < size - size // 2) & (xs - cx < size - size // 2)  # exactly `size` wide when not clipped
    return tf.where(inside, tf.zeros_like(x), x)


def make_dataset(images, labels, dataset, batch_size, augmenter=None, shuffle=False, seed=0, cutout_size=0):
    """tf.data pipeline: uint8 images -> (augmented) normalised float batches with int labels.

    Batches are prepared in order, one at a time (prefetched behind training): the augmentation's
    random draws then come in a fixed order, so a run repeats exactly and `multiworker` trains
    the very weights `mirrored` does. A parallel map drew them in whatever order its threads ran.
    """
    import tensorflow as tf

    s = data_lib.spec(dataset)
    mean, std = tf.constant(s.mean, tf.float32), tf.constant(s.std, tf.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def prepare(x, y):
        x = tf.cast(x, tf.float32) / 255.0
        if augmenter is not None:
            x = augmenter(x, training=True)
        x = (x - mean) / std
        return (cutout(x, cutout_size, seed) if cutout_size else x), y

    return ds.map(prepare).prefetch(tf.data.AUTOTUNE)


def cosine_learning_rate(recipe, epochs):
    def schedule(epoch, _lr=None):
        return recipe.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))

    return schedule


class EpochTimer:
    """Adds `epoch_seconds` to each epoch's logs, so history.csv records time across resumes."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.time()

            def on_epoch_end(self, epoch, logs=None):
                if logs is not None:
                    logs["epoch_seconds"] = round(time.time() - self.started, 1)

        return _Timer()


def total_epoch_seconds(history_csv):
    """Sum of epoch_seconds over every epoch logged in history.csv (resumed runs append)."""
    import csv

    with open(history_csv) as f:
        return round(sum(float(row.get("epoch_seconds") or 0) for row in csv.DictReader(f)), 1)


def compile_for_training(model, learning_rate, weight_decay=0.0):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, epsilon=1e-3, amsgrad=True, weight_decay=weight_decay or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def save_model_weights(model, zoo_name, path):
    """Write the model's weights alone and return that bare copy of the model (on one device,
    outside any strategy): a compiled model's file would also hold the optimizer's three moment
    tensors per weight (four times the size), which nobody loading a zoo model needs."""
    bare = models_lib.ZOO[zoo_name].build()
    bare.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        bare.save_weights(tmp)
    return bare


def accuracy(model, images, labels, dataset, batch_size=500):
    """Top-1 accuracy of `model` on uint8 images."""
    logits = model.predict(data_lib.normalize(images, dataset), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def train(dataset, out=None, epochs=None, batch_size=None,
          strategy="default", data_dir=None, limit=None, validation_freq=5, seed=0, verbose=1,
          callbacks=(), init_weights=None, learning_rate=None, weight_decay=None, cutout=None):
    """Train the zoo model for `dataset`; returns the report dict also written beside the weights.

    Everything goes into the directory `out` (default runs/train_<dataset>): the weights
    `<model>.weights.h5` with its report `.json` and `.history.csv`, and `checkpoints/`, from which
    running again with the same `out` resumes. Never into the installed package: to ship new zoo
    weights, copy the three files into mia_tf/zoo/ by hand.

    `strategy` is a name (see `mia_tf.distributed.make_strategy`) or a tf.distribute strategy
    already made; under multiworker only the chief writes into `out` (the others into a temporary
    directory).

    `callbacks` (Keras callbacks, for example TensorBoard) run after the built-in ones, so they
    see each epoch's checkpoint already written. `init_weights` (a .weights.h5 of the same model)
    starts from trained weights instead of random ones: a warm restart of the cosine schedule,
    from `learning_rate` (default the recipe's) down to zero over `epochs`. `weight_decay` and
    `cutout` override the recipe's regularisation.
    """
    import keras

    spec = data_lib.spec(dataset)
    recipe = RECIPES[spec.name]
    if learning_rate is not None:
        if not learning_rate > 0:
            raise UsageError(f"learning rate must be positive, got {learning_rate}")
        recipe = dataclasses.replace(recipe, learning_rate=float(learning_rate))
    if weight_decay is not None:
        if not 0 <= weight_decay < 1:
            raise UsageError(f"weight decay must be in [0, 1), got {weight_decay}")
        recipe = dataclasses.replace(recipe, weight_decay=float(weight_decay))
    if cutout is not None:
        if not isinstance(cutout, int) or not 0 <= cutout <= min(spec.image_shape[:2]):
            raise UsageError(f"cutout must be a whole number of pixels from 0 to {min(spec.image_shape[:2])}, got {cutout!r}")
        recipe = dataclasses.replace(recipe, cutout=cutout)
    if init_weights is not None and not os.path.exists(init_weights):
        raise UsageError(f"--init-weights {init_weights} not found: give a .weights.h5 of the {spec.name} zoo model")
    epochs = epochs or recipe.epochs
    batch_size = batch_size or recipe.batch_size
    if epochs < 1 or batch_size < 1:
        raise UsageError("epochs and batch size must be positive integers")
    zoo_name = models_lib.DEFAULT_MODEL[spec.name]
    out_dir = out or os.path.join("runs", f"train_{spec.name}")
    if str(out_dir).endswith(".h5") or os.path.isfile(out_dir):
        raise UsageError(f"out is a directory (weights, report and checkpoints go inside it), got the file {out_dir}")

    # made before any other TensorFlow work (multiworker needs that), and before data is read
    dist = distributed.make_strategy(strategy) if isinstance(strategy, str) else strategy
    (out_dir,) = distributed.writable_dirs(dist, out_dir)  # a non-chief worker writes into a temporary directory
    out = os.path.join(out_dir, f"{zoo_name}.weights.h5")
    checkpoint_dir = os.path.join(out_dir, "checkpoints")
    x_train, y_train = data_lib.load(spec.name, "train", data_dir)
    x_test, y_test = data_lib.load(spec.name, "test", data_dir)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]

    keras.utils.set_random_seed(seed)
    global_batch = batch_size * dist.num_replicas_in_sync
    train_ds = make_dataset(x_train, y_train, spec.name, global_batch, make_augmenter(recipe, seed),
                            shuffle=True, seed=seed, cutout_size=recipe.cutout)
    test_ds = make_dataset(x_test, y_test, spec.name, 500)
    with dist.scope():
        model = models_lib.ZOO[zoo_name].build()
        if init_weights is not None:
            try:
                model.load_weights(init_weights)
            except (ValueError, OSError) as e:
                raise UsageError(f"cannot start from {init_weights} ({str(e)[:200]}): it must hold weights of "
                                 f"the {zoo_name} model") from None
        compile_for_training(model, recipe.learning_rate, recipe.weight_decay)

    os.makedirs(checkpoint_dir, exist_ok=True)
    history_csv = os.path.join(checkpoint_dir, "history.csv")
    callbacks = [
        backup_and_restore(os.path.join(checkpoint_dir, "backup")),
        keras.callbacks.LearningRateScheduler(cosine_learning_rate(recipe, epochs)),
        EpochTimer(),
        keras.callbacks.CSVLogger(history_csv, append=True),
        *callbacks,
    ]
    started = time.time()
    distributed.fit(model, train_ds, epochs, model.loss, dist, callbacks, verbose, accuracy=True,
                    validation=test_ds, validation_freq=validation_freq)
    seconds = time.time() - started

    trained = save_model_weights(model, zoo_name, out)
    report = {
        "dataset": spec.name,
        "model": zoo_name,
        "weights": os.path.basename(out),
        "weights_sha256": sha256_file(out),
        "test_accuracy": accuracy(trained, x_test, y_test, spec.name),
        "test_images": int(len(y_test)),
        "train_images": int(len(y_train)),
        "recipe": dataclasses.asdict(recipe) | {"epochs": epochs, "batch_size": batch_size},
        "init_weights": None if init_weights is None else {"file": os.path.basename(init_weights),
                                                            "sha256": sha256_file(init_weights)},
        "strategy": strategy if isinstance(strategy, str) else type(strategy).__name__,
        "replicas": int(dist.num_replicas_in_sync),
        "seconds_this_run": round(seconds, 1),
        "seconds_all_epochs": total_epoch_seconds(history_csv),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
    }
    write_json(str(out).replace(".weights.h5", ".json"), report)
    with atomic_path(str(out).replace(".weights.h5", ".history.csv")) as tmp:
        shutil.copyfile(history_csv, tmp)  # per-epoch loss, accuracy and seconds, beside the weights
    return report
