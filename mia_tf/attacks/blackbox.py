"""The black-box attacks in one entry point: inverse network, shadow model, or both (hybrid).

    result = blackbox_attack(oracle, source_sha256, head_structure, features, "mnist", "relu2",
                             BlackboxSettings(attack="hybrid", data="dist", queries=3_000))

- inverse (He et al., Algorithm 2; `inverse_network.py`): x0 = g(v), g trained on query pairs
  (with the best preset, a dozen probe queries first tell whether the head is affine; then g is
  the least-squares linear decoder; a decoder trained on noise has its guess's black and white
  points checked by queries, `levels_check.py`);
- shadow (the paper's Table 8; `shadow_model.py`): the white-box attack through a shadow head
  fitted to the query pairs: the authors' rMLE (`paper`), or the white-box `best` preset without
  a prior (`best`: exact least squares through an affine shadow, else 5000 cosine-scheduled
  steps in the pixel box);
- hybrid: rMLE through the shadow started from g(v) (the white-box `best` refinement settings),
  kept only if it gains on the attacker's own images: the first `VALIDATION_IMAGES` query pairs,
  whose answers are the real head's (no extra queries), are inverted with and without it. Both
  the decoder and the shadow trained on these pairs, so the check flatters each a little.

All three learn from one set of queries, kept in the cache, and reuse cached models.
"""

import dataclasses
import time

import numpy as np

from mia_tf import data as data_lib, distributed, precision
from mia_tf.attacks import inverse_network, levels_check, shadow_model, whitebox
from mia_tf.attacks.cache import rmle_checkpoint_dir, training_record
from mia_tf.attacks.query_pairs import attacker_pairs
from mia_tf.errors import UsageError

ATTACKS = ("inverse", "shadow", "hybrid")
VALIDATION_IMAGES = 100  # attacker images on which the hybrid checks that refinement helps


@dataclasses.dataclass(frozen=True)
class BlackboxSettings:
    attack: str = "inverse"
    # paper: the authors' decoders and rMLE; best: the decoder family built from any feature shape,
    # and the white-box best settings through the shadow
    preset: str = "paper"
    data: str = "dist"  # the attacker's images: same, dist or noise
    queries: int = None  # images sent to the oracle; None: the whole attacker set
    epochs: int = None  # overrides the decoder's and the shadow's epochs
    compute_dtype: str = None  # the rMLE's arithmetic through the shadow (`mia_tf.precision`); None: float32
    train_dtype: str = None  # the decoder's and the shadow's arithmetic in training (`fit_pairs`); None: float32

    def validate(self):
        if self.attack not in ATTACKS:
            raise UsageError(f"unknown attack {self.attack!r}: use one of {', '.join(ATTACKS)}")
        if self.data not in data_lib.ATTACKER_SETS:
            raise UsageError(f"unknown attacker data {self.data!r}: use one of {', '.join(data_lib.ATTACKER_SETS)}")
        decoder = self.decoder_settings()
        if self.queries is not None and (not isinstance(self.queries, int) or self.queries < decoder.batch_size):
            raise UsageError(f"--queries must be a whole number of at least one training batch "
                             f"({decoder.batch_size}), got {self.queries!r}")
        precision.check_compute_dtype(self.compute_dtype)
        precision.check_compute_dtype(self.train_dtype, "--train-dtype")
        return self

    def probes_affinity(self):
        """Whether the attack spends `inverse_network.probe_affine`'s queries (the best decoder's)."""
        return self.attack in ("inverse", "hybrid") and self.decoder_settings().family == "best"

    def checks_levels(self):
        """Whether the decoder's guess gets query-checked levels (`levels_check.py`): the best
        preset's decoder trained on noise, which never saw a natural image's levels."""
        return self.attack in ("inverse", "hybrid") and self.preset == "best" and self.data == "noise"

    def query_budget(self, victims):
        """The oracle's budget: `queries` attacker images, plus the affinity probe's queries and
        the levels check's for `victims` intercepted images."""
        if self.queries is None:
            return None
        return self.queries + (inverse_network.AFFINE_PROBE_QUERIES if self.probes_affinity() else 0) + \
            (levels_check.queries_needed(victims) if self.checks_levels() else 0)

    def decoder_settings(self):
        settings = dataclasses.replace(inverse_network.preset(self.preset), train_dtype=self.train_dtype)
        return settings if self.epochs is None else dataclasses.replace(settings, epochs=self._epochs())

    def shadow_settings(self):
        settings = shadow_model.ShadowSettings(train_dtype=self.train_dtype)
        return settings if self.epochs is None else dataclasses.replace(settings, epochs=self._epochs())

    def _epochs(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"epochs must be a positive whole number, got {self.epochs!r}")
        return self.epochs


@dataclasses.dataclass
class BlackboxResult:
    reconstruction: np.ndarray  # normalised space
    record: dict  # what was trained or loaded, from where, and the settings (for metrics.json)
    seconds: float  # training (unless cached) plus reconstruction


