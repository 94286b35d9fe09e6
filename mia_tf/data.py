"""Real MNIST and CIFAR-10, their normalisation, the victims and the attacker's data sets.

Images are always uint8 NHWC (MNIST gets a channel axis). `load` finds the data in this order:

1. a directory the user names (`data_dir=` / `--data-dir`, else `$MIA_TF_DATA_DIR`) holding
   `mnist.npz` / `cifar10.npz` with the keys `x_train y_train x_test y_test` (the format of
   `../shared/data`);
2. `tensorflow_datasets`, which downloads where a network exists and reads its cache otherwise.

The package ships a small real sample (test images 0-999 of each data set; CIFAR-10 from the
lossless originals) so that the demo and the victims never need either source.
"""

import dataclasses
import os
import socket
from importlib import resources

import numpy as np

from mia_tf.errors import UsageError

DATA_DIR_ENV = "MIA_TF_DATA_DIR"
SPLITS = ("train", "test")
ATTACKER_SETS = ("same", "dist", "noise")
TFDS_DOWNLOAD_HOST = "storage.googleapis.com"
# The `dist` attacker set: test images from here on are disjoint from the training set and from
# every victim (victims are test images 0-999).
DIST_FIRST_INDEX = 1000


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    image_shape: tuple
    mean: tuple  # per channel, in [0, 1] pixel units (PAPER.md "Input normalisation")
    std: tuple
    num_classes: int
    paper10: tuple  # test indices of the first test image of each class, classes 0-9
    sample_file: str  # shipped sample inside mia_tf/sample/


DATASETS = {
    "mnist": DatasetSpec(
        name="mnist",
        image_shape=(28, 28, 1),
        mean=(0.5,),
        std=(0.5,),
        num_classes=10,
        paper10=(3, 2, 1, 18, 4, 8, 11, 0, 61, 7),
        sample_file="mnist_test_0-999.npz",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        image_shape=(32, 32, 3),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        num_classes=10,
        paper10=(3, 6, 25, 0, 22, 12, 4, 13, 1, 11),
        sample_file="cifar10_test_0-999.npz",
    ),
}


def spec(name):
    """The `DatasetSpec` for a data set name, or a UsageError naming the known ones."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown data set {name!r}: use one of {', '.join(sorted(DATASETS))}"
        ) from None


def normalize(images, name):
    """uint8 NHWC images -> float32 in the normalised space where models and attacks work."""
    return normalize_pixels(np.asarray(images, dtype=np.float32) / 255.0, name)


def normalize_pixels(pixels, name):
    """Float pixel images in [0, 1] (as `denormalize` gives) -> the normalised space."""
    return _space(name).normalize(np.asarray(pixels, np.float32))


def denormalize(x, name):
    """Normalised float images -> float32 in [0, 1], clipped (for metrics and pictures)."""
    return _space(name).denormalize(x)


def pixel_range(name):
    """(low, high): the normalised values of pixel 0 and pixel 1, per channel."""
    return _space(name).pixel_range()


def _space(name):
    """The zoo data set's `ImageSpace`, which holds the normalisation arithmetic."""
    from mia_tf.image_space import ImageSpace

    return ImageSpace.of_dataset(name)


def _as_nhwc(images, name):
    s = spec(name)
    images = np.asarray(images)
    if images.ndim == 3 and s.image_shape[-1] == 1:
        images = images[..., None]
    if images.dtype != np.uint8 or images.shape[1:] != s.image_shape:
        raise UsageError(
            f"{name} images must be uint8 with shape (N, {', '.join(map(str, s.image_shape))}); "
            f"got {images.dtype} {images.shape}: check that the file holds {name}"
        )
    return images


def read_npz(path, name, keys):
    """Read `keys` from an npz without pickles; a UsageError if it is missing or malformed."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise UsageError(
                    f"{path} lacks {', '.join(missing)}: a {name} npz needs the keys "
                    f"{' '.join(keys)} (as in ../shared/data)"
                )
            return [f[k] for k in keys]
    except UsageError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise UsageError(f"cannot read {path} as an npz file ({e}): give a valid .npz") from None


def _checked_pair(images, labels, name, where):
    s = spec(name)
    images = _as_nhwc(images, name)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(images):
        raise UsageError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= s.num_classes):
        raise UsageError(f"{where}: labels must be in 0..{s.num_classes - 1}")
    return images, labels


def resolve_data_dir(data_dir=None):
    """The user's data directory: the argument, else $MIA_TF_DATA_DIR, else None."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None and not os.path.isdir(data_dir):
        raise UsageError(f"data directory {data_dir!r} does not exist: fix --data-dir / ${DATA_DIR_ENV}")
    return data_dir


