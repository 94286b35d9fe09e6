"""Reconstruction quality: PSNR and the two SSIMs of ../shared/PAPER.md, with confidence intervals.

All functions take de-normalised images in [0, 1], shaped (N, H, W, C) or (H, W, C).

- `psnr`: 10 log10(1 / MSE), MSE over all pixels and channels.
- `ssim_paper`: SSIM as the authors computed it: scikit-image, 7x7 uniform window, K1 0.01,
  K2 0.03, mean over channels, and data_range = max - min of the *reconstruction*. This inflates
  SSIM for low-contrast reconstructions; it is the number to hold against the paper's tables.
- `ssim_standard`: the same with data_range 1.0, the usual definition.
"""

import dataclasses

import numpy as np
from scipy import stats
from skimage.metrics import structural_similarity

SSIM_KINDS = ("paper", "standard")


def _batch(images):
    images = np.asarray(images, dtype=np.float64)
    return images[None] if images.ndim == 3 else images


def _check_pair(original, reconstruction):
    original, reconstruction = _batch(original), _batch(reconstruction)
    if original.shape != reconstruction.shape or original.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C) of equal shape, got {original.shape} "
                         f"and {reconstruction.shape}")
    return original, reconstruction


def psnr(original, reconstruction):
    """Per-image PSNR in dB (inf for a perfect reconstruction)."""
    original, reconstruction = _check_pair(original, reconstruction)
    mse = np.mean((original - reconstruction) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _ssim(original, reconstruction, data_range):
    return structural_similarity(original, reconstruction, win_size=7, gaussian_weights=False,
                                 K1=0.01, K2=0.03, channel_axis=-1, data_range=data_range)


def ssim_paper(original, reconstruction):
    """Per-image SSIM with data_range = max - min of the reconstruction (the authors' choice)."""
    original, reconstruction = _check_pair(original, reconstruction)
    # A constant reconstruction has range 0, where the formula divides by zero. Its limit as the
    # range shrinks is 0 (the structure term vanishes); a tiny range instead gave round-off
    # (-3e5 on a grey CIFAR image), so it is set to 0.
    return np.array([_ssim(o, r, float(r.max() - r.min())) if r.max() > r.min() else 0.0
                     for o, r in zip(original, reconstruction)])


def ssim_standard(original, reconstruction):
    """Per-image SSIM with data_range 1.0."""
    original, reconstruction = _check_pair(original, reconstruction)
    return np.array([_ssim(o, r, 1.0) for o, r in zip(original, reconstruction)])


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean with a 95 % confidence interval (Student's t) over `count` images."""

    mean: float
    ci95_low: float
    ci95_high: float
    count: int

    @classmethod
    def of(cls, values):
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        mean = float(np.mean(values))
        if len(finite) < 2 or len(finite) < len(values):
            return cls(mean, mean, mean, len(values))  # one image, or an infinite PSNR: no interval
        half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
        return cls(mean, mean - half, mean + half, len(values))

    def format(self, digits=2):
        return f"{self.mean:.{digits}f} [{self.ci95_low:.{digits}f}, {self.ci95_high:.{digits}f}]"


def evaluate(original, reconstruction):
    """Per-image metrics and their summaries: {"per_image": {...}, "summary": {...}}."""
    per_image = {
        "psnr": psnr(original, reconstruction),
        "ssim_paper": ssim_paper(original, reconstruction),
        "ssim_standard": ssim_standard(original, reconstruction),
    }
    return {
        "per_image": {k: v.tolist() for k, v in per_image.items()},
        "summary": {k: dataclasses.asdict(Summary.of(v)) for k, v in per_image.items()},
    }
