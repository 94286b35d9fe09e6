"""Carry the attack cache from one machine to the next through the repository.

Trained decoders and shadows, their per-epoch training backups and the rMLE checkpoints of long
runs live in the attack cache (`mia_tf.attacks.cache.cache_dir`: $MIA_TF_CACHE, else
~/.cache/mia_tf). A work session's machine is not kept, so runs that outlast a session (the
CIFAR Table 8 shadows: about 3 h each, then 5,000 rMLE steps on 1,000 victims) lose everything
with it unless the cache travels in git:

    python scripts/cache_snapshot.py save       # cache -> checkpoints/attack_cache/, then commit it
    python scripts/cache_snapshot.py restore    # on the next machine: checkpoints/attack_cache/ -> cache

`save` copies new and changed files (`--prune` also drops snapshot files the cache no longer has:
finished runs delete their backups and checkpoints); `restore` copies files the cache lacks and
keeps those it has. Both leave out the query answers (`pairs/*.npy`, up to gigabytes: the next
run asks the oracle again, which takes a minute), files over `--max-mb` and the backups of runs
whose final weights exist (a snapshot saved while the run trained still holds them). Every copy
is written to a temporary name and renamed, so an interrupted copy leaves no half file.
"""

import argparse
import os
import shutil
import sys

from mia_tf.attacks.cache import cache_dir
from mia_tf.io import atomic_path

SNAPSHOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "attack_cache")
LEFT_OUT_KINDS = ("pairs",)  # the oracle's answers: large, and asked again in a minute


def finished_run_backup(root, relative_folder):
    """Whether `relative_folder` is the per-epoch backup of a run that has since finished (restored,
    it would pass from cache to snapshot and back for ever)."""
    run, backup = os.path.splitext(relative_folder)
    return backup == ".backup" and os.path.exists(os.path.join(root, run + ".weights.h5"))


def snapshot_files(root, max_bytes):
    """Paths under `root` (relative) that a snapshot carries, and the ones too large to."""
    carried, too_large = [], []
    for folder, _, names in os.walk(root):
        relative_folder = os.path.relpath(folder, root)
        if relative_folder.split(os.sep)[0] in LEFT_OUT_KINDS or finished_run_backup(root, relative_folder):
            continue
        for name in names:
            if ".tmp" in name:  # an atomic write in progress (`mia_tf.io.atomic_path`)
                continue
            relative = os.path.normpath(os.path.join(relative_folder, name))
            (too_large if os.path.getsize(os.path.join(root, relative)) > max_bytes else carried).append(relative)
    return sorted(carried), sorted(too_large)


def same_file(a, b):
    return os.path.exists(b) and os.path.getsize(a) == os.path.getsize(b) and \
        int(os.path.getmtime(a)) == int(os.path.getmtime(b))


def copy(source, destination):
    with atomic_path(destination) as tmp:
        shutil.copy2(source, tmp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("direction", choices=("save", "restore"))
    parser.add_argument("--cache-dir", default=None, help="the attack cache (default $MIA_TF_CACHE, else ~/.cache/mia_tf)")
    parser.add_argument("--snapshot", default=SNAPSHOT, help="where the snapshot lives (default checkpoints/attack_cache)")
    parser.add_argument("--max-mb", type=float, default=60.0, help="leave out files larger than this")
    parser.add_argument("--prune", action="store_true", help="save: drop snapshot files the cache no longer has")
    args = parser.parse_args()
    cache = cache_dir(args.cache_dir)
    source, destination = (cache, args.snapshot) if args.direction == "save" else (args.snapshot, cache)
    if not os.path.isdir(source):
        sys.exit(f"cache_snapshot: error: there is nothing to {args.direction}: {source} does not exist")
    carried, too_large = snapshot_files(source, args.max_mb * 2 ** 20)
    copied = 0
    for relative in carried:
        target = os.path.join(destination, relative)
        if args.direction == "restore" and os.path.exists(target):
            continue
        if not same_file(os.path.join(source, relative), target):
            copy(os.path.join(source, relative), target)
            copied += 1
    pruned = 0
    if args.prune and args.direction == "save":
        held = [os.path.relpath(os.path.join(folder, name), destination)
                for folder, _, names in os.walk(destination) for name in names if ".tmp" not in name]
        for relative in held:
            if relative not in carried:
                os.remove(os.path.join(destination, relative))
                pruned += 1
    print(f"{args.direction}: {copied} of {len(carried)} files copied from {source} to {destination}"
          + (f", {pruned} stale files pruned" if args.prune else "")
          + (f"; left out as larger than {args.max_mb:g} MB: {', '.join(too_large)}" if too_large else ""))


if __name__ == "__main__":
    main()