def load(name, split, data_dir=None, tfds_data_dir=None):
    """Return (images uint8 NHWC, labels int64) of one split of a data set.

    Args:
      name: "mnist" or "cifar10".
      split: "train" or "test" (the official splits).
      data_dir: directory with `<name>.npz`; defaults to $MIA_TF_DATA_DIR.
      tfds_data_dir: where tensorflow_datasets keeps its files (its own default if None).
    """
    spec(name)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    data_dir = resolve_data_dir(data_dir)
    if data_dir is not None:
        path = os.path.join(data_dir, f"{name}.npz")
        if not os.path.exists(path):
            raise UsageError(f"{path} not found: put {name}.npz (keys x_train y_train x_test y_test) there")
        images, labels = read_npz(path, name, [f"x_{split}", f"y_{split}"])
        return _checked_pair(images, labels, name, path)
    return _load_tfds(name, split, tfds_data_dir)


def _tfds_unavailable(name, why):
    return UsageError(
        f"{name} is not available: tensorflow_datasets {why}. Either give a directory with "
        f"{name}.npz via --data-dir or ${DATA_DIR_ENV} (for example ../shared/data), or run once "
        f"with a network so tensorflow_datasets can download it"
    )


def _network_reachable():
    """A DNS look-up of TFDS's download host, so an offline run fails at once, not in minutes."""
    try:
        socket.getaddrinfo(TFDS_DOWNLOAD_HOST, 443)
        return True
    except OSError:
        return False


def _load_tfds(name, split, tfds_data_dir):
    import logging

    import tensorflow_datasets as tfds

    absl_logger = logging.getLogger("absl")  # TFDS warns of each missing local copy it looks for
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        prepared = tfds.builder(name, data_dir=tfds_data_dir).is_prepared()
    finally:
        absl_logger.setLevel(level)
    # Offline, TFDS retries its downloads for minutes before it gives up: check first.
    if not prepared and not _network_reachable():
        raise _tfds_unavailable(name, "has no local copy and there is no network to download it")
    try:
        arrays = tfds.as_numpy(
            tfds.load(name, split=split, batch_size=-1, as_supervised=True, data_dir=tfds_data_dir)
        )
    except Exception as e:  # TFDS raises many types when a download fails; all mean "not available"
        raise _tfds_unavailable(name, f"could not load or download it ({type(e).__name__})") from None
    return _checked_pair(arrays[0], arrays[1], name, f"tensorflow_datasets {name}")


def sample_path(name):
    """The shipped sample file of a data set (the package is installed as files, not zipped)."""
    return str(resources.files("mia_tf") / "sample" / spec(name).sample_file)


def load_sample(name):
    """The shipped real sample: test images 0-999 and their labels (uint8 NHWC, int64)."""
    images, labels = read_npz(sample_path(name), name, ["x_test", "y_test"])
    return _checked_pair(images, labels, name, spec(name).sample_file)


def parse_victims(which, name):
    """Victim test indices: "paper10" (the paper's 10), N (test 0..N-1), or "a-b" (inclusive)."""
    s = spec(name)
    available = len(load_sample(name)[1])
    if which == "paper10":
        return np.array(s.paper10)
    if isinstance(which, str) and "-" in which:
        first, _, last = which.partition("-")
        if first.isdigit() and last.isdigit() and int(first) <= int(last):
            indices = np.arange(int(first), int(last) + 1)
            if indices[-1] < available:
                return indices
    elif isinstance(which, (int, np.integer)) or (isinstance(which, str) and which.isdigit()):
        if 1 <= int(which) <= available:
            return np.arange(int(which))
    raise UsageError(
        f"victims {which!r} not understood: use paper10, a count 1..{available} or a range "
        f"like 0-99 (victims are test images 0-{available - 1})"
    )


def victims(name, which="paper10"):
    """(indices, images uint8, labels) of the victims, read from the shipped lossless sample."""
    indices = parse_victims(which, name)
    images, labels = load_sample(name)
    return indices, images[indices], labels[indices]


def attacker_set(name, setting, data_dir=None, limit=None, seed=0):
    """The attacker's own data from a zoo data set, as `AttackerData` (normalised images, labels
    or None, and the set's name as its cache key).

    Args:
      setting: "same" (the target's training set), "dist" (same distribution, disjoint from
        training and victims: test images 1000 onwards) or "noise" (standard Gaussian in
        normalised space, no labels).
      limit: at most this many images (the first ones; for noise, how many to draw).
    """
    from mia_tf.image_space import AttackerData

    s = spec(name)
    if setting not in ATTACKER_SETS:
        raise UsageError(f"unknown attacker data {setting!r}: use one of {', '.join(ATTACKER_SETS)}")
    if setting == "noise":
        count = limit or len(load(name, "train", data_dir)[1])
        rng = np.random.default_rng(seed)
        return AttackerData(rng.standard_normal((count, *s.image_shape), dtype=np.float32), None, setting,
                            synthetic=True)
    if setting == "same":
        images, labels = load(name, "train", data_dir)
    else:
        images, labels = load(name, "test", data_dir)
        images, labels = images[DIST_FIRST_INDEX:], labels[DIST_FIRST_INDEX:]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return AttackerData(normalize(images, name), labels, setting)
