"""The `python -m mia_tf` command line (built with fire). Each public method is one verb."""

import dataclasses
import sys

from mia_tf import data as data_lib
from mia_tf import distributed
from mia_tf import models as models_lib
from mia_tf.errors import UsageError
from mia_tf.image_space import ImageSpace
from mia_tf.report import format_table, metrics_table


def _attack_context(cache_dir, strategy, batch_size=100, progress=None):
    """The library's `AttackContext` for a verb: Keras progress bars on a terminal only."""
    from mia_tf.attacks.context import AttackContext

    return AttackContext(cache_dir, strategy, batch_size, verbose=1 if sys.stderr.isatty() else 0, progress=progress)


def _finish(out, target, result, logdir, headline, **extra):
    """Score the library's `AttackResult` against the victims (when known), write the run's
    outputs (`experiment.write_results`) and TensorBoard images, print the headline and table."""
    from mia_tf import experiment
    from mia_tf.attacks.result import score

    if target.images is not None:
        result = score(result, target.images)
    record = experiment.write_results(out, target, result.reconstructions, {**experiment.result_record(result),
                                                                            **extra}, result.metrics)
    experiment.TensorBoardLog(logdir).images(None if target.images is None else target.images / 255.0,
                                             result.pixels())
    print(f"{headline}, {len(result.reconstructions)} victims, {record['seconds']} s; wrote {out}")
    print(metrics_table(record["summary"]) if "summary" in record else
          "no originals given (--images): reconstructions written, not scored")


