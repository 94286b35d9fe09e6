"""Attack your own split model: how much of the input leaks at each place you could cut it?

A walk-through from top to bottom with `import mia_tf` alone, on a model that is not in the zoo:
a small CNN with batch normalisation, a residual block and its own preprocessing layers (it takes
raw pixel values 0-255 and normalises them with statistics it learnt from its training images,
neither MNIST's nor CIFAR-10's convention), trained here for a moment on real MNIST digits. For
each place where it can be cut, all three attacks run at their `best` preset:

- white-box (the server knows the head's weights): `mia_tf.whitebox_attack`;
- black-box (the server can only query the head): `mia_tf.blackbox_attack`;
- query-free (the server holds only the tail and labelled images of its own): `mia_tf.queryfree_attack`;

and one table shows, per cut, bytes sent per image, the device's share of the compute and the
PSNR / SSIM of each attack on the paper's 10 victims. The deeper the cut, the less leaks, and the
more the device computes: that trade-off is what a model owner chooses from.

    python examples/attack_your_own_model.py --data-dir ../shared/data            # about an hour on 2 cores
    python examples/attack_your_own_model.py --data-dir ../shared/data --quick    # one cut, small: ~2 min
"""

import argparse
import dataclasses
import json
import logging
import os
import platform
import time

import keras
import numpy as np

import mia_tf

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--data-dir", default=os.environ.get("MIA_TF_DATA_DIR", "../shared/data"))
parser.add_argument("--quick", action="store_true", help="fewer images, steps and epochs: a check that it runs")
parser.add_argument("--out", default="runs/example_own_model", help="results.json and the attack cache go here")
args = parser.parse_args()
started = time.time()
keras.utils.set_random_seed(0)
logging.basicConfig(format="%(message)s")
logging.getLogger("mia_tf").setLevel(logging.INFO)  # what the attacks train, load and decide

# ## 1. Your data
# Real MNIST digits: the model's training images, and images the attacker owns. The attacker's
# are test images 1000-9999, disjoint from the training set and from the victims (test images
# 0-999 are only ever scored, never trained or tuned on).
train_images, train_labels = mia_tf.load("mnist", "train", args.data_dir)
test_images, test_labels = mia_tf.load("mnist", "test", args.data_dir)
if args.quick:
    train_images, train_labels = train_images[:10_000], train_labels[:10_000]
attacker_pixels, attacker_labels = test_images[1000:], test_labels[1000:]

# ## 2. A model of your own, with its preprocessing inside
# It takes raw pixel values (0-255) and normalises them itself, with the mean and variance a
# `Normalization` layer learns from the training images: preprocessing travels with the model.
normalization = keras.layers.Normalization(name="normalize")
normalization.adapt(train_images.astype(np.float32) / 255.0)
inputs = keras.Input((28, 28, 1), name="pixels")
x = normalization(keras.layers.Rescaling(1 / 255, name="to_unit")(inputs))
x = keras.layers.Conv2D(16, 3, padding="same", name="stem_conv")(x)
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
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
model.fit(train_images.astype(np.float32), train_labels, batch_size=128, epochs=1, verbose=2)
_, accuracy = model.evaluate(test_images.astype(np.float32), test_labels, batch_size=500, verbose=0)
print(f"test accuracy after one epoch: {accuracy:.4f}")

# ## 3. What an image is to this model
# `ImageSpace.from_model` reads the normalisation off the model's Rescaling and Normalization
# layers. The attacks work on normalised images and cut those layers off the head themselves.
space = mia_tf.ImageSpace.from_model(model, pixel_scale=255)
print(f"the model normalises pixels in [0, 1] with mean {space.mean[0]:.4f} and std {space.std[0]:.4f}")
# The attacker's own images, checked against the space and normalised; labels for the query-free attack.
attacker_count = 512 if args.quick else len(attacker_pixels)
mine = mia_tf.AttackerData.from_images(attacker_pixels[:attacker_count], space, attacker_labels[:attacker_count])

