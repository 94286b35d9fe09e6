"""Read the device's inputs: PNG/JPEG files (Pillow) or an npz batch, as uint8 NHWC."""

import os

import numpy as np

from edge import EdgeError

NPZ_KEYS = ("images", "x_test", "x")


def read_image_files(paths, height, width, channels):
    """uint8 (N, height, width, channels) from image files; grey or RGB as the head expects."""
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise EdgeError(f"the head takes {channels}-channel images; only 1 (grey) and 3 (RGB) are supported")
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
        except (OSError, UnidentifiedImageError) as e:
            raise EdgeError(f"cannot read {path} as an image ({e}): give PNG or JPEG files") from None
        if image.size != (width, height):
            raise EdgeError(f"{path} is {image.size[0]}x{image.size[1]} pixels, the head takes "
                            f"{width}x{height}: resize it first")
        images.append(np.asarray(image, dtype=np.uint8).reshape(height, width, channels))
    return np.stack(images)


def read_npz_batch(path, height, width, channels):
    """uint8 (N, height, width, channels) from an npz holding one of the keys images, x_test, x."""
    if not os.path.exists(path):
        raise EdgeError(f"{path} not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            key = next((k for k in NPZ_KEYS if k in f.files), None)
            if key is None:
                raise EdgeError(f"{path} has none of the keys {', '.join(NPZ_KEYS)}: store the images under 'images'")
            images = f[key]
    except EdgeError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise EdgeError(f"cannot read {path} as an npz file ({e})") from None
    if images.ndim == 3 and channels == 1:
        images = images[..., None]
    if images.dtype != np.uint8 or images.shape[1:] != (height, width, channels):
        raise EdgeError(f"{path}[{key}] is {images.dtype} {images.shape}; the head takes uint8 "
                        f"(N, {height}, {width}, {channels})")
    return images