class Cli:
    """mia_tf: how much of a private input leaks from a split neural network.

    Run `python -m mia_tf VERB --help` for each verb's options.
    Data: --data-dir (or $MIA_TF_DATA_DIR) names a directory with mnist.npz / cifar10.npz;
    without it, tensorflow_datasets is used (it needs a network the first time).
    """

    def whitebox(self, layer, dataset="mnist", model=None, images=None, preset="paper", prior=None,
                 steps=None, learning_rate=None, tv_weight=None, batch_size=100, out=None, logdir=None,
                 data_dir=None, attacker_data="dist", cache_dir=None, features=None, compute_dtype=None,
                 strategy="default"):
        """White-box attack: rebuild the victims' images from the features sent at `layer`.

        The attacker knows the head (the device half) and its weights. The `paper` preset runs the
        authors' rMLE; `best` adds exact inversion of linear heads and a stronger optimiser
        (see mia_tf/attacks/whitebox.py).

        Args:
          layer: split layer (see `python -m mia_tf layers`), e.g. relu2 (MNIST) or relu22 (CIFAR-10).
          dataset: mnist or cifar10.
          model: a zoo name (lenet_mnist, cifar10_cnn, he2019_lenet) or a .keras file; default:
            the data set's zoo model.
          images: victims: paper10 (the paper's 10: first test image of each class; the default),
            a count N (test images 0..N-1) or a range a-b; at most test images 0-999 (shipped
            sample). With --features: the originals of the logged features, to score against.
          preset: paper (the authors' code: Adam lr 1e-2, 5000 steps, their lambda_TV per split)
            or best (exact inversion of linear heads; elsewhere rMLE refining a learned decoder's
            guess, see --prior).
          prior: decoder (start rMLE from an inverse network the attacker trains on its own data
            through the known head; needs --data-dir; the default of `best`) or none (start from
            zeros; the default of `paper`).
          steps: override the preset's number of optimisation steps.
          learning_rate: override the preset's Adam learning rate.
          tv_weight: override the preset's total-variation weight lambda_TV.
          batch_size: victims attacked together (the result does not depend on it; memory does).
          out: output directory (default runs/whitebox_<dataset>_<layer>_<preset>): metrics.json,
            grid.png, reconstructions.npz.
          logdir: if given, TensorBoard scalars (loss, PSNR) and images are written there.
          data_dir: directory with <dataset>.npz, for the decoder prior's training images;
            default $MIA_TF_DATA_DIR, else tensorflow_datasets.
          attacker_data: the images the decoder prior trains on: dist (test images 1000-9999,
            disjoint from victims and training set), same (the target's training set) or noise.
          cache_dir: where trained decoders are kept and reused, and where a long rMLE run keeps
            its state every 5 minutes so a killed run resumes (default $MIA_TF_CACHE, else
            ~/.cache/mia_tf).
          features: attack the features a server intercepted instead of computing them: the
            intercept log of `python -m mia_tf serve` (all its records, in arrival order).
            Without --images the reconstructions are written but not scored.
          compute_dtype: bfloat16 or float16: run the head's arithmetic in rMLE in that type (the
            images and the optimiser stay float32), else float32. On this project's AVX512-BF16
            CPU bfloat16 took 0.51-0.61 of the time at the same PSNR (results/precision_check.md).
          strategy: default, mirrored or multiworker (as for `train`): with multiworker each worker
            attacks its share of the victims and the chief writes them all; the decoder prior
            trains data-parallel.
        """
        from mia_tf import experiment
        from mia_tf.attacks import whitebox as whitebox_lib

        whitebox_lib.preset(preset, prior=prior)  # an unknown preset or prior is refused before any work
        distribution = distributed.make_strategy(strategy)  # first: multiworker sets TensorFlow up at start
        out, cache_dir, logdir = distributed.writable_dirs(distribution, out, cache_dir, logdir)
        target = experiment.prepare(dataset, model, layer, images, features)
        space, intercepted = ImageSpace.of_dataset(target.dataset), target.features()
        settings = whitebox_lib.preset(preset, target.head, space, prior, intercepted)
        overrides = dict(steps=steps, learning_rate=learning_rate, tv_weight=tv_weight, compute_dtype=compute_dtype)
        settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        attacker = data_lib.attacker_set(target.dataset, attacker_data, data_dir) \
            if whitebox_lib.trains_prior(target.head, settings) else None
        with experiment.attack_progress(f"whitebox {layer}", settings.steps, len(intercepted), batch_size, target,
                                        logdir) as progress:
            result = whitebox_lib.whitebox_attack(target.head, intercepted, settings, attacker_data=attacker,
                                                  space=space,
                                                  context=_attack_context(cache_dir, distribution, batch_size, progress))
        _finish(out or experiment.default_out("whitebox", target, preset), target, result, logdir,
                f"white-box {result.method} on {target.model_label} at {layer}, preset {preset}"
                f"{' from ' + features if features else ''}")

    def blackbox(self, layer, dataset="mnist", model=None, data="dist", attack="inverse", queries=None,
                 preset="paper", epochs=None, images=None, oracle=None, out=None, logdir=None, data_dir=None,
                 cache_dir=None, strategy="default", features=None, seed=0, compute_dtype=None, train_dtype=None,
                 steps=None):
        """Black-box attack: rebuild the victims' images knowing only answers to queries of the head.

        The attacker queries the head (the device half) with its own images, once each, and
        learns from the pairs (f1(x), x): an inverse network g (He et al., Algorithm 2), a shadow
        head for rMLE (Table 8), or both. Trained models are cached and reused; training resumes
        after a kill; --epochs overrides the decoder's and the shadow's epochs alike.

        Args:
          layer: split layer, e.g. relu2 (MNIST) or relu22 (CIFAR-10).
          dataset: mnist or cifar10.
          model: a zoo name or a .keras file (the head the oracle runs); default the data set's zoo model.
          data: the attacker's images: same (the target's training set), dist (test images
            1000-9999: same distribution, disjoint from training set and victims) or noise
            (standard Gaussian in normalised space).
          attack: inverse (the inverse network g(v)), shadow (fit a shadow head of the head's
            structure to the query pairs, then the white-box attack through it: the paper's Table 8) or
            hybrid (rMLE through the shadow, started from the inverse network's guess, kept if it
            gains on the attacker's own images).
          queries: query budget: how many of the attacker's images are sent to the head (default:
            all of them: 60,000 / 50,000 for same and noise, 9,000 for dist). The best preset's
            inverse and hybrid attacks spend 12 more, probing whether the head is affine, and
            with noise data 30 for each of up to 100 victims, checking the levels of the
            reconstructions.
          preset: paper (the authors' tiny decoders, 50 epochs, Adam 1e-3 halved every 10; their
            rMLE through a shadow) or best (a decoder built from any feature shape: upsampling
            stages with residual blocks, MSE + SSIM loss, epochs of at most 9,000 pairs; a linear
            decoder fitted by least squares when 12 probe queries show the head is affine; through a
            shadow the white-box best preset: exact least squares when the shadow is affine).
          epochs: override the preset's number of training epochs.
          images: victims: paper10 (default), a count N or a range a-b of test images 0-999; with
            --features, the originals of the logged features to score against.
          oracle: a .tflite head exported by `python -m mia_tf export`, answered by LiteRT
            (default: the Keras head of --model).
          out: output directory (default runs/blackbox_<dataset>_<layer>_<attack>_<data>_<preset>).
          logdir: if given, TensorBoard images (originals, reconstructions) are written there.
          data_dir: directory with <dataset>.npz (the attacker's images); default $MIA_TF_DATA_DIR.
          cache_dir: where trained decoders and query answers are kept (default $MIA_TF_CACHE,
            else ~/.cache/mia_tf).
          strategy: default, mirrored or multiworker (tf.distribute, as for `train`).
          features: attack the features in an intercept log of `python -m mia_tf serve`.
          seed: random seed for the decoder's and the shadow's initial weights and batch order.
          compute_dtype: bfloat16 or float16: the shadow's arithmetic in rMLE (as for `whitebox`).
          train_dtype: bfloat16 or float16: the decoder's and the shadow's arithmetic in training
            (weights, Adam and the loss stay float32); a model trained so is cached apart from a
            float32 one.
          steps: override the preset's rMLE steps through the shadow (shadow and hybrid attacks;
            the hybrid's check on the attacker's images takes as many).
        """
        import keras

        from mia_tf import experiment
        from mia_tf.attacks.blackbox import BlackboxSettings, blackbox_attack
        from mia_tf.attacks.oracle import QueryOracle

        settings = BlackboxSettings(attack, preset, queries, epochs, compute_dtype, train_dtype, steps)
        if data not in data_lib.ATTACKER_SETS:
            raise UsageError(f"unknown attacker data {data!r}: use one of {', '.join(data_lib.ATTACKER_SETS)}")
        distribution = distributed.make_strategy(strategy)  # first: multiworker sets TensorFlow up at start
        out, cache_dir, logdir = distributed.writable_dirs(distribution, out, cache_dir, logdir)
        target = experiment.prepare(dataset, model, layer, images, features)
        keras.utils.set_random_seed(seed)
        intercepted = target.features()
        attacker = data_lib.attacker_set(target.dataset, data, data_dir)
        source = QueryOracle.for_head(target.head, target.model, oracle,
                                      budget=settings.query_budget(len(intercepted), attacker))
        result = blackbox_attack(source, intercepted, settings, attacker_data=attacker,
                                 space=ImageSpace.of_dataset(target.dataset),
                                 context=_attack_context(cache_dir, distribution), structure=target.head)
        _finish(out or experiment.default_out("blackbox", target, f"{attack}_{data}_{preset}"), target, result, logdir,
                f"black-box {attack} ({preset}, {data} data, {queries or 'all'} queries) on "
                f"{target.model_label} at {layer}", seed=seed)

    def queryfree(self, layer, dataset="mnist", model=None, data="dist", net="same", preset="paper", shadows=None,
                  epochs=None, limit=None, images=None, out=None, logdir=None, data_dir=None, cache_dir=None,
                  strategy="default", features=None, seed=0, train_dtype=None):
        """Query-free attack: the attacker holds only the tail (the cloud half) and no queries.

        It trains a shadow head so that the frozen tail classifies its own labelled images, then
        runs rMLE through the shadow against the victims' features (He et al., Algorithm 3:
        500 steps, lr 0.1, lambda_TV 2). Trained shadows are cached; training resumes after a kill.

        Args:
          layer: split layer, e.g. relu2 (MNIST) or relu22 (CIFAR-10).
          dataset: mnist or cifar10.
          model: a zoo name or a .keras file; default the data set's zoo model.
          data: the attacker's labelled images: same (the target's training set) or dist (test
            images 1000-9999: same distribution, disjoint from training set and victims).
          net: the shadow's structure: same (the head's) or diff (the paper's other structure for
            the zoo splits; for other models one derived from the head: large convolutions split
            into 3x3 stacks, 3x3 ones into 3x3 + 1x1).
          preset: paper (the authors' attack) or best (the shadow also matches the per-channel
            statistics of the intercepted features; least squares through an affine shadow, a
            decoder trained through any other, refined through the shadow when cross-shadow
            validation finds that helps; three shadows; see mia_tf/attacks/query_free.py).
          shadows: how many shadows to train (seeds seed, seed+1, ...); per victim, the
            reconstruction whose shadow best explains its features is kept. Default 1 for paper,
            3 for best.
          epochs: shadow training epochs (default 50, Adam 1e-3 halved every 10, as the authors).
          limit: train the shadow (and the best preset's decoder) on only the first N attacker images.
          images: victims: paper10 (default), a count N or a range a-b of test images 0-999; with
            --features, the originals of the logged features.
          out: output directory (default runs/queryfree_<dataset>_<layer>_<data>_<net>_<preset>).
          logdir: if given, TensorBoard images are written there.
          data_dir: directory with <dataset>.npz (the attacker's images); default $MIA_TF_DATA_DIR.
          cache_dir: where trained shadows are kept (default $MIA_TF_CACHE, else ~/.cache/mia_tf).
          strategy: default, mirrored or multiworker (tf.distribute, as for `train`).
          features: attack the features in an intercept log of `python -m mia_tf serve`.
          seed: random seed for the (first) shadow's initial weights and batch order.
          train_dtype: bfloat16 or float16: the shadows' (and the best preset's decoders')
            arithmetic in training (weights, Adam and the loss stay float32); a model trained so
            is cached apart from a float32 one.
        """
        from mia_tf import experiment
        from mia_tf.attacks import query_free

        settings = query_free.QueryFreeSettings(preset, net, shadows, 50 if epochs is None else epochs, limit, seed,
                                                train_dtype)
        if data not in ("same", "dist"):
            raise UsageError(f"the query-free attack needs labelled images: --data must be same or dist, got {data!r}")
        distribution = distributed.make_strategy(strategy)  # first: multiworker sets TensorFlow up at start
        out, cache_dir, logdir = distributed.writable_dirs(distribution, out, cache_dir, logdir)
        target = experiment.prepare(dataset, model, layer, images, features)
        result = query_free.queryfree_attack(target.tail, target.features(), settings,
                                             attacker_data=data_lib.attacker_set(target.dataset, data, data_dir),
                                             space=ImageSpace.of_dataset(target.dataset),
                                             context=_attack_context(cache_dir, distribution), structure=target.head)
        _finish(out or experiment.default_out("queryfree", target, f"{data}_{net}_{preset}"), target, result, logdir,
                f"query-free ({preset} preset, {data} data, {net} net) on {target.model_label} at {layer}", net=net,
                seed=seed)

    def export(self, layer, dataset=None, model=None, variant="all", out="exports", tail=True, data_dir=None,
               calibration_images=200, max_accuracy_drop=1.0):
        """Export the head at `layer` to .tflite (checked against Keras) with a manifest, and the tail.

        Writes <out>/<model>_<layer>_<variant>.tflite and .json (the manifest the device runner
        reads) for each variant, and the tail as a SavedModel in <out>/<model>_<layer>/1/ that
        TensorFlow Serving serves as it is. Each head is first run by LiteRT on real test images
        and refused if it strays from Keras (feature error, or tail accuracy drop for int8).

        Args:
          layer: split layer (see `python -m mia_tf layers`), e.g. relu2 or relu22.
          dataset: mnist or cifar10 (picks the default zoo model if --model is not given).
          model: a zoo name (lenet_mnist, cifar10_cnn, he2019_lenet) or a .keras file.
          variant: float32, float16 (float16 weights), int8 (full integer: weights, activations,
            input and output) or all.
          out: output directory.
          tail: also write the tail SavedModel (--notail to skip).
          data_dir: directory with <dataset>.npz: int8 calibrates on its training images, and the
            accuracy check uses its full test set; without it (and without tensorflow_datasets),
            the check uses the shipped test sample and int8 cannot be exported.
          calibration_images: training images that calibrate the int8 ranges.
          max_accuracy_drop: percentage points of tail accuracy an export may lose; more is refused.
        """
        from mia_tf import export as export_lib
        from mia_tf.serve import default_server_name
        from mia_tf.split import split

        variants = export_lib.VARIANTS if variant == "all" else (variant,)
        if any(v not in export_lib.VARIANTS for v in variants):
            raise UsageError(f"unknown variant {variant!r}: use one of {', '.join(export_lib.VARIANTS)} or all")
        settings = export_lib.ExportSettings(calibration_images=int(calibration_images),
                                             max_accuracy_drop=float(max_accuracy_drop))
        keras_model, dataset, label = models_lib.resolve_model(model, dataset)
        split(keras_model, layer)  # an unknown layer fails here, before any data is read
        sample_images, sample_labels = data_lib.load_sample(dataset)
        if data_lib.resolve_data_dir(data_dir) is not None:
            test_images, test_labels = data_lib.load(dataset, "test", data_dir)
        else:
            test_images, test_labels = sample_images, sample_labels
        calibration = None
        if "int8" in variants:
            try:
                calibration = data_lib.load(dataset, "train", data_dir)[0][:settings.calibration_images]
            except UsageError as e:
                raise UsageError(f"int8 calibrates on training images: {e}; float32 and float16 need no "
                                 f"data (--variant float32)") from None
        rows = []
        for v in variants:
            path, manifest = export_lib.export_head(
                keras_model, layer, v, out, dataset, label, calibration, sample_images[:settings.check_images],
                test_images, test_labels, settings)
            check = manifest["check"]
            rows.append([v, path, f"{manifest['tflite_bytes']:,}", f"{check['max_abs_feature_error']:.3g}",
                         f"{100 * check['tail_accuracy_keras_head']:.2f} %",
                         f"{100 * check['tail_accuracy_tflite_head']:.2f} %"])
        print(format_table(["variant", "file", "bytes", "max feature error", "accuracy (Keras head)",
                            f"accuracy (.tflite head, {len(test_labels)} test images)"], rows))
        if tail:
            tail_dir = export_lib.export_tail(split(keras_model, layer)[1], out, default_server_name(label, layer))
            print(f"tail SavedModel for TensorFlow Serving: {tail_dir}")

    def serve(self, layer, dataset=None, model=None, host="127.0.0.1", port=8501, name=None,
              intercept_log=None, max_body_bytes=64 << 20, verbose=False):
        """Serve the tail of a split model over TensorFlow Serving's REST API, logging what arrives.

        Endpoints: GET /v1/models/NAME (status), GET /v1/models/NAME/metadata, POST
        /v1/models/NAME:predict with {"instances": ...} or the binary body of edge/wire.py. Every
        valid feature tensor is appended to the intercept log, which the attack verbs read with
        --features. Stop with Ctrl-C (or SIGTERM).

        Args:
          layer: split layer; the tail is everything after it.
          dataset: mnist or cifar10 (picks the default zoo model if --model is not given).
          model: a zoo name or a .keras file.
          host: address to bind; 127.0.0.1 (this machine only) unless you mean to expose it.
          port: TCP port (TensorFlow Serving's REST port 8501 by default; 0 picks a free one).
          name: model name in the URL (default <model>_<layer>, as in the export manifest).
          intercept_log: file the received features are appended to
            (default runs/intercept_<name>.log).
          max_body_bytes: larger requests are refused with 413.
          verbose: log one line per request to stderr.
        """
        from mia_tf import serve as serve_lib
        from mia_tf.intercept_log import InterceptLog
        from mia_tf.split import split

        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise UsageError(f"--port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
        if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
            raise UsageError(f"--max-body-bytes must be a positive whole number, got {max_body_bytes!r}")
        keras_model, dataset, label = models_lib.resolve_model(model, dataset)
        name = name or serve_lib.default_server_name(label, layer)
        service = serve_lib.TailService(split(keras_model, layer)[1], name, layer)
        server = serve_lib.TailServer(service, host, port, None, max_body_bytes, bool(verbose))
        server.log = log = InterceptLog(intercept_log or f"runs/intercept_{name}.log")  # once the port is ours
        if log.truncated_bytes:
            print(f"cut a torn record of {log.truncated_bytes} bytes off the end of {log.path}", file=sys.stderr)
        print(serve_lib.banner(server, label, log.path), flush=True)
        serve_lib.run_forever(server)

    def train(self, dataset, epochs=None, batch_size=None, out=None, strategy="default", data_dir=None, limit=None,
              seed=0, init_weights=None, learning_rate=None, weight_decay=None, cutout=None):
        """Train the zoo's target model for a data set into --out, resuming from its checkpoints there.

        Args:
          dataset: mnist (LeNet, 30 epochs) or cifar10 (the paper's CNN, 50 epochs).
          epochs: number of epochs (default: the recipe's, see mia_tf/train.py).
          batch_size: images per step on each device (default 32, as the authors).
          out: output directory (default runs/train_<dataset>): <model>.weights.h5 with its .json
            report and .history.csv, and checkpoints/ (per epoch; running again with the same
            --out resumes there). The shipped zoo weights are never overwritten.
          strategy: default (one device), mirrored (all local GPUs, or all logical CPUs) or
            multiworker (one process per machine, each told the cluster by TF_CONFIG; the first
            worker writes; see docs/distributed.md).
          data_dir: directory with <dataset>.npz; default $MIA_TF_DATA_DIR, else tensorflow_datasets.
          limit: train on only the first N training images (for quick checks).
          seed: random seed for initialisation, shuffling and augmentation.
          init_weights: start from these trained weights (.weights.h5 of the same model) instead
            of random ones: a warm restart of the cosine schedule (use another --out).
          learning_rate: the schedule's starting learning rate (default the recipe's, 1e-3).
          weight_decay: decoupled weight decay of Adam (AdamW style; default the recipe's, 0).
          cutout: side in pixels of a square of each training image set to the mean colour at a
            random place (default the recipe's, 0 = off).
        """
        from mia_tf import train as train_lib

        report = train_lib.train(dataset, out=out, epochs=epochs, batch_size=batch_size, strategy=strategy,
                                 data_dir=data_dir, limit=limit, seed=seed, init_weights=init_weights,
                                 learning_rate=learning_rate, weight_decay=weight_decay, cutout=cutout,
                                 verbose=1 if sys.stdout.isatty() else 2)  # progress bar on a terminal only
        print(format_table(["dataset", "model", "test accuracy", "test images", "epoch seconds (all runs)"],
                           [[report["dataset"], report["model"], f"{100 * report['test_accuracy']:.2f} %",
                             report["test_images"], report["seconds_all_epochs"]]]))

    def evaluate(self, dataset=None, model=None, full=False, data_dir=None):
        """Top-1 accuracy of a model on the test set.

        Args:
          dataset: mnist or cifar10 (picks the default zoo model if --model is not given).
          model: a zoo name (lenet_mnist, cifar10_cnn, he2019_lenet) or a .keras file.
          full: use the whole official test set (10,000 images, from $MIA_TF_DATA_DIR or
            tensorflow_datasets) instead of the shipped sample (test images 0-999).
          data_dir: directory with <dataset>.npz: score its whole test set (implies --full).
        """
        from mia_tf.train import accuracy

        keras_model, dataset, label = models_lib.resolve_model(model, dataset)
        if full or data_dir is not None:
            images, labels = data_lib.load(dataset, "test", data_dir)
            which = f"full test set ({len(labels)} images)"
        else:
            images, labels = data_lib.load_sample(dataset)
            which = f"shipped sample (test images 0-{len(labels) - 1})"
        acc = accuracy(keras_model, images, labels, dataset)
        print(format_table(["model", "dataset", "images", "accuracy"],
                           [[label, dataset, which, f"{100 * acc:.2f} %"]]))

    def layers(self, model=None, dataset=None):
        """Every layer where the model can be split, with feature shape, size and head FLOPs.

        Args:
          model: a zoo name (lenet_mnist, cifar10_cnn, he2019_lenet) or a .keras file.
          dataset: mnist or cifar10 (picks the default zoo model if --model is not given).
        """
        from mia_tf.split import split_points

        if model is not None and model not in models_lib.ZOO:
            keras_model, label = models_lib.load_model(model)[0], model
        else:
            keras_model, _, label = models_lib.resolve_model(model, dataset)
        rows = [[p.layer, "x".join(map(str, p.feature_shape)), p.bytes_per_image, f"{p.head_flops:,}"]
                for p in split_points(keras_model)]
        print(f"split points of {label} (FLOPs: 2 x multiply-adds of the head's conv and dense layers)")
        print(format_table(["layer", "feature shape", "bytes/image", "head FLOPs"], rows))


def _as_flags(message, verb):
    """A library error in the CLI's words: the verb's multi-word arguments (compute_dtype, ...) as
    the flags that set them (--compute-dtype)."""
    import inspect
    import re

    if verb is None:
        return message
    names = [name for name in inspect.signature(verb).parameters if "_" in name]
    for name in names:
        message = re.sub(rf"(?<![\w-]){name}\b", "--" + name.replace("_", "-"), message)
    return message


def _show_progress_lines():
    """The library's progress lines (logger "mia_tf") on stderr, so stdout keeps only the results."""
    import logging

    from mia_tf.attacks.context import logger

    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv=None):
    import fire

    from mia_tf import cli_options

    argv = sys.argv[1:] if argv is None else list(argv)
    cli, verb = Cli(), None
    try:
        verb, checked = cli_options.check(cli, argv)  # before any work: fire reports unknown flags only after
        if checked is None:
            print(cli_options.help_text(cli, verb))
            return 0
        _show_progress_lines()
        fire.Fire(cli, command=checked, name="mia_tf")
    except UsageError as e:
        print(f"mia_tf: error: {_as_flags(str(e), getattr(cli, verb or '', None))}", file=sys.stderr)
        return 2
    return 0
