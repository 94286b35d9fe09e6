"""The black-box attacks in one entry point: inverse network, shadow model, or both (hybrid).

    data = mia_tf.attacker_set("mnist", "dist")         # or AttackerData.from_images(yours, space)
    result = blackbox_attack(oracle, features, BlackboxSettings(attack="hybrid", queries=3_000),
                             attacker_data=data, space=space, structure=head_structure)

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
from typing import TYPE_CHECKING

import numpy as np

from mia_tf import distributed, precision
from mia_tf.attacks import inverse_network, levels_check, shadow_model, whitebox
from mia_tf.attacks.cache import model_record
from mia_tf.attacks.context import DEFAULT_CONTEXT
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.attacks.query_pairs import attacker_pairs
from mia_tf.attacks.result import AttackResult, cached_training_seconds, timed_seconds
from mia_tf.attacks.zoo_splits import zoo_split
from mia_tf.errors import UsageError
from mia_tf.image_space import check_space_and_data

if TYPE_CHECKING:  # names in the public API's annotations
    import keras

    from mia_tf.attacks.context import AttackContext
    from mia_tf.image_space import AttackerData, ImageSpace

ATTACKS = ("inverse", "shadow", "hybrid")
PRESETS = ("paper", "best")
VALIDATION_IMAGES = 100  # attacker images on which the hybrid checks that refinement helps
# lambda_TV of the best preset's zero-start rMLE through a Table 8 shadow, as a multiple of the
# intercepted features' mean square, chosen on held-out attacker images that no shadow learnt from
# (experiments/held_out_tuning/: dist images 8000-8099 sent to the head, rebuilt through the cells'
# shadows). Through shadows fitted to natural images, MNIST relu2 wants the white-box rule's 0.064
# (18.91 dB, 17.28 at 0.23), the CIFAR splits more smoothing (relu22 22.28 at 0.23, 22.20 at 0.064;
# relu32 15.95 at 0.23, 15.58 at 0.064); any other split takes the white-box rule, the better on
# average over the three. A shadow fitted to noise explains natural images' features less well and
# wants more smoothing (MNIST relu2: 11.71 at 0.23, 10.93 at 0.064).
SHADOW_TV_PER_FEATURE_ENERGY_AT_ZOO_SPLITS = {("cifar10", "relu22"): 0.23, ("cifar10", "relu32"): 0.23}
SHADOW_TV_PER_FEATURE_ENERGY_AFTER_NOISE = 0.23


def shadow_tv_per_feature_energy(zoo, attacker_data):
    """The multiple of the features' mean square that sets lambda_TV through a shadow (see above)."""
    if attacker_data.synthetic:
        return SHADOW_TV_PER_FEATURE_ENERGY_AFTER_NOISE
    return SHADOW_TV_PER_FEATURE_ENERGY_AT_ZOO_SPLITS.get(zoo, whitebox.BEST_TV_PER_FEATURE_ENERGY)


@dataclasses.dataclass(frozen=True)
class BlackboxSettings:
    attack: str = "inverse"
    # paper: the authors' decoders and rMLE; best: the decoder family built from any feature shape,
    # and the white-box best settings through the shadow
    preset: str = "paper"
    queries: int = None  # attacker images sent to the oracle; None: all of them
    epochs: int = None  # overrides the decoder's and the shadow's epochs
    compute_dtype: str = None  # the rMLE's arithmetic through the shadow (`mia_tf.precision`); None: float32
    train_dtype: str = None  # the decoder's and the shadow's arithmetic in training (`fit_pairs`); None: float32
    steps: int = None  # overrides the rMLE's steps through the shadow (the hybrid's validation too); None: the preset's

    def __post_init__(self):
        """Choices and ranges are checked when settings are built, before any query."""
        if self.attack not in ATTACKS:
            raise UsageError(f"unknown attack {self.attack!r}: use one of {', '.join(ATTACKS)}")
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}: use one of {', '.join(PRESETS)}")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive whole number, got {value!r}")
        decoder = self.decoder_settings()
        if self.queries is not None and (not isinstance(self.queries, int) or self.queries < decoder.batch_size):
            raise UsageError(f"queries must be a whole number of at least one training batch "
                             f"({decoder.batch_size}), got {self.queries!r}")
        precision.check_compute_dtype(self.compute_dtype)
        precision.check_compute_dtype(self.train_dtype, "train_dtype")

    def probes_affinity(self):
        """Whether the attack spends `inverse_network.probe_affine`'s queries (the best decoder's)."""
        return self.attack in ("inverse", "hybrid") and self.decoder_settings().family == "best"

    def checks_levels(self, attacker_data):
        """Whether the decoder's guess gets query-checked levels (`levels_check.py`): the best
        preset's decoder trained on noise, which never saw a natural image's levels."""
        return self.attack in ("inverse", "hybrid") and self.preset == "best" and attacker_data.synthetic

    def query_budget(self, victims, attacker_data):
        """The oracle's budget: `queries` attacker images, plus the affinity probe's queries and
        the levels check's for `victims` intercepted images."""
        if self.queries is None:
            return None
        return self.queries + (inverse_network.AFFINE_PROBE_QUERIES if self.probes_affinity() else 0) + \
            (levels_check.queries_needed(victims) if self.checks_levels(attacker_data) else 0)

    def decoder_settings(self):
        settings = dataclasses.replace(inverse_network.preset(self.preset), train_dtype=self.train_dtype)
        return settings if self.epochs is None else dataclasses.replace(settings, epochs=self.epochs)

    def shadow_settings(self):
        settings = shadow_model.ShadowSettings(train_dtype=self.train_dtype)
        return settings if self.epochs is None else dataclasses.replace(settings, epochs=self.epochs)


