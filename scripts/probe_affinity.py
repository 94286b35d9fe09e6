"""Run the black-box `best` preset's affinity probe on every split of the zoo models (and on given
.tflite heads), with dist and noise probe images: where AFFINE_TOLERANCE sits between affine and
non-affine heads.

    python scripts/probe_affinity.py --data-dir ../shared/data --out results/affine_probe.md \
        --tflite runs/exports/lenet_mnist_conv1_float16.tflite runs/exports/lenet_mnist_conv1_int8.tflite

Each probe costs 12 queries (`inverse_network.probe_affine`); the whole table takes under a minute.
"""

import argparse
import json
import os
import time

from mia_tf import data as data_lib
from mia_tf import models
from mia_tf.attacks import inverse_network
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.report import markdown_table_page, write_results_file
from mia_tf.split import split, split_points

PROBE_DATA = ("dist", "noise")


def probe_images(dataset, setting, data_dir):
    images = data_lib.attacker_set(dataset, setting, data_dir, limit=2 * inverse_network.AFFINE_PROBES).images
    return images


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--tflite", nargs="*", default=[], help=".tflite heads exported by `python -m mia_tf export`")
    args = parser.parse_args()
    started = time.time()
    rows = []
    for dataset, model_name in models.DEFAULT_MODEL.items():
        model, _, label = models.load_model(model_name)
        images = {setting: probe_images(dataset, setting, args.data_dir) for setting in PROBE_DATA}
        for point in split_points(model):
            head, _ = split(model, point.layer)
            for setting in PROBE_DATA:
                result = inverse_network.probe_affine(QueryOracle.from_keras(head), images[setting])
                rows.append([label, point.layer, "keras float32", setting, result["deviation"], result["affine"]])
    for path in args.tflite:
        with open(os.path.splitext(path)[0] + ".json") as f:
            manifest = json.load(f)
        for setting in PROBE_DATA:
            result = inverse_network.probe_affine(QueryOracle.from_tflite(path),
                                                  probe_images(manifest["dataset"], setting, args.data_dir))
            rows.append([manifest["model"], manifest["layer"], os.path.basename(path), setting, result["deviation"],
                         result["affine"]])
    text = markdown_table_page("The affinity probe on every split", [
        f"Made by `python scripts/probe_affinity.py --out {args.out}"
        f"{' --tflite ' + ' '.join(args.tflite) if args.tflite else ''}` in {time.time() - started:.0f} s.",
        f"Relative deviation |f((a+b)/2) - (f(a)+f(b))/2| / |f(a) - f(b)| over {inverse_network.AFFINE_PROBES} pairs "
        f"of the attacker's images; below {inverse_network.AFFINE_TOLERANCE} the head counts as affine and the "
        "black-box `best` preset fits a least-squares linear decoder.",
    ], ["model", "split", "head", "probe images", "deviation", "affine"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
