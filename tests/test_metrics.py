import numpy as np
import pytest

from mia_tf import metrics


def test_psnr_by_hand():
    a = np.zeros((1, 4, 4, 1))
    b = np.full((1, 4, 4, 1), 0.1)  # MSE 0.01 -> 20 dB
    assert metrics.psnr(a, b)[0] == pytest.approx(20.0)
    c = a.copy()
    c[0, 0, 0, 0] = 1.0  # MSE 1/16 -> 10 log10(16)
    assert metrics.psnr(a, c)[0] == pytest.approx(10 * np.log10(16))
    assert metrics.psnr(a, a)[0] == np.inf


def test_ssim_by_hand_on_constant_patches():
    # Constant 7x7 images: SSIM reduces to the luminance term (2 mx my + C1) / (mx^2 + my^2 + C1).
    x = np.full((1, 7, 7, 1), 0.2)
    y = np.full((1, 7, 7, 1), 0.6)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    assert metrics.ssim_standard(x, y)[0] == pytest.approx(expected, rel=1e-6)


def test_paper_ssim_uses_the_reconstructions_range():
    rng = np.random.default_rng(0)
    original = rng.uniform(size=(1, 16, 16, 3))
    low_contrast = 0.45 + 0.1 * original  # range 0.1
    paper, standard = metrics.ssim_paper(original, low_contrast)[0], metrics.ssim_standard(original, low_contrast)[0]
    from skimage.metrics import structural_similarity

    def by_hand(data_range):  # channel-wise mean of single-channel SSIMs, 7x7 uniform window
        return np.mean([structural_similarity(original[0, ..., c], low_contrast[0, ..., c], data_range=data_range)
                        for c in range(3)])

    assert paper == pytest.approx(by_hand(low_contrast.max() - low_contrast.min()), rel=1e-9)
    assert standard == pytest.approx(by_hand(1.0), rel=1e-9)
    assert abs(paper - standard) > 1e-3


def test_paper_ssim_of_a_constant_reconstruction_is_zero():
    # Its range is 0; a tiny stand-in range gave round-off of -3e5 on a textured image.
    original = np.random.default_rng(1).uniform(size=(2, 32, 32, 3))
    assert metrics.ssim_paper(original, np.full_like(original, 0.47)).tolist() == [0.0, 0.0]


def test_summary_confidence_interval():
    s = metrics.Summary.of([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sample std 1.2910, t(0.975, 3) = 3.1824 -> half width 2.0543
    assert (s.mean, s.count) == (2.5, 4)
    assert s.ci95_high - s.mean == pytest.approx(3.182446 * 1.290994 / 2, rel=1e-5)
    assert metrics.Summary.of([5.0]).ci95_low == 5.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="equal shape"):
        metrics.psnr(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 3)))