def blackbox_attack(oracle, source_sha256, head_structure, features, dataset, layer, settings=BlackboxSettings(),
                    data_dir=None, cache=None, strategy=None, verbose=0, log=print):
    """Reconstruct the inputs behind `features` with only query access (`oracle`) to the head.

    Args:
      oracle: `oracle.QueryOracle`; its budget must allow `settings.queries`.
      source_sha256: identifies what answers the oracle (model weights hash or `.tflite` SHA-256).
      head_structure: a Keras model with the head's structure (the shadow copies it; its weights
        are never read). Only the shadow and hybrid attacks use it.
      features: the intercepted features, (N, *feature shape).
      log: called with one line per trained or loaded model.
    """
    settings.validate()
    oracle.check_layer(head_structure.output.shape[1:], layer)
    common = dict(queries=settings.queries, data_dir=data_dir, cache=cache, strategy=strategy, verbose=verbose)
    record = {"attack": "blackbox", "method": settings.attack, "preset": settings.preset, "attacker_data": settings.data,
              "queries": settings.queries, "epochs": settings.epochs, "oracle": oracle.label}
    started = time.time()
    guess = None
    if settings.attack in ("inverse", "hybrid"):
        decoder_settings = settings.decoder_settings()
        linear = False
        if settings.probes_affinity():  # an affine oracle gets the least-squares linear decoder
            probe_images, _ = data_lib.attacker_set(dataset, settings.data, data_dir,
                                                    limit=2 * inverse_network.AFFINE_PROBES)
            record["affine_probe"] = inverse_network.probe_affine(oracle, probe_images)
            linear = bool(record["affine_probe"]["affine"])
            log(f"affine probe: {record['affine_probe']}")
        decoder, path, cached = inverse_network.trained_decoder(
            oracle, source_sha256, dataset, layer, settings.data, decoder_settings, linear=linear, **common)
        record.update(decoder=dataclasses.asdict(decoder_settings), decoder_family=decoder.name, decoder_cache=path,
                      decoder_from_cache=cached, decoder_training=training_record(path))
        log(f"decoder ({decoder.name}) {'loaded from' if cached else 'trained on ' + settings.data + ', saved to'} {path}")
        guess = inverse_network.invert(decoder, features)
        if settings.checks_levels() and decoder.name != "linear_decoder":  # a linear one inverts exactly
            guess, record["levels_check"] = levels_check.check_levels(oracle, features, guess, dataset)
            check = record["levels_check"]
            log(f"levels checked by {check['queries']} queries on {check['sampled_victims']} victims: "
                f"black {check['black']:g}, white {check['white']:g}")
    reconstruction = guess
    if settings.attack in ("shadow", "hybrid"):
        shadow_settings = settings.shadow_settings()
        shadow, path, cached = shadow_model.trained_shadow(
            oracle, head_structure, source_sha256, dataset, layer, settings.data, shadow_settings, **common)
        record.update(shadow=dataclasses.asdict(shadow_settings), shadow_cache=path, shadow_from_cache=cached,
                      shadow_training=training_record(path))
        log(f"shadow {'loaded from' if cached else 'trained on ' + settings.data + ', saved to'} {path}")
        rmle = whitebox.preset(settings.preset, dataset, layer, "none", features) if settings.attack == "shadow" else \
            whitebox.preset("best", dataset, layer, prior="decoder")
        rmle = dataclasses.replace(rmle, compute_dtype=settings.compute_dtype)
        record["rmle"] = dataclasses.asdict(rmle)
        refine = True
        if settings.attack == "hybrid":
            images, answers, _ = attacker_pairs(oracle, source_sha256, dataset, layer, settings.data, settings.queries,
                                                data_dir, cache)  # the cached answers: no new queries
            images, answers = images[:VALIDATION_IMAGES], np.asarray(answers[:VALIDATION_IMAGES], np.float32)
            gain = whitebox.refinement_gain(shadow, answers, inverse_network.invert(decoder, answers), images, rmle,
                                            dataset)
            refine = gain > 0
            record["refinement"] = {"validation_gain_db": round(gain, 3), "refined": refine,
                                    "validation_images": len(images)}
            log(f"refinement through the shadow {'gains' if refine else 'loses'} {abs(gain):.2f} dB on "
                f"{len(images)} of the attacker's images: {'refining' if refine else 'keeping the decoder guess'}")
        if refine:  # each worker of a multi-worker strategy on its share of the victims
            reconstruction = distributed.sharded(strategy, lambda victims, start: whitebox.whitebox_attack(
                shadow, victims, rmle, init=start, pixel_range=data_lib.pixel_range(dataset),
                progress=whitebox.progress_lines(log, "rMLE through the shadow", rmle.steps),
                checkpoint_dir=rmle_checkpoint_dir(cache)).reconstruction, features, guess)
    record["queries_made_this_run"] = oracle.queries
    return BlackboxResult(reconstruction, record, time.time() - started)
