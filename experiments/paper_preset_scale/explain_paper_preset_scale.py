"""Why the `paper` preset misses the paper's CIFAR figures on the shipped CNN: the scale of the head.

The authors' settings are absolute numbers: Adam's epsilon 1e-3 and lambda_TV per split. Both only
mean what they meant in the paper if the head's features and gradients have the size they had in
the authors' model. Adam's step is lr * g / (sqrt(v) + epsilon): where the gradient g is much
smaller than epsilon the step shrinks to lr * g / epsilon, plain gradient descent whose speed
goes with the square of the head's weights. And lambda_TV weighs smoothness against a feature
loss whose size goes with the features' energy. Weight decay during training shrinks both.

For each weights file and split this prints the head's scale (mean |kernel| of the first conv,
RMS of the victims' features, RMS of the rMLE gradient at the zero start) beside the `paper`
preset's PSNR, and the same with epsilon 1e-8 (Adam as scale-free as it is meant to be).

    git show 036adff:mia_tf/zoo/cifar10_cnn.weights.h5 > /tmp/cifar10_cnn_50_epochs.weights.h5
    python experiments/paper_preset_scale/explain_paper_preset_scale.py --weights 50-epochs=/tmp/cifar10_cnn_50_epochs.weights.h5 \
        --layers conv11,relu22,relu32 --epsilons 1e-3 --out results/whitebox_paper_preset_scale/50_epochs.md
    python experiments/paper_preset_scale/explain_paper_preset_scale.py --weights shipped=mia_tf/zoo/cifar10_cnn.weights.h5 \
        --layers conv11 --epsilons 1e-3,1e-8 --out results/whitebox_paper_preset_scale/shipped.md
    python experiments/paper_preset_scale/explain_paper_preset_scale.py --weights shipped=mia_tf/zoo/cifar10_cnn.weights.h5 \
        --layers relu22 --epsilons 1e-3 --out results/whitebox_paper_preset_scale/shipped_relu22.md

(036adff is the commit that shipped the CNN after its first 50 epochs, before the warm restart
with weight decay that made the shipped weights.)
"""

import argparse
import dataclasses
import os
import platform
import time

import numpy as np

from mia_tf import data, metrics, models
from mia_tf.attacks import whitebox
from mia_tf.report import format_table, write_results_file
from mia_tf.split import split

PAPER_PSNR = {"conv11": 37.59, "relu22": 19.47, "relu32": 13.38}


def gradient_rms(head, features):
    """RMS over pixels of the gradient of the feature loss at the zero start."""
    import tensorflow as tf

    x = tf.zeros((len(features), *head.input.shape[1:]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        feature_loss = tf.reduce_sum(tf.reduce_mean(tf.square(head(x) - features), axis=[1, 2, 3]))
    feature_grad = tape.gradient(feature_loss, x).numpy()
    return float(np.sqrt(np.mean(feature_grad ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", action="append", required=True, metavar="LABEL=PATH",
                        help="CIFAR-10 CNN weights (.weights.h5) to compare; repeat the option")
    parser.add_argument("--layers", default="conv11,relu22,relu32")
    parser.add_argument("--epsilons", default="1e-3,1e-8", help="Adam epsilons to try (1e-3 is the paper's)")
    parser.add_argument("--out", default="results/whitebox_paper_preset_scale.md")
    args = parser.parse_args()
    started = time.time()
    _, images, _ = data.victims("cifar10", "paper10")
    x = data.normalize(images, "cifar10")
    rows, raw = [], []
    for item in args.weights:
        label, path = item.split("=", 1)
        model = models.cifar10_cnn()
        model.load_weights(path)
        kernel = float(np.mean(np.abs(model.get_layer("conv11").kernel.numpy())))
        for layer in args.layers.split(","):
            head, _ = split(model, layer)
            features = head.predict(x, verbose=0)
            settings = whitebox.preset("paper", "cifar10", layer)
            grad = gradient_rms(head, features)
            for epsilon in (float(e) for e in args.epsilons.split(",")):
                result = whitebox.whitebox_attack(head, features, dataclasses.replace(settings, epsilon=epsilon))
                psnr = float(metrics.psnr(images / 255.0, data.denormalize(result.reconstruction, "cifar10")).mean())
                raw.append(dict(weights=label, path=path, layer=layer, conv11_abs_kernel=kernel,
                                feature_rms=float(np.sqrt(np.mean(features ** 2))), gradient_rms=grad,
                                tv_weight=settings.tv_weight, epsilon=epsilon, psnr=psnr,
                                final_loss=float(result.loss[-1]), seconds=result.seconds))
                rows.append([label, layer, f"{kernel:.4f}", f"{raw[-1]['feature_rms']:.4f}", f"{grad:.2e}",
                             settings.tv_weight, f"{epsilon:g}", f"{psnr:.2f}", PAPER_PSNR.get(layer, "-"),
                             f"{result.seconds:.0f}"])
                print(rows[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    weights = " ".join(f"--weights {w}" for w in args.weights)
    text = "\n".join([
        "# The paper preset and the scale of the head (CIFAR-10 CNN, the paper's 10 victims)",
        "",
        f"Command: `python experiments/paper_preset_scale/explain_paper_preset_scale.py {weights} --layers {args.layers} "
        f"--epsilons {args.epsilons} --out {args.out}`. Machine: {machine}; {time.time() - started:.0f} s.",
        "Preset `paper` (5000 Adam steps, lr 1e-2, amsgrad, zero start, the authors' lambda_TV), Adam's epsilon "
        "as in the column. Gradient: RMS of d(feature loss)/dx at the zero start.",
        "",
        format_table(["weights", "split", "mean |conv11 kernel|", "feature RMS", "gradient RMS", "lambda_TV",
                      "Adam epsilon", "PSNR dB", "paper", "seconds"], rows),
        "",
    ])
    write_results_file(args.out, text, {"machine": machine, "rows": raw})
    print(text)


if __name__ == "__main__":
    main()
