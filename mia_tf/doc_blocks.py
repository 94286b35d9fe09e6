"""Tables in README.md and docs/ that are generated from the committed results, never typed.

A generated block sits between two markers; everything between them is rewritten by
`python scripts/render_docs.py`, and `tests/test_docs.py` fails when a block is stale:

    <!-- generated: results/whitebox.md -->      a page (any .md under the repository), embedded whole
    <!-- generated: whitebox-runs -->            one row per run under results/whitebox/
    <!-- generated: paper-blackbox -->           our presets beside the paper's figures
    <!-- end generated -->

The paper's figures come from `mia_tf.paper`; ours from each run's metrics.json.
"""

import json
import os
import re

from mia_tf import paper
from mia_tf.report import run_records

BLOCK = re.compile(r"(<!-- generated: (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _cell(summary):
    return f"{summary['psnr']['mean']:.2f} / {summary['ssim_paper']['mean']:.3f}"


def _paper_cell(figure):
    return "-" if figure is None else f"{figure[0]:.2f} / {figure[1]:.4f}".replace(" 0.", " .")  # SSIM as the paper prints it


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _runs_by_name(root, attack, pattern):
    """{name fields: record} of the runs under results/<attack>/ whose directory name matches."""
    found = {}
    for name, record in run_records(os.path.join(root, "results", attack)):
        match = re.fullmatch(pattern, name)
        if match:
            found[match.groups()] = record
    return found


def _split_label(dataset, layer):
    return f"{'MNIST' if dataset == 'mnist' else 'CIFAR'} {layer}"


def _presets_row(label, paper_run, best_run, figure):
    """A row of a comparison table: our `paper` and `best` runs (or "-") beside the paper's figure."""
    return [label, *[_cell(r["summary"]) if r else "-" for r in (paper_run, best_run)], _paper_cell(figure)]


def _paper_whitebox(root):
    runs = _runs_by_name(root, "whitebox", r"(he2019_lenet|cifar10_cnn)_(\w+)_(paper|best)_(paper10|0-999)")
    rows = []
    for dataset, layer in paper.SPLITS:
        model = "he2019_lenet" if dataset == "mnist" else "cifar10_cnn"
        cells = [_cell(runs[key]["summary"]) if key in runs else "-"
                 for key in ((model, layer, "paper", "paper10"), (model, layer, "paper", "0-999"),
                             (model, layer, "best", "0-999"))]
        authors = paper.AUTHORS_CODE_WHITEBOX.get((dataset, layer))
        rows.append([f"{_split_label(dataset, layer)} ({model})", _paper_cell(authors), *cells,
                     _paper_cell(paper.figure(("whitebox",), dataset, layer))])
    return _table(["split (model)", "authors' code, 10 images", "`paper`, 10 images", "`paper`, 0-999",
                   "`best`, 0-999", "the paper, 10 images"], rows)


def _paper_blackbox(root):
    runs = _runs_by_name(root, "blackbox", r"(mnist|cifar10)_(\w+?)_(inverse|shadow|hybrid)_(same|dist|noise)_(paper|best)")
    rows = []
    for dataset, layer in paper.SPLITS:
        for attack, data in (("inverse", "same"), ("inverse", "dist"), ("inverse", "noise"), ("shadow", "same"),
                             ("hybrid", "dist")):
            cells = [runs.get((dataset, layer, attack, data, preset)) for preset in ("paper", "best")]
            if any(cells):
                rows.append(_presets_row(f"{_split_label(dataset, layer)}, {attack}, {data}", *cells,
                                         paper.figure(("blackbox", attack, data), dataset, layer)))
    return _table(["split, attack, attacker data", "`paper` preset", "`best` preset", "the paper, 10 images"], rows)


def _paper_queryfree(root):
    runs = _runs_by_name(root, "queryfree", r"(mnist|cifar10)_(\w+?)_(same|dist)_(same|diff)_(paper|best)")
    layers = sorted({(k[0], k[1]) for k in runs}, key=lambda s: (s[0] != "mnist", s not in paper.SPLITS, s))
    rows = []
    for dataset, layer in layers:
        for data in ("same", "dist"):
            for net in ("same", "diff"):
                cells = [runs.get((dataset, layer, data, net, preset)) for preset in ("paper", "best")]
                if any(cells):
                    rows.append(_presets_row(f"{_split_label(dataset, layer)}, {data}, {net}", *cells,
                                             paper.figure(("queryfree", data, net), dataset, layer)))
    return _table(["split, shadow data, shadow net", "`paper` preset", "`best` preset", "the paper, 10 images"], rows)


def _blackbox_queries(root):
    runs = _runs_by_name(root, "blackbox", r"(mnist|cifar10)_(\w+?)_(inverse|hybrid)_dist_best(?:_q(\d+))?")
    rows = []
    for dataset, layer in paper.SPLITS:
        if (dataset, layer, "inverse", "1000") not in runs:
            continue
        cells = [runs.get((dataset, layer, "inverse", q)) for q in ("1000", "3000", None)]
        seconds = [f" ({r['decoder_training']['seconds']:,.0f} s)" if r and r.get("decoder_training") else ""
                   for r in cells]
        rows.append([_split_label(dataset, layer), *[(_cell(r["summary"]) + s) if r else "-"
                                                     for r, s in zip(cells, seconds)]])
    return _table(["`best` decoder, dist data", "1,000 queries", "3,000 queries", "all 9,000"], rows)


def _zoo_models(root):
    """The shipped models from their training reports (mia_tf/zoo/<model>.json)."""
    rows = []
    for name in ("lenet_mnist", "cifar10_cnn"):
        with open(os.path.join(root, "mia_tf", "zoo", f"{name}.json")) as f:
            report = json.load(f)
        recipe = report["recipe"]
        start = "warm restart of trained weights" if report.get("init_weights") else "from scratch"
        rows.append([f"`{name}`", report["dataset"], f"{100 * report['test_accuracy']:.2f} % ({report['test_images']:,})",
                     f"{recipe['epochs']} epochs {start}, lr {recipe['learning_rate']:g}, weight decay "
                     f"{recipe.get('weight_decay', 0):g}, cutout {recipe.get('cutout', 0)}",
                     f"{report['seconds_all_epochs']:,.0f}"])
    return _table(["zoo name", "data set", "test accuracy (test images)", "recipe", "seconds of epochs"], rows)


def _example_own_model(root):
    """The full-size run of examples/attack_your_own_model.py (results/examples/attack_your_own_model.json)."""
    with open(os.path.join(root, "results", "examples", "attack_your_own_model.json")) as f:
        run = json.load(f)
    attacks = ("whitebox", "blackbox", "queryfree")
    rows = [[f"`{name}`", f"{found['bytes_per_image']:,}", f"{100 * found['device_share_of_flops']:.0f} %",
             *(f"{found[attack][0]:.2f} / {found[attack][1]:.3f} ({found[attack][2]:.0f} s)" for attack in attacks)]
            for name, found in sorted(run["splits"].items(), key=lambda item: item[1]["device_share_of_flops"])]
    return _table(["cut", "bytes sent per image", "device's share of the FLOPs", "white-box best", "black-box best",
                   "query-free best"], rows)


GENERATORS = {"zoo-models": _zoo_models, "example-own-model": _example_own_model, "paper-whitebox": _paper_whitebox,
              "paper-blackbox": _paper_blackbox, "paper-queryfree": _paper_queryfree,
              "blackbox-queries": _blackbox_queries}


def _results_page(root, path):
    with open(os.path.join(root, path)) as f:
        page = f.read().strip()
    return f"From `{path}`:\n\n```text\n{page}\n```\n"


def _runs_table(root, attack):
    """A Markdown table of every run under results/<attack>/: split, preset, victims, PSNR, SSIM, time."""
    rows = [[record["model"], record["layer"], record["preset"], str(record["victims"]),
             f"{record['summary']['psnr']['mean']:.2f}", f"{record['summary']['ssim_paper']['mean']:.3f}",
             f"{record['seconds']:.0f}"] for _, record in run_records(os.path.join(root, "results", attack))]
    return _table(["model", "split", "preset", "victims", "PSNR dB", "SSIM (paper)", "attack seconds"], rows)


def generate(name, root):
    """The body of the block called `name`, from the files under the repository `root`."""
    if name in GENERATORS:
        return GENERATORS[name](root)
    if name.endswith("-runs"):
        return _runs_table(root, name[:-len("-runs")])
    if name.endswith(".md"):
        return _results_page(root, name)
    raise ValueError(f"unknown generated block {name!r}: use a page's path, <attack>-runs or one of {sorted(GENERATORS)}")


def render(text, root):
    """`text` with every generated block rewritten from the files under `root`."""
    return BLOCK.sub(lambda m: m.group(1) + generate(m.group("name"), root) + m.group(4), text)


def documents(root):
    """README.md and every page under docs/: the files that may hold generated blocks."""
    docs = os.path.join(root, "docs")
    return [os.path.join(root, "README.md")] + sorted(
        os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md"))
