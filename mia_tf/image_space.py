"""What an image is to a model: its shape, the normalisation in front of the model, the pixel range.

Every attack works in the space the head's input lives in: the normalised space
x = (pixel - mean) / std, with pixels in [0, 1] and `mean` / `std` per channel. An `ImageSpace`
says which one, so no attack needs to know a data set's name:

    space = mia_tf.ImageSpace((28, 28, 1), mean=(0.1307,), std=(0.3081,))   # a model of yours
    space = mia_tf.ImageSpace.of_dataset("cifar10")                          # a zoo model's
    space = mia_tf.ImageSpace.from_model(model)     # read from its Rescaling / Normalization layers

A model that normalises its own input (preprocessing that travels with the model as layers, as
KerasHub's do) takes pixels; `from_model` reads the normalisation off those layers, and
`attack_head` gives the head from the normalised tensor on, which the attacks invert.

`AttackerData` is the attacker's own images (with labels where the attack needs them), held in
the normalised space; `cache_key` names them in the attack cache: a zoo set by its name, any
other by the SHA-256 of its values.
"""

import dataclasses
import hashlib

import numpy as np

from mia_tf.errors import UsageError

# How far outside [0, 1] a float pixel may lie (JPEG and resampling overshoot a little).
PIXEL_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class ImageSpace:
    """Images of `shape` (H, W, C), normalised per channel as (pixel - mean) / std, pixels in [0, 1].

    `name`: the zoo data set this space is (keys the attack cache as before); None for others.
    `pixel_scale`: None when the model takes normalised input; else the model takes pixel values
    times this (255 for raw uint8 values, 1 for [0, 1]) and normalises them itself
    (`from_model`), and the attacks work on `attack_head(head)`.
    """

    shape: tuple
    mean: tuple
    std: tuple
    name: str | None = None
    pixel_scale: float | None = None

    def __post_init__(self):
        shape = tuple(int(d) for d in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise UsageError(f"ImageSpace shape must be (height, width, channels), got {self.shape!r}")
        mean, std = (tuple(float(v) for v in np.broadcast_to(np.ravel(values), (shape[-1],)))
                     for values in (self.mean, self.std))
        if not all(s > 0 for s in std):
            raise UsageError(f"ImageSpace std must be positive per channel, got {self.std!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def of_dataset(cls, name):
        """The space of a zoo data set ("mnist", "cifar10"): the zoo models take it."""
        from mia_tf.data import spec

        s = spec(name)
        return cls(s.image_shape, s.mean, s.std, name=s.name)

    @classmethod
    def from_model(cls, model, pixel_scale=255.0):
        """The space of a model that normalises its own input with leading `Rescaling` and
        `Normalization` layers, fed pixels in [0, `pixel_scale`]."""
        prefix = _normalising_prefix(model)
        if not prefix:
            raise UsageError(f"model {model.name!r} has no Rescaling or Normalization layer at its input: "
                             f"give the space yourself, ImageSpace(shape, mean, std)")
        scale, offset = np.float64(pixel_scale), np.float64(0.0)  # normalised = pixel01 * scale + offset
        for layer in prefix:
            if type(layer).__name__ == "Rescaling":
                scale, offset = scale * np.asarray(layer.scale, np.float64), offset * np.asarray(layer.scale) + \
                    np.asarray(layer.offset, np.float64)
            else:
                layer_mean = np.ravel(np.asarray(layer.mean, np.float64))
                layer_std = np.sqrt(np.ravel(np.asarray(layer.variance, np.float64)))
                scale, offset = scale / layer_std, (offset - layer_mean) / layer_std
        shape = tuple(model.inputs[0].shape[1:])  # `inputs`, not `input`: a Sequential model has only the first
        scale, offset = np.broadcast_to(scale, shape[-1:]), np.broadcast_to(offset, shape[-1:])
        return cls(shape, tuple(-offset / scale + 0.0), tuple(1.0 / scale),  # + 0.0: no -0.0 mean
                   pixel_scale=float(pixel_scale))

    @property
    def cache_name(self):
        """This space in cache keys: a zoo data set's name, else a digest of shape and normalisation."""
        if self.name is not None:
            return self.name
        fields = repr((self.shape, [f"{v:.6g}" for v in (*self.mean, *self.std)], self.pixel_scale))
        return "space-" + hashlib.sha256(fields.encode()).hexdigest()[:12]

    def normalize(self, pixels):
        """Pixel images (uint8 in 0-255, or float in [0, 1]) -> float32 normalised images."""
        pixels = np.asarray(pixels)
        pixels = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
        return (pixels - np.float32(self.mean)) / np.float32(self.std)

    def denormalize(self, x):
        """Normalised images -> float32 pixels in [0, 1], clipped (for metrics and pictures)."""
        return np.clip(np.asarray(x, np.float32) * np.float32(self.std) + np.float32(self.mean), 0.0, 1.0)

    def pixel_range(self):
        """(low, high): the normalised values of pixel 0 and pixel 1, per channel."""
        mean, std = np.float32(self.mean), np.float32(self.std)
        return (0.0 - mean) / std, (1.0 - mean) / std

    def model_input(self, x):
        """Normalised images as the model takes them (unchanged unless it normalises itself)."""
        if self.pixel_scale is None:
            return np.asarray(x, np.float32)
        return (np.asarray(x, np.float32) * np.float32(self.std) + np.float32(self.mean)) * np.float32(self.pixel_scale)

    def attack_head(self, head):
        """The head the attacks invert: `head` itself, or for a model that normalises its own
        input, the head from the normalised tensor on (its leading normalisation layers cut off)."""
        if self.pixel_scale is None:
            return head
        import keras

        prefix = _normalising_prefix(head)
        if not prefix:
            raise UsageError(f"this space is of a model that normalises its input, but head {head.name!r} "
                             f"starts with no Rescaling or Normalization layer: give the head of that model")
        return keras.Model(prefix[-1].output, head.output, name=f"{head.name}_normalised")

    def check_images(self, images, argument, normalized=None):
        """`images` as float32 normalised images of this space, or a UsageError naming `argument`.

        uint8 images are pixels (0-255) and get normalised. Float images are ambiguous (pixels in
        [0, 1] also lie within most normalised ranges), so `normalized` must say which they are:
        True, already normalised (checked to lie within the values of pixels 0 and 1); False,
        pixels in [0, 1], normalised here."""
        images = np.asarray(images)
        if images.ndim == 3 and self.shape[-1] == 1:
            images = images[..., None]
        if images.ndim != 4 or images.shape[1:] != self.shape:
            raise UsageError(f"{argument} must be images of shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {images.shape}")
        if images.dtype == np.uint8:
            return self.normalize(images)
        images = images.astype(np.float32)
        if not np.all(np.isfinite(images)):
            raise UsageError(f"{argument} holds NaN or infinite values")
        if normalized is None:
            raise UsageError(f"{argument} are floats: say whether they are normalised already (normalized=True) or "
                             f"pixels in [0, 1] (normalized=False); uint8 pixels need neither")
        if not normalized:
            if images.min() < -PIXEL_TOLERANCE or images.max() > 1 + PIXEL_TOLERANCE:
                raise UsageError(f"{argument} should be pixels in [0, 1] (normalized=False) but span "
                                 f"{images.min():.3g} .. {images.max():.3g}")
            return self.normalize(np.clip(images, 0.0, 1.0))
        low, high = self.pixel_range()
        inside = (images >= np.minimum(low, high) - PIXEL_TOLERANCE) & (images <= np.maximum(low, high) + PIXEL_TOLERANCE)
        if not np.all(inside):
            raise UsageError(f"{argument} lie outside this space's pixel range (uint8 pixels, or normalised "
                             f"values within {np.round(np.minimum(low, high), 3).tolist()} .. "
                             f"{np.round(np.maximum(low, high), 3).tolist()}): normalise them with the space's "
                             f"mean {self.mean} and std {self.std}")
        return images


def check_space_and_data(space, attacker_data):
    """UsageError unless `space` is an ImageSpace and `attacker_data` is AttackerData of its shape."""
    if not isinstance(space, ImageSpace):
        raise UsageError(f"space must be an ImageSpace (mia_tf.ImageSpace(shape, mean, std)), got {type(space).__name__}")
    if not isinstance(attacker_data, AttackerData):
        raise UsageError("attacker_data must be AttackerData (AttackerData.from_images(images, space, labels), or "
                         "mia_tf.attacker_set for a zoo set)")
    if attacker_data.images.shape[1:] != space.shape:
        raise UsageError(f"attacker_data holds images of shape {attacker_data.images.shape[1:]}, but the space's are "
                         f"{space.shape}: make it with AttackerData.from_images(images, space)")


def _is_batched(dataset, space):
    """Whether a tf.data.Dataset's elements are batches of images (rank 4, or (N, H, W) for one
    channel) rather than single images ((H, W, C), or (H, W))."""
    spec = dataset.element_spec
    shape = (spec[0] if isinstance(spec, tuple) else spec).shape
    if shape.rank == 4:
        return True
    return shape.rank == 3 and space.shape[-1] == 1 and shape[-1] != 1


def _normalising_prefix(model):
    """The Rescaling / Normalization layers that directly follow the model's input, in order."""
    prefix = []
    for layer in model.layers[1:] if type(model.layers[0]).__name__ == "InputLayer" else model.layers:
        if type(layer).__name__ not in ("Rescaling", "Normalization"):
            break
        prefix.append(layer)
    return prefix


@dataclasses.dataclass(frozen=True)
class AttackerData:
    """The attacker's own images in a space's normalised form, with integer labels or None.

    Build it with `from_images` (pixels or normalised values, arrays or a `tf.data.Dataset`), or
    take a zoo set with `mia_tf.attacker_set`. `cache_key` names it in the attack cache.
    """

    images: np.ndarray
    labels: np.ndarray | None
    cache_key: str
    synthetic: bool = False  # noise, not natural images: a decoder trained on it gets its levels checked

    @classmethod
    def from_images(cls, images, space, labels=None, name=None, normalized=None):
        """Check and normalise the attacker's images for `space`.

        Args:
          images: uint8 pixels, or floats (say which with `normalized`), as an array or a
            `tf.data.Dataset` of images or (image, label) pairs.
          normalized: for float images, True if already normalised in `space`, False if pixels in [0, 1].
          labels: integer class labels, one per image (None: unlabelled).
          name: how the cache names the set (default: the SHA-256 of images and labels).
        """
        if hasattr(images, "as_numpy_iterator"):  # a tf.data.Dataset: small enough to hold in memory
            if labels is not None:
                raise UsageError("give the labels inside the tf.data.Dataset as (image, label) pairs, not as labels=")
            if _is_batched(images, space):
                images = images.unbatch()
            elements = list(images.as_numpy_iterator())
            if elements and isinstance(elements[0], tuple):
                images, labels = np.stack([e[0] for e in elements]), np.stack([e[1] for e in elements])
            else:
                images = np.stack(elements) if elements else np.zeros((0, *space.shape), np.float32)
        normalised = space.check_images(images, "attacker images", normalized)
        if len(normalised) == 0:
            raise UsageError("attacker images are empty: the attacks train on the attacker's own images")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.ndim == 2 and labels.shape[1] == 1:  # a column, as keras.datasets gives CIFAR-10's
                labels = labels[:, 0]
            if labels.ndim == 2 and labels.shape[1] > 1:
                raise UsageError(f"attacker labels look one-hot ({labels.shape}): give class numbers, "
                                 f"labels.argmax(axis=1)")
            if labels.ndim != 1 or len(labels) != len(normalised) or not np.issubdtype(labels.dtype, np.integer):
                raise UsageError(f"attacker labels must be whole numbers, one per image ({len(normalised)}), "
                                 f"got {labels.dtype} of shape {labels.shape}")
            labels = labels.astype(np.int64)
        if name is None:
            digest = hashlib.sha256(normalised.tobytes())
            digest.update(b"" if labels is None else labels.tobytes())
            name = "sha256-" + digest.hexdigest()[:24]
        return cls(normalised, labels, name)

    def __len__(self):
        return len(self.images)

    def take(self, count):
        """The first `count` images (None: all); the callers' cache keys hold the count."""
        if count is None:
            return self
        return dataclasses.replace(self, images=self.images[:count],
                                   labels=None if self.labels is None else self.labels[:count])

    def labelled(self, classes, argument="attacker_data"):
        """The labels, checked to lie in 0..classes-1, or a UsageError."""
        if self.labels is None:
            raise UsageError(f"{argument} has no labels, and this attack trains on labelled images: "
                             f"pass labels (or a tf.data.Dataset of (image, label) pairs)")
        if self.labels.min() < 0 or self.labels.max() >= classes:
            raise UsageError(f"{argument} labels span {self.labels.min()}..{self.labels.max()}, but the tail has "
                             f"{classes} classes")
        return self.labels
