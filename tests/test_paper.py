"""mia_tf.paper holds the paper's figures as the build spec gives them."""

import re

import pytest

from mia_tf import paper

from conftest import ROOT

SPEC = ROOT.parent / "shared" / "PAPER.md"
ROWS = {"white-box rMLE": ("whitebox",), "black-box inverse net, same set": ("blackbox", "inverse", "same"),
        "black-box inverse net, same distribution": ("blackbox", "inverse", "dist"),
        "black-box inverse net, noise set": ("blackbox", "inverse", "noise"),
        "black-box shadow model": ("blackbox", "shadow", "same"),
        "query-free, same set, same net": ("queryfree", "same", "same"),
        "query-free, diff set, same net": ("queryfree", "dist", "same"),
        "query-free, same set, diff net": ("queryfree", "same", "diff"),
        "query-free, diff set, diff net": ("queryfree", "dist", "diff")}


def test_the_figures_are_the_papers_table():
    if not SPEC.exists():
        pytest.skip(f"needs the build spec: looked at {SPEC}")
    seen = 0
    for line in SPEC.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = re.sub(r" \((Table \d|T\d)\)$", "", cells[0])
        if label in ROWS:
            figures = [tuple(float(x) for x in cell.split(" / ")) for cell in cells[1:]]
            assert figures == [paper.figure(ROWS[label], *split) for split in paper.SPLITS], label
            seen += 1
    assert seen == len(ROWS) == len(paper.FIGURES)