# ## 4. Where can it be cut?
# A cut is valid where one tensor crosses it: not inside the residual block, where both the block's
# input and its convolutions' output are live. `split_points` lists the valid ones.
points = {p.layer: p for p in mia_tf.split_points(model)}
candidates = ["block_out"] if args.quick else ["stem_relu", "block_out", "conv2"]
assert all(name in points for name in candidates) and "block_conv1" not in points
total_flops = points["flatten"].head_flops + 2 * 7 * 7 * 32 * 10  # and the logits': the whole model's

# ## 5. The victims: the paper's 10 test images (one per class), shipped with the package
_, victim_pixels, _ = mia_tf.victims("mnist", "paper10")

# ## 6. Attack each cut, each attack at its `best` preset
# White-box: a decoder trained through the head on the attacker's images, refined by rMLE.
# Black-box: the same from query answers only (a decoder, and a shadow head to refine through).
# Query-free: shadow heads trained through the frozen tail on the attacker's labelled images,
# inverted with decoders trained through them. The settings follow from each head (feature
# energy, shape, affinity); nothing was tuned on this model. --quick trims steps and epochs.
context = mia_tf.AttackContext(cache_dir=os.path.join(args.out, "cache"))
blackbox_settings = mia_tf.BlackboxSettings(attack="hybrid", preset="best", queries=512 if args.quick else None,
                                            epochs=1 if args.quick else None, steps=100 if args.quick else None)
queryfree_settings = mia_tf.QueryFreeSettings("best", shadows=2 if args.quick else 3, epochs=1 if args.quick else 20)
rows, results = [], {}
for layer in candidates:
    head, tail = mia_tf.split(model, layer)
    features = head.predict(victim_pixels.astype(np.float32), verbose=0)  # what the server receives
    whitebox_settings = mia_tf.whitebox_preset("best", head, space, features=features)
    if args.quick:
        whitebox_settings = dataclasses.replace(whitebox_settings, steps=100)
    attacks = {
        "whitebox": mia_tf.whitebox_attack(head, features, whitebox_settings, attacker_data=mine, space=space,
                                           context=context),
        # the head answers queries and is never read; `structure` (its layers) shapes the shadow
        "blackbox": mia_tf.blackbox_attack(head, features, blackbox_settings, attacker_data=mine, space=space,
                                           context=context, structure=head),
        "queryfree": mia_tf.queryfree_attack(tail, features, queryfree_settings, attacker_data=mine, space=space,
                                             context=context, structure=head),
    }
    scored = {name: mia_tf.score(result, victim_pixels) for name, result in attacks.items()}
    results[layer] = {name: [round(result.metrics["summary"]["psnr"]["mean"], 2),
                             round(result.metrics["summary"]["ssim_paper"]["mean"], 3), result.seconds["total"]]
                      for name, result in scored.items()}
    results[layer].update(bytes_per_image=points[layer].bytes_per_image,
                          device_share_of_flops=round(points[layer].head_flops / total_flops, 3),
                          whitebox_settings=scored["whitebox"].settings)
    rows.append([layer, f"{points[layer].bytes_per_image:,}", f"{results[layer]['device_share_of_flops']:.0%}",
                 *("%.2f / %.3f" % tuple(results[layer][name][:2]) for name in attacks)])

# ## 7. Read the table
# PSNR above about 20 dB means the digits are legible; a black image scores about 10 dB here. The
# first cut sends the input almost in the clear; deeper cuts leak less but keep more of the model
# on the device. Each `AttackResult` also prints its own table and JSON (`result.table()`,
# `result.to_json()`): what it trained or loaded, what it decided, and how long each part took.
print(f"{'split':<10} {'bytes sent':>10} {'device FLOPs':>12}  {'white-box':<14} {'black-box':<14} query-free"
      "  (PSNR dB / SSIM)")
for layer, sent, share, white, black, queryfree in rows:
    print(f"{layer:<10} {sent:>10} {share:>12}  {white:<14} {black:<14} {queryfree}")
print(scored["queryfree"].table())
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump({"quick": args.quick, "test_accuracy": round(accuracy, 4), "space": dataclasses.asdict(space),
               "splits": results, "seconds": round(time.time() - started),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "finished": time.strftime("%Y-%m-%d %H:%M")},
              f, indent=1)
print(f"wrote {os.path.join(args.out, 'results.json')}")
