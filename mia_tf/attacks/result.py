"""What every attack returns: one typed `AttackResult`, and `score` to measure it against the truth.

    result = mia_tf.whitebox_attack(head, features, settings, space=space)
    result = mia_tf.score(result, victims)      # victims: uint8 pixels, or normalised floats
    print(result.table())
    open("metrics.json", "w").write(result.to_json())
"""

import dataclasses
import json

import numpy as np

from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """An attack's reconstructions and how they were made.

    reconstructions: in the space's normalised form, one per victim (`pixels()` in [0, 1]).
    seconds: {"training": models trained by this run, "attack": the rest, "total"}.
    training_seconds_cached: what the models it loaded from the cache took to train, when known.
    provenance: what was trained or loaded (cache paths, training records) and every decision the
      attack made on its own data (affinity, refinement, levels), for metrics.json.
    metrics: None until `score`: {"per_image": {...}, "summary": {...}} of PSNR and SSIM, and
      under "stages" the mean of each metric for each of `stages`.
    stages: reconstructions the attack made on the way (say "before_levels"), normalised; not in
      the JSON.
    """

    attack: str
    method: str
    preset: str
    reconstructions: np.ndarray
    space: ImageSpace
    settings: dict
    seconds: dict
    provenance: dict
    training_seconds_cached: float = 0.0
    metrics: dict | None = None
    stages: dict = dataclasses.field(default_factory=dict)

    def pixels(self):
        return self.space.denormalize(self.reconstructions)

    def to_dict(self):
        """Everything but the reconstructions, as JSON-ready values."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("reconstructions", "stages")}
        fields["space"] = dataclasses.asdict(self.space)
        fields["victims"] = len(self.reconstructions)
        return json.loads(json.dumps(fields, default=_plain))

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def table(self):
        """The summary metrics (mean and 95% interval) as a text table, or the timings if unscored."""
        from mia_tf.report import format_table, metrics_table

        if self.metrics is None:
            return format_table(["attack", "method", "preset", "victims", "seconds"],
                                [[self.attack, self.method, self.preset, len(self.reconstructions),
                                  self.seconds["total"]]])
        return metrics_table(self.metrics["summary"])


def score(result: AttackResult, truth: np.ndarray, normalized=None) -> AttackResult:
    """`result` with per-image and summary PSNR / SSIM against the victims' true images, one per
    reconstruction: uint8 pixels, or floats normalised in the result's space (normalized=True) or
    pixels in [0, 1] (normalized=False)."""
    from mia_tf import metrics as metrics_lib

    truth = result.space.check_images(truth, "truth", normalized)
    if len(truth) != len(result.reconstructions):
        raise UsageError(f"truth has {len(truth)} images for {len(result.reconstructions)} reconstructions")
    pixels = result.space.denormalize(truth)
    scores = metrics_lib.evaluate(pixels, result.pixels())
    if result.stages:
        scores["stages"] = {stage: {name: round(summary["mean"], 4) for name, summary in metrics_lib.evaluate(
            pixels, result.space.denormalize(images))["summary"].items()} for stage, images in result.stages.items()}
    return dataclasses.replace(result, metrics=scores)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def timed_seconds(started, records):
    """{"training", "attack", "total"} seconds from a start time and the training records of
    the models an attack used (those loaded from the cache cost this run nothing)."""
    import time

    total = time.time() - started
    training = sum(r["training"]["seconds"] for r in records if not r.get("from_cache") and r.get("training"))
    return {"training": round(training, 1), "attack": round(total - training, 1), "total": round(total, 1)}


def cached_training_seconds(records):
    """What the models an attack loaded from the cache took to train, where their record says."""
    return round(sum(r["training"]["seconds"] for r in records if r.get("from_cache") and r.get("training")), 1)
