"""Attack your own split model: how much of the input leaks at each place you could cut it?

A walk-through from top to bottom with the library's API, on a model that is not in the zoo: a
small MNIST CNN with batch normalisation and a residual block, trained here for a moment on the
real MNIST training set. For each place where the model can be cut it runs

- the white-box attack (the server knows the head's weights): rMLE, `whitebox.whitebox_attack`;
- the black-box attack (the server can only query the head): an inverse network trained on the
  answers to its own images, `blackbox.blackbox_attack`;

and prints one table: split, bytes sent per image, the device's share of the compute, and the
PSNR / SSIM of each attack on the paper's 10 victims. The deeper the cut, the less leaks, and
the more the device computes: that trade-off is what a model owner chooses from.

    python examples/attack_your_own_model.py --data-dir ../shared/data            # ~9 min of CPU time
    python examples/attack_your_own_model.py --data-dir ../shared/data --quick    # ~3 min, rougher

The same attacks run from the command line on any saved model: save it with
`model.save("my_model.keras")`, then `python -m mia_tf layers --model my_model.keras` and
`python -m mia_tf whitebox --model my_model.keras --dataset mnist --layer block_out`.
"""

import argparse
import dataclasses
import os

import keras
import numpy as np

from mia_tf import data as data_lib
from mia_tf import metrics, models
from mia_tf.attacks import whitebox
from mia_tf.attacks.blackbox import BlackboxSettings, blackbox_attack
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.io import write_json
from mia_tf.report import format_table
from mia_tf.split import head_flops, split, split_points

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data-dir", default=os.environ.get(data_lib.DATA_DIR_ENV, "../shared/data"))
parser.add_argument("--quick", action="store_true", help="fewer training images, steps and epochs")
parser.add_argument("--out", default="runs/example_own_model", help="results.json and the attack cache go here")
args = parser.parse_args()
keras.utils.set_random_seed(0)

# ## 1. A model of your own
# Any Keras functional (or Sequential) model works. The input is in mia_tf's normalised space for
# MNIST ((pixel / 255 - 0.5) / 0.5), so the attacks and the data helpers agree on what an image is.
inputs = keras.Input((28, 28, 1))
x = keras.layers.Conv2D(16, 3, padding="same", name="stem_conv")(inputs)
x = keras.layers.BatchNormalization(name="stem_bn")(x)
stem = keras.layers.ReLU(name="stem_relu")(x)
x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block_conv1")(stem)
x = keras.layers.Conv2D(16, 3, padding="same", name="block_conv2")(x)
x = keras.layers.ReLU(name="block_out")(keras.layers.Add(name="block_add")([x, stem]))
x = keras.layers.MaxPooling2D(name="pool1")(x)
x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
x = keras.layers.MaxPooling2D(name="pool2")(x)
outputs = keras.layers.Dense(10, name="logits")(keras.layers.Flatten(name="flatten")(x))
model = keras.Model(inputs, outputs, name="my_mnist_cnn")

# ## 2. Train it briefly on the real MNIST training set
train_images, train_labels = data_lib.load("mnist", "train", args.data_dir)
if args.quick:
    train_images, train_labels = train_images[:10_000], train_labels[:10_000]
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(data_lib.normalize(train_images, "mnist"), train_labels, batch_size=128, epochs=1, verbose=2)
test_images, test_labels = data_lib.load("mnist", "test", args.data_dir)
_, accuracy = model.evaluate(data_lib.normalize(test_images, "mnist"), test_labels, batch_size=500, verbose=0)
print(f"test accuracy after one epoch: {accuracy:.4f}")

# ## 3. Where can it be cut?
# A cut is valid where one tensor crosses it: not inside the residual block, where both the block's
# input and its convolutions' output are live. `split_points` lists the valid ones.
points = {p.layer: p for p in split_points(model)}
print(format_table(["split", "features", "bytes per image", "head FLOPs"],
                   [[p.layer, p.feature_shape, f"{p.bytes_per_image:,}", f"{p.head_flops:,}"] for p in points.values()]))
candidates = ["stem_relu", "block_out", "conv2"]
assert all(name in points for name in candidates) and "block_conv1" not in points
total_flops = head_flops(model)  # the whole model's, for the device's share

# ## 4. The victims: the paper's 10 test images (one per class), shipped with the package
_, victim_images, _ = data_lib.victims("mnist", "paper10")
victims = data_lib.normalize(victim_images, "mnist")
truth = victim_images.astype(np.float32) / 255.0


def scores(reconstruction):
    summary = metrics.evaluate(truth, data_lib.denormalize(reconstruction, "mnist"))["summary"]
    return round(summary["psnr"]["mean"], 2), round(summary["ssim_paper"]["mean"], 3)


# ## 5. Attack each cut
# White-box: the `best` preset from a zero start (cosine-scheduled Adam in the pixel box, matching
# the pre-activation at a ReLU; the CLI's `best` also trains a decoder to start from, which takes longer). Black-box: the `best` decoder family, built from the feature
# shape, trained on the answers to the attacker's own images (test images 1000-9999, disjoint
# from the victims); at an affine cut a least-squares linear decoder instead.
whitebox_steps = 300 if args.quick else 2000
# --quick: 1,024 queries, one pass (32 steps of the best decoder, about 1 s each on 2 busy cores).
blackbox_settings = BlackboxSettings(attack="inverse", preset="best", data="dist",
                                     queries=1024 if args.quick else None, epochs=1 if args.quick else 5)
rows, results = [], {}
for layer in candidates:
    head, tail = split(model, layer)
    features = head(victims, training=False).numpy()
    # from a zero start; the features' scale sets lambda_TV at a split the presets were not tuned on
    settings = dataclasses.replace(whitebox.preset("best", "mnist", layer, prior="none", features=features),
                                   steps=whitebox_steps)
    white = whitebox.whitebox_attack(head, features, settings, pixel_range=data_lib.pixel_range("mnist"))
    oracle = QueryOracle.from_keras(head, budget=blackbox_settings.query_budget(len(features)))
    black = blackbox_attack(oracle, models.weights_sha256(model), head, features, "mnist", layer, blackbox_settings,
                            data_dir=args.data_dir, cache=os.path.join(args.out, "cache"), log=lambda line: None)
    results[layer] = {"whitebox": scores(white.reconstruction), "whitebox_tv_weight": settings.tv_weight,
                      "blackbox": scores(black.reconstruction), "blackbox_decoder": black.record["decoder_family"],
                      "bytes_per_image": points[layer].bytes_per_image,
                      "device_share_of_flops": round(points[layer].head_flops / total_flops, 3)}
    rows.append([layer, f"{points[layer].bytes_per_image:,}", f"{results[layer]['device_share_of_flops']:.0%}",
                 "%.2f / %.3f" % results[layer]["whitebox"], "%.2f / %.3f" % results[layer]["blackbox"]])

# ## 6. Read the table
# PSNR above about 20 dB means the digits are legible; a black image scores about 10 dB here. The
# first cut sends the input almost in the clear; deeper cuts leak less but keep more of the model
# on the device.
print(format_table(["split", "bytes sent", "device FLOPs", "white-box PSNR / SSIM", "black-box PSNR / SSIM"], rows))
write_json(os.path.join(args.out, "results.json"), {"quick": args.quick, "test_accuracy": round(accuracy, 4),
                                                    "splits": results})
print(f"wrote {os.path.join(args.out, 'results.json')}")