def blackbox_attack(oracle: "QueryOracle | keras.Model", features: np.ndarray, settings: "BlackboxSettings | str" = "best",
                    *, attacker_data: "AttackerData", space: "ImageSpace", context: "AttackContext | None" = None,
                    structure: "keras.Model | None" = None) -> AttackResult:
    """The black-box attack: rebuild the inputs behind `features` with only query access to the head.

    Args:
      oracle: `QueryOracle` (its budget must allow `settings.query_budget`), or a Keras head,
        which is queried and never read.
      features: the intercepted features, (N, *feature shape).
      settings: `BlackboxSettings`, or a preset name ("paper", "best"): the hybrid attack when
        `structure` is given, else the inverse network.
      attacker_data: `AttackerData`, the attacker's own images, sent to the oracle once each.
      space: the `ImageSpace` of the head's input.
      context: `AttackContext` (cache, strategy, progress); None for the defaults.
      structure: a Keras model with the head's structure (its weights are never read): the shadow
        copies it, and it tells the paper's decoder and rMLE settings of a zoo split.
    Returns:
      `AttackResult`; its provenance counts the queries made by this run.
    """
    context = context or DEFAULT_CONTEXT
    if isinstance(settings, str):
        settings = BlackboxSettings(attack="inverse" if structure is None else "hybrid", preset=settings)
    if not isinstance(settings, BlackboxSettings):
        raise UsageError(f"settings must be BlackboxSettings or a preset name, got {type(settings).__name__}")
    check_space_and_data(space, attacker_data)
    if not isinstance(oracle, QueryOracle):  # a Keras head: queried, never read
        budget = settings.query_budget(len(features), attacker_data)
        oracle = QueryOracle.from_keras(oracle, budget, min(256, budget or 256), space=space)
    if oracle.input_shape != space.shape:
        raise UsageError(f"the oracle takes inputs of shape {oracle.input_shape}, but the space's images are {space.shape}")
    oracle.check_features(features)
    features = np.asarray(features, np.float32)
    if settings.queries is not None and settings.queries > len(attacker_data):
        raise UsageError(f"a query budget of {settings.queries} is more than the {len(attacker_data)} attacker images "
                         f"({attacker_data.cache_key}): give at most {len(attacker_data)} queries, or none for all")
    if settings.attack in ("shadow", "hybrid") and structure is None:
        raise UsageError(f"the {settings.attack} attack copies the head's structure: pass structure (a Keras "
                         f"model with the head's layers; its weights are never read)")
    if structure is not None:
        structure = whitebox.check_space(space, structure)
        if tuple(structure.output.shape[1:]) != oracle.feature_shape:
            raise UsageError(f"structure gives features of shape {tuple(structure.output.shape[1:])}, but the oracle "
                             f"answers {oracle.feature_shape}: give the structure of the head that answers")
    zoo = None if structure is None else zoo_split(structure, space)
    if settings.decoder_settings().family == "paper" and settings.attack != "shadow" and zoo is None:
        inverse_network.paper_decoder(zoo)  # refused here, before any query: the paper has no decoder for it
    provenance = {"attacker_data": attacker_data.cache_key, "queries": settings.queries, "epochs": settings.epochs,
                  "oracle": oracle.label}
    models = []
    started = time.time()
    guess = None
    if settings.attack in ("inverse", "hybrid"):
        decoder_settings = settings.decoder_settings()
        linear = False
        if settings.probes_affinity():  # an affine oracle gets the least-squares linear decoder
            probes = attacker_data.take(2 * inverse_network.AFFINE_PROBES).images
            provenance["affine_probe"] = inverse_network.probe_affine(oracle, probes)
            linear = bool(provenance["affine_probe"]["affine"])
            context.log(f"affine probe: {provenance['affine_probe']}")
        decoder, path, cached = inverse_network.trained_decoder(
            oracle, space, attacker_data, decoder_settings, settings.queries, context, linear=linear, zoo=zoo)
        models.append(model_record(path, cached))
        provenance.update(decoder=dataclasses.asdict(decoder_settings), decoder_family=decoder.name,
                          decoder_cache=path, decoder_from_cache=cached, decoder_training=models[-1]["training"])
        context.log(f"decoder ({decoder.name}) {'loaded from' if cached else f'trained on {attacker_data.cache_key}, saved to'} "
                    f"{path}")
        guess = inverse_network.invert(decoder, features)
        if settings.checks_levels(attacker_data) and decoder.name != "linear_decoder":  # a linear one inverts exactly
            guess, provenance["levels_check"] = levels_check.check_levels(oracle, features, guess, space)
            check = provenance["levels_check"]
            context.log(f"levels checked by {check['queries']} queries on {check['sampled_victims']} victims: "
                        f"black {check['black']:g}, white {check['white']:g}")
    reconstruction = guess
    if settings.attack in ("shadow", "hybrid"):
        shadow_settings = settings.shadow_settings()
        shadow, path, cached = shadow_model.trained_shadow(
            oracle, structure, space, attacker_data, shadow_settings, settings.queries, context)
        models.append(model_record(path, cached))
        provenance.update(shadow=dataclasses.asdict(shadow_settings), shadow_cache=path, shadow_from_cache=cached,
                          shadow_training=models[-1]["training"])
        context.log(f"shadow {'loaded from' if cached else f'trained on {attacker_data.cache_key}, saved to'} {path}")
        rmle = whitebox.preset(settings.preset, structure, space, "none", features) if settings.attack == "shadow" \
            else whitebox.preset("best", structure, space, prior="decoder")
        if settings.attack == "shadow" and settings.preset == "best":
            rmle = dataclasses.replace(rmle, tv_weight=whitebox.feature_energy_tv_weight(
                features, shadow_tv_per_feature_energy(zoo, attacker_data)))
        rmle = dataclasses.replace(rmle, compute_dtype=settings.compute_dtype, steps=settings.steps or rmle.steps)
        provenance["rmle"] = dataclasses.asdict(rmle)
        refine = True
        if settings.attack == "hybrid":
            images, answers, _ = attacker_pairs(oracle, space, attacker_data, settings.queries,
                                                context.cache_dir)  # the cached answers: no new queries
            images, answers = images[:VALIDATION_IMAGES], np.asarray(answers[:VALIDATION_IMAGES], np.float32)
            gain = whitebox.refinement_gain(shadow, answers, inverse_network.invert(decoder, answers), images, rmle,
                                            space)
            refine = gain > 0
            provenance["refinement"] = {"validation_gain_db": round(gain, 3), "refined": refine,
                                        "validation_images": len(images)}
            context.log(f"refinement through the shadow {'gains' if refine else 'loses'} {abs(gain):.2f} dB on "
                        f"{len(images)} of the attacker's images: {'refining' if refine else 'keeping the decoder guess'}")
        if refine:  # each worker of a multi-worker strategy on its share of the victims
            reconstruction = distributed.sharded(context.strategy, lambda victims, start, indices: whitebox.reconstruct(
                shadow, victims, rmle, init=start, pixel_range=space.pixel_range(),
                progress=context.progress_for("rMLE through the shadow", rmle.steps, int(indices[0])),
                checkpoint_dir=context.rmle_checkpoints).reconstruction, features, guess, np.arange(len(features)))
    provenance["queries_made_this_run"] = oracle.queries
    return AttackResult("blackbox", settings.attack, settings.preset, reconstruction, space,
                        dataclasses.asdict(settings), timed_seconds(started, models), provenance,
                        cached_training_seconds(models))
