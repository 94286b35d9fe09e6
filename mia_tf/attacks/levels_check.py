"""Query-checked levels: correct a reconstruction's black and white points with the oracle's help.

A decoder trained on noise queries has never seen a natural image. On real victims it draws the
right shapes at the wrong levels: at MNIST relu2 the digits come out on a mid-grey background
(mean pixel 0.45 where MNIST's is 0.13), which scores below a black image. The black-box
attacker can test a correction without knowing the victims: it sends corrected images to the
head and compares the answers with the intercepted features. It tries each candidate levels map

    pixels -> clip((pixels - black) / (white - black), 0, 1)

(black = 0, white = 1 leaves the image as it is) on the first SAMPLE_VICTIMS victims and applies
to all of them the one whose answers lie closest to their features on average: one query per
candidate and sampled victim (`queries_needed`). One map for all, because a single victim's
feature distance hardly tells the maps apart: MNIST relu2, noise decoder, test images 0-999,
7.61 dB as decoded; one map chosen on 100 victims 10.91 dB, a map per victim 10.01.
The black-box `best` preset runs it on the decoder's guess when the attacker's images are noise;
with natural images of its own the decoder has learnt the levels already.
"""

import itertools

import numpy as np

from mia_tf.errors import UsageError

BLACK_POINTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
WHITE_POINTS = (0.6, 0.7, 0.8, 0.9, 1.0)
LEVELS = tuple(itertools.product(BLACK_POINTS, WHITE_POINTS))  # (black, white); includes (0, 1)
SAMPLE_VICTIMS = 100  # victims the maps are tried on


def queries_needed(victims, levels=LEVELS):
    """Queries `check_levels` spends on `victims` intercepted images."""
    return len(levels) * min(victims, SAMPLE_VICTIMS)


def apply_levels(pixels, black, white):
    """Pixel images in [0, 1] with `black` mapped to 0 and `white` to 1, clipped."""
    return np.clip((np.asarray(pixels, np.float32) - black) / (white - black), 0.0, 1.0)


def level_reconstruction(reconstruction, space, black, white):
    """`apply_levels` on a reconstruction normalised in `space`; the result is normalised too."""
    return space.normalize(apply_levels(space.denormalize(reconstruction), black, white))


def check_levels(oracle, features, reconstruction, space, levels=LEVELS):
    """The levels map of `reconstruction` whose oracle answers best match `features`, applied.

    Args:
      oracle: `oracle.QueryOracle`; its budget must allow `queries_needed(len(features))`.
      features: the intercepted features, (N, *feature shape).
      reconstruction: the attack's images, normalised in `space`, (N, *image shape).
    Returns:
      (corrected reconstruction in normalised space, record for metrics.json: the map chosen,
      the mean feature distance of every map tried, the queries spent).
    """
    needed = queries_needed(len(features), levels)
    if oracle.remaining is not None and oracle.remaining < needed:
        raise UsageError(f"checking {len(levels)} levels on {min(len(features), SAMPLE_VICTIMS)} victims costs "
                         f"{needed} queries, but only {oracle.remaining} are left in the budget: raise the query budget")
    pixels = space.denormalize(reconstruction)
    sample = slice(0, SAMPLE_VICTIMS)
    target = np.asarray(features[sample], np.float32).reshape(len(pixels[sample]), -1)
    distances = []
    for black, white in levels:
        answers = oracle(space.normalize(apply_levels(pixels[sample], black, white)))
        distances.append(float(np.mean(np.linalg.norm(answers.reshape(len(target), -1) - target, axis=1))))
    black, white = levels[int(np.argmin(distances))]
    record = {"black": black, "white": white, "queries": needed, "sampled_victims": len(target),
              "mean_feature_distance": {f"{b:g}-{w:g}": float(f"{d:.5g}") for (b, w), d in zip(levels, distances)}}
    return level_reconstruction(reconstruction, space, black, white), record
