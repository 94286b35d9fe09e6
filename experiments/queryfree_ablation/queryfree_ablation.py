"""What each idea of the query-free `best` preset adds (issue 5, "go beyond"), one split at a time.

The query-free attacker trains a shadow head through the frozen tail. The tail accepts many
re-mappings of its input, so the shadow's features need not line up with the real head's, and
inverting the real features through the shadow then fails. Each row changes one thing:

- shadow: trained on labels alone (`paper`), or also pulled towards the per-channel mean and
  standard deviation of the intercepted features (`+stats`, the server sees those for free);
- inversion: the authors' rMLE (500 steps, lr 0.1, lambda_TV 2, zero start), a decoder trained
  through the shadow on the attacker's images, or that decoder refined by the white-box `best`
  rMLE through the shadow (an affine shadow: exact least squares through it, no decoder);
- several shadows (other seeds): their reconstructions averaged, per victim the one whose shadow
  explains the intercepted features best (smallest ||shadow(x0) - v|| / ||v||, which the attacker
  can compute), or one decoder trained on all their features.

"feature gap" = ||shadow(x) - f1(x)|| / ||f1(x)|| on the victims' true images: how far the
shadow's features are from the real ones (the attacker cannot measure it; it explains the rows).

    python experiments/queryfree_ablation/queryfree_ablation.py --dataset mnist --layer relu2 --data dist --images 0-99 \
        --out results/queryfree_ablation/mnist_relu2_dist_same.md
"""

import argparse
import dataclasses
import os
import platform
import time

import numpy as np

from mia_tf import data, experiment, metrics, models
from mia_tf.attacks import cache as cache_lib, inverse_network, query_free, whitebox
from mia_tf.attacks.oracle import QueryOracle
from mia_tf.report import format_table, write_results_file
from mia_tf.split import split


def scores(images, reconstruction, dataset):
    recovered = data.denormalize(reconstruction, dataset)
    truth = images / 255.0
    return float(metrics.psnr(truth, recovered).mean()), float(metrics.ssim_paper(truth, recovered).mean())


