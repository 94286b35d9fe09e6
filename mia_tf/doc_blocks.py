"""Tables in README.md and docs/ that are generated from the committed results, never typed.

A generated block sits between two markers; everything between them is rewritten by
`python scripts/render_docs.py`, and `tests/test_docs.py` fails when a block is stale:

    <!-- generated: results/whitebox.md -->      a results page, embedded whole
    <!-- generated: whitebox-runs -->            one row per run under results/whitebox/
    <!-- end generated -->
"""

import os
import re

from mia_tf.report import run_records

BLOCK = re.compile(r"(<!-- generated: (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _results_page(root, path):
    with open(os.path.join(root, path)) as f:
        page = f.read().strip()
    return f"From `{path}`:\n\n```text\n{page}\n```\n"


def _runs_table(root, attack):
    """A Markdown table of every run under results/<attack>/: split, preset, victims, PSNR, SSIM, time."""
    rows = ["| model | split | preset | victims | PSNR dB | SSIM (paper) | attack seconds |",
            "|---|---|---|---|---|---|---|"]
    for _, record in run_records(os.path.join(root, "results", attack)):
        summary = record["summary"]
        rows.append(f"| {record['model']} | {record['layer']} | {record['preset']} | {record['victims']} | "
                    f"{summary['psnr']['mean']:.2f} | {summary['ssim_paper']['mean']:.3f} | {record['seconds']:.0f} |")
    return "\n".join(rows) + "\n"


def generate(name, root):
    """The body of the block called `name`, from the files under the repository `root`."""
    if name.endswith("-runs"):
        return _runs_table(root, name[:-len("-runs")])
    if name.startswith("results/") and name.endswith(".md"):
        return _results_page(root, name)
    raise ValueError(f"unknown generated block {name!r}: use results/<page>.md or <attack>-runs")


def render(text, root):
    """`text` with every generated block rewritten from the files under `root`."""
    return BLOCK.sub(lambda m: m.group(1) + generate(m.group("name"), root) + m.group(4), text)


def documents(root):
    """README.md and every page under docs/: the files that may hold generated blocks."""
    docs = os.path.join(root, "docs")
    return [os.path.join(root, "README.md")] + sorted(
        os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md"))
