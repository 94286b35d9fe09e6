"""The paper's own figures: He, Zhang, Lee, ACSAC 2019, Tables 3, 4, 6 and 8.

Mean PSNR (dB) and SSIM over the paper's 10 test images (the first of each class), by setting and
split, as the paper prints them; and the authors' released code as measured on their own weights
(the build spec, `../shared/PAPER.md`). They are constants of the paper, typed once here so every
comparison table in the docs is generated against the same numbers.
"""

SPLITS = (("mnist", "conv1"), ("mnist", "relu2"), ("cifar10", "conv11"), ("cifar10", "relu22"),
          ("cifar10", "relu32"))


def _row(*cells):
    return dict(zip(SPLITS, cells))


# (PSNR dB, SSIM) per split, keyed by setting: ("whitebox",), ("blackbox", attack, attacker data),
# ("queryfree", attacker data, shadow net). "dist" is the paper's "same distribution" set and
# "noise" its noise set; the query-free "diff set" is our "dist".
FIGURES = {
    ("whitebox",): _row((39.69, .9969), (15.10, .5998), (37.59, .9960), (19.47, .6940), (13.38, .1625)),
    ("blackbox", "inverse", "same"): _row((39.64, .9887), (20.35, .7334), (49.88, .9993), (19.81, .6939),
                                          (15.42, .3124)),
    ("blackbox", "inverse", "dist"): _row((40.72, .9950), (20.81, .8046), (49.02, .9992), (19.36, .6802),
                                          (13.95, .2196)),
    ("blackbox", "inverse", "noise"): _row((14.76, .7188), (7.72, .4310), (48.59, .9996), (12.79, .2930),
                                           (12.37, .0440)),
    ("blackbox", "shadow", "same"): _row((39.67, .9968), (15.41, .6103), (28.67, .9766), (18.02, .6893),
                                         (12.61, .1145)),
    ("queryfree", "same", "same"): _row((17.60, .7423), (9.61, .4981), (21.16, .9104), (12.74, .1752),
                                        (11.09, .0419)),
    ("queryfree", "dist", "same"): _row((21.53, .9121), (9.27, .4652), (21.45, .9145), (11.51, .1723),
                                        (11.98, .0102)),
    ("queryfree", "same", "diff"): _row((12.59, .6430), (8.05, .3790), (17.55, .6344), (12.46, .2714),
                                        (10.68, .0247)),
    ("queryfree", "dist", "diff"): _row((17.86, .6952), (8.03, .3226), (13.06, .1553), (11.30, .0467),
                                        (11.47, .0793)),
}

# The authors' released code run on their own LeNet weights, the paper's 10 images (PAPER.md).
AUTHORS_CODE_WHITEBOX = {("mnist", "conv1"): (44.70, .9978), ("mnist", "relu2"): (16.12, .6290)}


def figure(setting, dataset, layer):
    """(PSNR, SSIM) the paper reports for a setting at a split, or None where it reports none."""
    return FIGURES.get(tuple(setting), {}).get((dataset, layer))