def mixture_decoder(shadows, dataset, layer, attacker_data, data_dir, cache_dir):
    """A decoder trained on features from several shadows, batches answered by each in turn: if
    it inverts every shadow's re-mapping it may invert the real head's too."""
    answered = [0]

    def answer(x):
        answered[0] += 1
        return shadows[answered[0] % len(shadows)].predict(x, verbose=0)

    oracle = QueryOracle(answer, shadows[0].input.shape[1:], shadows[0].output.shape[1:])
    source = cache_lib.cache_key([models.weights_sha256(shadow) for shadow in shadows])
    return inverse_network.trained_decoder(oracle, source, dataset, layer, attacker_data,
                                           query_free.shadow_decoder_settings(attacker_data), data_dir=data_dir,
                                           cache=cache_dir)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    experiment.add_split_arguments(parser, victims="0-99")
    parser.add_argument("--data", default="dist", help="the shadow's training images: same or dist")
    parser.add_argument("--net", default="same", help="the shadow's structure: same or diff")
    parser.add_argument("--epochs", type=int, default=50, help="shadow training epochs (the paper's 50)")
    parser.add_argument("--seeds", type=int, default=3, help="shadows for the averaging row")
    args = parser.parse_args()
    started = time.time()
    dataset = args.dataset
    model = models.load_model(dataset=dataset)[0]
    head, tail = split(model, args.layer)
    _, images, _ = data.victims(dataset, args.images)
    x = data.normalize(images, dataset)
    features = head.predict(x, verbose=0)
    tail_sha = models.weights_sha256(tail)
    pixel_range = data.pixel_range(dataset)
    refine = whitebox.preset("best", dataset, args.layer, prior="decoder")
    rows, raw = [], []

    def shadow_for(stats, seed):
        settings = dataclasses.replace(query_free.preset("paper", head, dataset, args.layer, args.data, args.net,
                                                         args.epochs, seed=seed),
                                       feature_stats_weight=query_free.BEST_FEATURE_STATS_WEIGHT if stats else 0.0)
        shadow, path, _ = query_free.trained_shadow(head, tail, tail_sha, dataset, args.layer, settings, args.data_dir,
                                                    args.cache_dir, intercepted=features)
        gap = float(np.linalg.norm(shadow.predict(x, verbose=0) - features) / np.linalg.norm(features))
        return shadow, gap, cache_lib.training_record(path)

    def invert(shadow, how):
        """Reconstructions by one inversion through one shadow, and their seconds."""
        began = time.time()
        if how == "paper rMLE":
            result = whitebox.whitebox_attack(shadow, features, query_free.RMLE, pixel_range=pixel_range)
            return result.reconstruction, time.time() - began
        guess = None
        if how != "exact least squares":
            decoder, _, _ = query_free.shadow_decoder(shadow, dataset, args.layer, args.data, args.data_dir,
                                                      args.cache_dir)
            guess = inverse_network.invert(decoder, features)
            if how == "decoder":
                return guess, time.time() - began
        settings = query_free.EXACT if how == "exact least squares" else refine
        result = whitebox.whitebox_attack(shadow, features, settings, init=guess, pixel_range=pixel_range)
        return result.reconstruction, time.time() - began

    def add(shadow_label, how, reconstruction, gap, seconds, training):
        psnr, ssim = scores(images, reconstruction, dataset)
        rows.append([shadow_label, how, "-" if gap is None else f"{gap:.3f}", f"{psnr:.2f}", f"{ssim:.4f}",
                     "-" if seconds is None else f"{seconds:.0f}"])
        raw.append(dict(shadow=shadow_label, inversion=how, feature_gap=gap, psnr=psnr, ssim_paper=ssim,
                        seconds=seconds, shadow_training=training))
        print(rows[-1], flush=True)

    for stats in (False, True):
        shadow, gap, training = shadow_for(stats, seed=0)
        label = "labels + stats" if stats else "labels (paper)"
        last = "exact least squares" if whitebox.is_affine(shadow) else "decoder + rMLE"
        for how in ("paper rMLE", "decoder", last):
            reconstruction, seconds = invert(shadow, how)
            add(label, how, reconstruction, gap, seconds, training)
    if args.seeds > 1:  # shadows as the `best` preset trains them
        best = query_free.preset("best", head, dataset, args.layer, args.data, args.net)
        shadows = [shadow_for(best.feature_stats_weight > 0, seed)[0] for seed in range(args.seeds)]
        began = time.time()
        preset_inversions, _, refinement = query_free.invert_through_shadows(
            shadows, features, dataset, args.layer, "best", args.data, args.data_dir, args.cache_dir)
        seconds = time.time() - began
        unrefined = []
        for seed, shadow in enumerate(shadows):
            how = "exact least squares" if whitebox.is_affine(shadow) else "decoder"
            reconstruction, _ = invert(shadow, how)
            add(f"as best, seed {seed}", how, reconstruction, None, None, None)
            unrefined.append(reconstruction)
            if how == "decoder":  # what the refinement does, whatever the preset decides
                refined = whitebox.whitebox_attack(shadow, features, query_free.REFINE, init=reconstruction,
                                                   pixel_range=pixel_range).reconstruction
                add(f"as best, seed {seed}", "decoder + the preset's refinement", refined, None, None, None)
        add(f"as best, {args.seeds} seeds", "averaged", np.mean(unrefined, axis=0), None, None, None)
        chosen, _, _ = query_free.select_by_residual(shadows, features, unrefined)
        add(f"as best, {args.seeds} seeds", "per victim the smallest feature residual", chosen, None, None, None)
        if refinement:
            verdict = "refine" if refinement["refined"] else "do not refine"
            gain = refinement.get("cross_shadow_gain_db")  # absent through affine shadows: nothing to refine
            levels = refinement["levels"]
            chosen = query_free.select_by_residual(shadows, features, preset_inversions)[0]
            add(f"as best, {args.seeds} seeds", f"the preset: cross-shadow validation "
                f"{'' if gain is None else f'{gain:+.2f} dB -> {verdict}, '}levels {levels['black']:g}-"
                f"{levels['white']:g}; smallest residual",
                query_free.apply_levels(chosen, dataset, refinement), None, seconds, None)
        began = time.time()
        decoder = mixture_decoder(shadows, dataset, args.layer, args.data, args.data_dir, args.cache_dir)
        add(f"as best, {args.seeds} seeds", "one decoder on all shadows' features",
            inverse_network.invert(decoder, features), None, time.time() - began, None)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    command = (f"python experiments/queryfree_ablation/queryfree_ablation.py --dataset {dataset} --layer {args.layer} --data {args.data} "
               f"--net {args.net} --images {args.images} --epochs {args.epochs} --seeds {args.seeds} --out {args.out}")
    text = "\n".join([
        f"# Query-free attack, what each idea adds: {dataset} {args.layer}, {args.data} data, {args.net} net",
        "",
        f"Command: `{command}`. Machine: {machine}; {time.time() - started:.0f} s in all (shadows and decoders "
        f"from the cache when there). Victims: test images {args.images}; SSIM: the paper's definition.",
        "Shadow: trained through the frozen tail on labels (the paper), or also matching the per-channel feature "
        "mean and std of the intercepted features. Feature gap: ||shadow(x) - f1(x)|| / ||f1(x)|| on the victims.",
        "Seconds: the inversion (a decoder's training included when it was trained in this run).",
        "",
        format_table(["shadow", "inversion", "feature gap", "PSNR dB", "SSIM", "seconds"], rows),
        "",
    ])
    write_results_file(args.out, text, {"machine": machine, "command": command, "rows": raw})
    print(text)


if __name__ == "__main__":
    main()
