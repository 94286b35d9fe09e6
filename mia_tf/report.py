"""Plain-text tables for the CLI and for results files."""


def format_table(headers, rows):
    """Left-aligned text columns; every cell is turned into a string."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def made_by(started, where=""):
    """A results page's first note: the command that made it as it was typed, its seconds since
    `started` (a time.time()) and the machine, then `where` (say, what else was on the cores)."""
    import os
    import platform
    import shlex
    import sys
    import time

    command = " ".join(["python", *map(shlex.quote, sys.argv)])
    return f"Made by `{command}` in {time.time() - started:.0f} s on {platform.machine()}, {os.cpu_count()} cores{where}."


def markdown_table_page(title, notes, headers, rows):
    """A results page: a title, lines of notes (how it was made, what the columns mean), one table."""
    return "\n".join([f"# {title}", "", *notes, "", format_table(headers, rows), ""])


# The metrics of an `evaluate` summary, in table order: key, label, decimals.
METRICS = (("psnr", "PSNR (dB)", 2), ("ssim_paper", "SSIM, paper (data_range of reconstruction)", 4),
           ("ssim_standard", "SSIM, standard (data_range 1)", 4))


def run_records(root):
    """(run name, metrics.json record) for every run directory directly under `root`, sorted by name:
    the attack verbs write one metrics.json a run, named by its directory."""
    import glob
    import json
    import os

    for path in sorted(glob.glob(os.path.join(root, "*", "metrics.json"))):
        with open(path) as f:
            yield os.path.basename(os.path.dirname(path)), json.load(f)


def summary_cells(summary):
    """PSNR, paper SSIM and standard SSIM of an `evaluate` summary, each "mean [low, high]"."""
    from mia_tf.metrics import Summary

    return [Summary(**summary[key]).format(digits) for key, _, digits in METRICS]


def metrics_table(summary):
    """The table every attack verb prints: mean, 95 % CI and count, naming which SSIM is which."""
    rows = []
    for key, label, digits in METRICS:
        s = summary[key]
        rows.append([label, f"{s['mean']:.{digits}f}", f"[{s['ci95_low']:.{digits}f}, {s['ci95_high']:.{digits}f}]",
                     s["count"]])
    return format_table(["metric", "mean", "95 % CI", "images"], rows)


def write_results_file(path, text, record=None):
    """Write a Markdown results file atomically and, if `record` is given, its figures as JSON beside it."""
    import os

    from mia_tf.io import atomic_path, write_json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
    if record is not None:
        write_json(os.path.splitext(path)[0] + ".json", record)


def save_grid(path, originals, reconstructions, max_images=10, scale=4):
    """PNG: originals in the top row (if known), reconstructions below, images in [0, 1] (N, H, W, C)."""
    import numpy as np
    from PIL import Image

    from mia_tf.io import atomic_path

    shown = [reconstructions] if originals is None else [originals, reconstructions]
    rows = [np.concatenate(list(images[:max_images]), axis=1) for images in shown]
    grid = np.concatenate(rows, axis=0)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    pixels = np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
