"""Every split of a model exported as float32, float16 and int8 `.tflite`: size, LiteRT latency,
the tail's accuracy on the device's features, and how much of the input the white-box attack
still rebuilds from those features (does int8 on the device protect the input?).

    python scripts/bench_edge.py --model lenet_mnist --out results/edge/lenet_mnist.md
    python scripts/bench_edge.py --model cifar10_cnn --layers conv11,relu22,relu32 --out results/edge/cifar10_cnn.md

For each split and variant: `mia_tf.export.export_head` converts and checks the head (the tail's
accuracy is measured on the full test set through the device code), LiteRT times it on one
thread (batch 1, p50 of 300 runs), and the attack runs the white-box preset (`paper` by default:
the authors' rMLE, 5000 steps) with the float Keras head against the features the `.tflite`
head actually produced for the victims (default: the paper's 10).
"""

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge.head import EdgeHead  # noqa: E402
from mia_tf import data as data_lib, export as export_lib, metrics, models  # noqa: E402
from mia_tf.attacks import whitebox  # noqa: E402
from mia_tf.image_space import ImageSpace  # noqa: E402
from mia_tf.report import format_table, write_results_file  # noqa: E402
from mia_tf.split import split, split_points  # noqa: E402


def latency_ms(head, images, runs=300):
    head.run(images[:1])
    seconds = []
    for i in range(runs):
        started = time.perf_counter()
        head.run(images[i % len(images)][None])
        seconds.append(time.perf_counter() - started)
    return 1000.0 * float(np.percentile(seconds, 50))


def attack(keras_head, features, victims, dataset, layer, preset, steps=None):
    settings = whitebox.preset(preset, keras_head, ImageSpace.of_dataset(dataset), prior="none")
    settings = dataclasses.replace(settings, steps=steps) if steps else settings
    result = whitebox.reconstruct(keras_head, features, settings, pixel_range=data_lib.pixel_range(dataset))
    scores = metrics.evaluate(victims / 255.0, data_lib.denormalize(result.reconstruction, dataset))["summary"]
    return scores, result.method, result.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet_mnist")
    parser.add_argument("--layers", default=None, help="comma-separated split layers (default: every split point)")
    parser.add_argument("--variants", default="float32,float16,int8")
    parser.add_argument("--images", default="paper10", help="victims for the attack (see --images of whitebox)")
    parser.add_argument("--preset", default="paper", help="white-box preset (its zero-start form: no decoder)")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps (0: no attack)")
    parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--out", required=True, help="Markdown file (a .json with the raw figures beside it)")
    args = parser.parse_args()

    model, dataset, label = models.resolve_model(args.model)
    layers = args.layers.split(",") if args.layers else [p.layer for p in split_points(model)]
    test_images, test_labels = data_lib.load(dataset, "test", args.data_dir)
    calibration = data_lib.load(dataset, "train", args.data_dir)[0][:200]
    _, victims, _ = data_lib.victims(dataset, args.images)
    sample = data_lib.load_sample(dataset)[0]
    rows, raw = [], []
    started_all = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        for layer in layers:
            keras_head = split(model, layer)[0]
            for variant in args.variants.split(","):
                path, manifest = export_lib.export_head(model, layer, variant, scratch, dataset, label, calibration,
                                                        sample[:100], test_images, test_labels)
                device = EdgeHead(path, num_threads=1)
                features = device.features(victims)
                scores, method, seconds = attack(keras_head, features, victims, dataset, layer, args.preset, args.steps) \
                    if args.steps != 0 else ({}, "-", 0.0)
                figures = {"layer": layer, "variant": variant, "tflite_bytes": manifest["tflite_bytes"],
                           "latency_ms_batch1_1thread": latency_ms(device, sample),
                           "feature_bytes_per_image": int(np.prod(manifest["output"]["shape"]))
                           * np.dtype(manifest["output"]["dtype"]).itemsize,
                           "accuracy": manifest["check"]["tail_accuracy_tflite_head"],
                           "accuracy_keras": manifest["check"]["tail_accuracy_keras_head"],
                           "attack_method": method, "attack_seconds": seconds, **scores}
                raw.append(figures)
                cells = [layer, variant, f"{figures['tflite_bytes']:,}", f"{figures['latency_ms_batch1_1thread']:.3f}",
                         f"{figures['feature_bytes_per_image']:,}", f"{100 * figures['accuracy']:.2f}"]
                if scores:
                    cells += [f"{scores['psnr']['mean']:.2f}",
                              f"{scores['ssim_paper']['mean']:.4f}", f"{scores['ssim_standard']['mean']:.4f}"]
                rows.append(cells)
                print(" | ".join(cells), flush=True)
    headers = ["split", "head", ".tflite bytes", "latency ms (batch 1, 1 thread)", "bytes sent per image",
               f"accuracy % ({len(test_labels)} test images)", "PSNR dB", "SSIM paper", "SSIM standard"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    command = "python scripts/bench_edge.py " + " ".join(sys.argv[1:])
    settings = dataclasses.asdict(whitebox.preset(args.preset, split(model, layers[0])[0],
                                                  ImageSpace.of_dataset(dataset), prior="none"))
    text = (f"# {label}: exported heads, their cost on the device, and what the server can rebuild\n\n"
            f"Made by `{command}` on {machine} in {time.time() - started_all:.0f} s. Accuracy: the tail on the "
            f"`.tflite` head's (de-quantised) features, full test set (Keras head: "
            f"{100 * raw[0]['accuracy_keras']:.2f} %). Attack: white-box `{args.preset}` preset from a zero start "
            f"(lambda_TV per split as the authors; settings at {layers[0]}: {settings}) on the victims "
            f"`{args.images}`, with the float Keras head, against the features the `.tflite` head produced; "
            f"paper SSIM uses the reconstruction's own data range.\n\n"
            + format_table(headers[:len(rows[0])], rows) + "\n")
    write_results_file(args.out, text, {"command": command, "machine": machine, "rows": raw})
    print(text)


if __name__ == "__main__":
    main()
