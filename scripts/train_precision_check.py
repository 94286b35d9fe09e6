"""What bfloat16 arithmetic in *training* the attacker's models costs in quality and saves in time
(`--train-dtype`, `query_pairs.fit_pairs`).

The query-free cells of Table 6 and the black-box cells of Tables 4 and 8 spend hours training
shadows and decoders on CIFAR-10. This trains each model twice on the same data from the same
initial weights, once in float32 and once with its layers computing in another type, and attacks
the same victims with both:

    python scripts/train_precision_check.py --dataset cifar10 --layer relu22 --epochs 5 --images 0-99 \
        --out results/train_precision_check.md

- query-free shadow (the `paper` preset's: the head's structure, dist data, through the frozen
  tail), then the authors' rMLE through it (500 steps, in float32 both times);
- black-box inverse network (the `best` decoder, dist data, MSE + SSIM loss), applied to the
  victims' real features.

Trained models go to a fresh temporary cache unless --cache-dir is given.
"""

import argparse
import dataclasses
import tempfile
import time

import keras

from mia_tf import data, experiment, metrics, models
from mia_tf.attacks import cache, inverse_network, query_free, whitebox
from mia_tf.attacks.context import AttackContext
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.image_space import ImageSpace
from mia_tf.precision import native_bfloat16
from mia_tf.report import made_by, markdown_table_page, write_results_file


def ms_per_step(path, settings, examples):
    """Training milliseconds per batch of `settings`, from the cache's training record."""
    steps = settings.epochs * -(-examples // settings.batch_size)
    return 1000 * cache.training_record(path)["seconds"] / steps


def scores_of(target, reconstruction):
    summary = metrics.evaluate(target.images / 255.0, data.denormalize(reconstruction, target.dataset))["summary"]
    return f"{summary['psnr']['mean']:.2f}", f"{summary['ssim_paper']['mean']:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    experiment.add_split_arguments(parser, victims="0-99")
    parser.set_defaults(dataset="cifar10", layer="relu22")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of each model (the presets' 30-50)")
    parser.add_argument("--train-dtype", default="bfloat16", help="the type compared with float32")
    args = parser.parse_args()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="mia_tf_train_precision_")
    started = time.time()
    target = experiment.prepare(args.dataset, None, args.layer, args.images)
    features = target.features()
    attacker = data.attacker_set(target.dataset, "dist", args.data_dir)
    attacker_images, space = len(attacker), ImageSpace.of_dataset(target.dataset)
    tail_sha256, model_sha256 = models.weights_sha256(target.tail), models.weights_sha256(target.model)
    rows = []
    for dtype in (None, args.train_dtype):
        settings = query_free.TailShadowSettings(net="same", epochs=args.epochs, train_dtype=dtype)
        shadow, path, _ = query_free.trained_shadow(target.head, target.tail, tail_sha256, space, attacker,
                                                    settings, AttackContext(cache_dir))
        accuracy = cache.training_record(path)["history"]["accuracy"][-1]
        reconstruction = whitebox.reconstruct(shadow, features, query_free.RMLE,
                                                  pixel_range=data.pixel_range(target.dataset)).reconstruction
        rows.append(["query-free shadow (paper), then rMLE", dtype or "float32", f"{accuracy:.3f}",
                     *scores_of(target, reconstruction), f"{ms_per_step(path, settings, attacker_images):.0f}"])
        print(rows[-1], flush=True)
    for dtype in (None, args.train_dtype):
        keras.utils.set_random_seed(0)  # the same initial decoder weights for both
        settings = dataclasses.replace(inverse_network.PRESETS["best"], epochs=args.epochs, train_dtype=dtype)
        decoder, path, _ = inverse_network.trained_decoder(
            QueryOracle.from_keras(target.head, fingerprint=model_sha256), space, attacker, settings,
            context=AttackContext(cache_dir))
        examples = min(attacker_images, settings.epoch_examples or attacker_images)
        rows.append(["inverse network (best decoder)", dtype or "float32", "",
                     *scores_of(target, inverse_network.invert(decoder, features)),
                     f"{ms_per_step(path, settings, examples):.0f}"])
        print(rows[-1], flush=True)
    text = markdown_table_page(f"Training in float32 against {args.train_dtype} ({args.dataset} {args.layer})", [
        made_by(started, f", {'with' if native_bfloat16() else 'without'} native bfloat16 (other jobs on the cores slow "
                         f"both types alike)"),
        f"Each model trained {args.epochs} epochs on the dist set ({attacker_images} images) from the same seed; "
        f"victims: test images {args.images}. Tail accuracy: the frozen tail's on the shadow's features, "
        f"last epoch, on the training images. ms / step: training time per batch of 32, from the cache's record.",
    ], ["model", "training arithmetic", "tail accuracy", "PSNR dB", "SSIM paper", "ms / step"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
