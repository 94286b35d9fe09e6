"""What every attack verb shares: pick the target and victims, then score and write the results.

An attack run writes into its output directory, each file atomically:
- metrics.json: per-image and summary PSNR / SSIMs, the settings, the model's weight hash;
- grid.png: originals in the top row, reconstructions below (the first 10 victims);
- reconstructions.npz: the reconstructions in [0, 1] and the victims' test indices.
"""

import contextlib
import dataclasses
import os
import platform

import numpy as np

from mia_tf import data as data_lib
from mia_tf import metrics as metrics_lib
from mia_tf import models as models_lib
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.io import atomic_path, write_json
from mia_tf.report import save_grid


@dataclasses.dataclass
class Target:
    """A split model and the victims whose features the attacker observes.

    Victims come from the shipped sample (`indices`, `images`), or the features come from a
    server's intercept log; then `images` are the originals only if the user named them.
    """

    model: object
    head: object
    tail: object
    dataset: str
    model_label: str
    layer: str
    indices: np.ndarray  # test indices of the victims; None when the originals are unknown
    images: np.ndarray  # victims, uint8; None when the originals are unknown
    observed: np.ndarray = None  # features read from an intercept log, instead of computed

    def features(self, batch_size=100):
        if self.observed is not None:
            return self.observed
        inputs = data_lib.normalize(self.images, self.dataset)
        return self.head.predict(inputs, batch_size=batch_size, verbose=0)


def prepare(dataset, model, layer, images, features_log=None):
    """Load the model, split it at `layer`, and pick the victims (from the shipped sample).

    Args:
      images: victims (see `data.parse_victims`); with `features_log`, the originals of the
        logged features in arrival order (to score against), or None when they are unknown.
      features_log: an intercept log of `python -m mia_tf serve` to take the features from.
    """
    from mia_tf.intercept_log import read_features
    from mia_tf.split import split

    if images is None and features_log is None:
        images = "paper10"
    indices = None if images is None else data_lib.parse_victims(images, dataset)  # before the slow load
    observed = None if features_log is None else read_features(features_log, layer, allow_refused=indices is None)[0]
    if observed is not None and indices is not None and len(indices) != len(observed):
        raise UsageError(f"{features_log} holds {len(observed)} feature tensors but --images names "
                         f"{len(indices)} originals: name the images the edge sent, in order")
    keras_model, dataset, label = models_lib.resolve_model(model, dataset)
    head, tail = split(keras_model, layer)
    victim_images = None if indices is None else data_lib.victims(dataset, images)[1]
    return Target(keras_model, head, tail, dataset, label, layer, indices, victim_images, observed)


def add_split_arguments(parser, victims="0-999"):
    """Options every ablation script in scripts/ takes: the split, the victims, the data, the cache, the output."""
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--layer", default="relu2")
    parser.add_argument("--images", default=victims, help="victims (test images)")
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"))
    parser.add_argument("--cache-dir", default=None, help="the attack cache (default $MIA_TF_CACHE, else ~/.cache/mia_tf)")
    parser.add_argument("--out", required=True, help="the Markdown file to write")


def result_record(result):
    """metrics.json's record of a library `AttackResult`: what it did, its settings, what it
    trained or loaded and decided (its provenance), and its seconds (`timings` splits them)."""
    record = {"attack": result.attack, "method": result.method, "preset": result.preset, "settings": result.settings,
              **result.provenance, "seconds": result.seconds["total"], "timings": result.seconds,
              "training_seconds_cached": result.training_seconds_cached}
    if result.stages and record.get("refinement") is not None and result.metrics is not None:
        record["refinement"] = {**record["refinement"], "victims_before_levels": result.metrics["stages"]["before_levels"]}
    return record


@contextlib.contextmanager
def attack_progress(label, steps, victims, batch_size, target, logdir):
    """A progress bar over an attack's optimisation steps (redrawn on a terminal; into a log file a
    line every 30 s at most), the running PSNR against the victims when they are known, and the
    same as TensorBoard scalars when `logdir` is given. Yields the `AttackContext.progress` callback."""
    import sys

    from tqdm import tqdm

    board = TensorBoardLog(logdir)
    originals = None if target.images is None else target.images / 255.0
    space = ImageSpace.of_dataset(target.dataset)
    total = steps * -(-victims // batch_size)
    with tqdm(total=total, desc=label, unit="step", file=sys.stderr, mininterval=0.1 if sys.stderr.isatty() else 30,
              ascii=not sys.stderr.isatty()) as bar:
        def progress(event):
            done = event.first // batch_size * steps + event.step
            scalars = {"loss": event.loss}
            if originals is not None:
                part = originals[event.first:event.first + len(event.reconstruction)]
                scalars["psnr"] = metrics_lib.psnr(part, space.denormalize(event.reconstruction)).mean()
            bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items()}, refresh=False)
            bar.update(max(0, done - bar.n))
            board.scalars(done, **scalars)

        yield progress
        bar.update(bar.total - bar.n)


def default_out(attack, target, setting):
    return os.path.join("runs", f"{attack}_{target.dataset}_{target.layer}_{setting}")


def write_results(out, target, reconstructions, meta, scores=None):
    """Score `reconstructions` (normalised) against the victims (or take their `scores`, from
    `mia_tf.score`), write the outputs, return metrics.

    Without originals (features from a log, images not named) nothing is scored: the record
    then has no "summary", and the grid shows the reconstructions alone.
    """
    recovered = data_lib.denormalize(reconstructions, target.dataset)
    originals = None
    if target.images is not None:
        originals = target.images.astype(np.float32) / 255.0
        scores = {key: value for key, value in (scores or metrics_lib.evaluate(originals, recovered)).items()
                  if key in ("per_image", "summary")}
        scores["per_image"] = {**scores["per_image"], "test_index": target.indices.tolist()}
    else:
        scores = {}
    record = {
        **meta,
        "dataset": target.dataset,
        "model": target.model_label,
        "model_weights_sha256": models_lib.weights_sha256(target.model),
        "layer": target.layer,
        "victims": len(recovered),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        **scores,
    }
    os.makedirs(out, exist_ok=True)
    save_grid(os.path.join(out, "grid.png"), originals, recovered)
    with atomic_path(os.path.join(out, "reconstructions.npz")) as tmp:
        np.savez_compressed(tmp, reconstructions=recovered,
                            test_index=np.array([] if target.indices is None else target.indices))
    write_json(os.path.join(out, "metrics.json"), record)  # last: its presence marks a finished run
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
            if originals is not None:
                tf.summary.image("originals", originals, step=0, max_outputs=max_images)
            tf.summary.image("reconstructions", reconstructions, step=0, max_outputs=max_images)
        self.writer.flush()


def score_rmle_checkpoint(checkpoint, dataset, images):
    """(steps done, summary of PSNR / SSIM) of the images held in an rMLE checkpoint."""
    _, truth, _ = data_lib.victims(dataset, images)
    with np.load(checkpoint) as saved:
        current, done = saved["x"], int(saved["done"])
    if current.shape != truth.shape[:1] + tuple(data_lib.spec(dataset).image_shape):
        raise UsageError(f"{checkpoint} holds images of shape {current.shape}, not {len(truth)} {dataset} "
                         f"images: give the --images the run was started with")
    pixels = data_lib.denormalize(current, dataset)
    return done, metrics_lib.evaluate(truth.astype(np.float32) / 255.0, pixels)["summary"]
