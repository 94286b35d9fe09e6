"""What every attack verb shares: pick the target and victims, then score and write the results.

An attack run writes into its output directory, each file atomically:
- metrics.json: per-image and summary PSNR / SSIMs, the settings, the model's weight hash;
- grid.png: originals in the top row, reconstructions below (the first 10 victims);
- reconstructions.npz: the reconstructions in [0, 1] and the victims' test indices.
"""

import dataclasses
import os
import platform

import numpy as np

from mia_tf import data as data_lib
from mia_tf import metrics as metrics_lib
from mia_tf import models as models_lib
from mia_tf.errors import UsageError
from mia_tf.io import atomic_path, write_json
from mia_tf.report import save_grid


@dataclasses.dataclass
class Target:
    """A split model and the victims whose features the attacker observes."""

    model: object
    head: object
    tail: object
    dataset: str
    model_label: str
    layer: str
    indices: np.ndarray  # test indices of the victims
    images: np.ndarray  # victims, uint8
    inputs: np.ndarray  # victims, normalised

    def features(self, batch_size=100):
        return self.head.predict(self.inputs, batch_size=batch_size, verbose=0)


def prepare(dataset, model, layer, images):
    """Load the model, split it at `layer`, and pick the victims (from the shipped sample)."""
    from mia_tf.split import split

    dataset = data_lib.spec(dataset).name
    if model in models_lib.ZOO and models_lib.ZOO[model].dataset != dataset:
        raise UsageError(f"model {model} is for {models_lib.ZOO[model].dataset}, not {dataset}: "
                         f"pass --dataset {models_lib.ZOO[model].dataset}")
    indices = data_lib.parse_victims(images, dataset)  # checked before the slow model load
    keras_model, _, label = models_lib.load_model(model, dataset)
    expected = (None, *data_lib.spec(dataset).image_shape)
    if tuple(keras_model.input_shape) != expected:
        raise UsageError(f"model {label} takes inputs {keras_model.input_shape}, but {dataset} images are {expected}")
    head, tail = split(keras_model, layer)
    _, victim_images, _ = data_lib.victims(dataset, images)
    return Target(keras_model, head, tail, dataset, label, layer, indices, victim_images,
                  data_lib.normalize(victim_images, dataset))


def default_out(attack, target, setting):
    return os.path.join("runs", f"{attack}_{target.dataset}_{target.layer}_{setting}")


def write_results(out, target, reconstructions, meta):
    """Score `reconstructions` (normalised) against the victims, write the outputs, return metrics."""
    originals = target.images.astype(np.float32) / 255.0
    recovered = data_lib.denormalize(reconstructions, target.dataset)
    scores = metrics_lib.evaluate(originals, recovered)
    scores["per_image"]["test_index"] = target.indices.tolist()
    record = {
        **meta,
        "dataset": target.dataset,
        "model": target.model_label,
        "model_weights_sha256": models_lib.weights_sha256(target.model),
        "layer": target.layer,
        "victims": len(target.indices),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        **scores,
    }
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "metrics.json"), record)
    save_grid(os.path.join(out, "grid.png"), originals, recovered)
    with atomic_path(os.path.join(out, "reconstructions.npz")) as tmp:
        np.savez_compressed(tmp, reconstructions=recovered, test_index=target.indices)
    return record


class TensorBoardLog:
    """Scalars (loss, running PSNR) during an attack and images at the end, if a logdir is given."""

    def __init__(self, logdir):
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(logdir) if logdir else None

    def scalars(self, step, **values):
        if self.writer is None:
            return
        import tensorflow as tf

        with self.writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)

    def images(self, originals, reconstructions, max_images=10):
        if self.writer is None:
            return
        import tensorflow as tf

        with self.writer.as_default():
            tf.summary.image("originals", originals, step=0, max_outputs=max_images)
            tf.summary.image("reconstructions", reconstructions, step=0, max_outputs=max_images)
        self.writer.flush()
