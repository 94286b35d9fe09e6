"""`python -m edge run|bench`: the device side of a split model (see edge/README.md)."""

import argparse
import sys
import time

import numpy as np

from edge import EdgeError


def _inputs(args, head):
    height, width, channels = head.image_shape
    from edge.images import read_image_files, read_npz_batch

    if bool(args.images) == bool(args.npz):
        raise EdgeError("give either --images FILE [FILE ...] or --npz BATCH.npz")
    if args.images:
        return [str(p) for p in args.images], read_image_files(args.images, height, width, channels)
    images = read_npz_batch(args.npz, height, width, channels)[: args.limit]
    return [f"{args.npz}[{i}]" for i in range(len(images))], images


def _batches(count, size):
    return [slice(i, i + size) for i in range(0, count, size)]


def run(args):
    """Run the head on each batch, send the features, print the class the cloud returns."""
    from edge.client import TailClient
    from edge.head import EdgeHead

    head = EdgeHead(args.model, args.manifest, args.threads)
    names, images = _inputs(args, head)
    client = TailClient(args.server, args.name or head.manifest["server_model_name"], args.format)
    print(f"head {head.manifest['layer']} ({head.manifest['variant']}) -> {args.server}, {args.format} body")
    try:
        for part in _batches(len(images), args.batch_size):
            logits = client.predict(head.run(images[part]), *head.output_quantization)
            for name, row in zip(names[part], logits):
                print(f"{name}\tclass {int(np.argmax(row))}")
    finally:
        client.close()


def _percentiles(seconds):
    ms = 1000.0 * np.asarray(seconds)
    return f"p50 {np.percentile(ms, 50):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms"


def bench(args):
    """Per-image latency and throughput of the head alone and, with --server, of the round trip."""
    from edge.client import TailClient
    from edge.head import EdgeHead

    head = EdgeHead(args.model, args.manifest, args.threads)
    _, images = _inputs(args, head)
    head.run(images[:1])  # warm-up: first invoke allocates
    single = []
    for i in range(args.repeat):
        started = time.perf_counter()
        head.run(images[i % len(images)][None])
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    for part in _batches(len(images), args.batch_size):
        head.run(images[part])
    batched = len(images) / (time.perf_counter() - started)
    print(f"head {head.manifest['layer']} ({head.manifest['variant']}): batch 1 {_percentiles(single)}; "
          f"batch {args.batch_size}: {batched:.0f} images/s")
    if args.server:
        client = TailClient(args.server, args.name or head.manifest["server_model_name"], args.format)
        round_trips = []
        try:
            for i in range(args.repeat):
                started = time.perf_counter()
                client.predict(head.run(images[i % len(images)][None]), *head.output_quantization)
                round_trips.append(time.perf_counter() - started)
        finally:
            client.close()
        print(f"head + {args.format} round trip to {args.server}: {_percentiles(round_trips)}; "
              f"{len(round_trips) / sum(round_trips):.0f} images/s")


def parser():
    p = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    verbs = p.add_subparsers(dest="verb", required=True)
    for name, help_text in (("run", "classify images through the split model"),
                            ("bench", "measure the head's latency and throughput")):
        v = verbs.add_parser(name, help=help_text)
        v.add_argument("--model", required=True, help="the exported head (.tflite)")
        v.add_argument("--manifest", help="its manifest (default: the .json beside the .tflite)")
        v.add_argument("--images", nargs="+", help="PNG or JPEG files of the head's input size")
        v.add_argument("--npz", help="an npz batch of uint8 images under the key images (or x_test, x)")
        v.add_argument("--limit", type=int, default=None, help="use only the first N images of --npz")
        v.add_argument("--server", required=(name == "run"), default=None,
                       help="the cloud tail, http://HOST:PORT (python -m mia_tf serve, or TensorFlow Serving)")
        v.add_argument("--name", help="model name on the server (default: the manifest's server_model_name)")
        v.add_argument("--format", choices=("binary", "json"), default="binary",
                       help="binary: compact raw tensor (int8 stays int8); json: TF Serving's instances")
        v.add_argument("--batch-size", type=int, default=1, help="images per head call and request")
        v.add_argument("--threads", type=int, default=None, help="LiteRT CPU threads (default: LiteRT's)")
        if name == "bench":
            v.add_argument("--repeat", type=int, default=200, help="single-image runs to time")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.batch_size < 1 or getattr(args, "repeat", 1) < 1:
            raise EdgeError("--batch-size and --repeat must be positive")
        {"run": run, "bench": bench}[args.verb](args)
    except EdgeError as e:
        print(f"edge: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
