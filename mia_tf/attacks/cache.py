"""Trained attack models (decoders, shadow heads) kept on disk and reused.

Each entry is `<cache>/<kind>/<key>.weights.h5` with a `.json` beside it holding the fields the
key was made from (the target's weights hash or the `.tflite`'s, layer, attacker data, query
count, settings). A later attack with the same fields loads the weights instead of training; an
entry whose recorded fields differ (a file copied in by hand, or a truncated-hash collision) is
refused rather than silently used. Training writes its per-epoch backup to `<key>.backup/`, so a
killed run resumes there. How long training took (and where) goes to `<key>.training.json`, so
a result that reuses a cached model can still report the cost of making it. Long rMLE runs keep
their state in `<cache>/rmle/` while they run, so they resume too.
"""

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time

from mia_tf.errors import UsageError
from mia_tf.io import atomic_path, write_json

CACHE_ENV = "MIA_TF_CACHE"


def cache_dir(path=None):
    """Where trained attack models are kept: `path`, else $MIA_TF_CACHE, else ~/.cache/mia_tf."""
    return path or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "mia_tf")


def rmle_checkpoint_dir(path=None):
    """Where long rMLE runs keep their resumable state (`whitebox.CHECKPOINT_SECONDS`)."""
    return os.path.join(cache_dir(path), "rmle")


def settings_fields(settings, later_fields=(), labels=()):
    """A settings dataclass as key fields. Each of `later_fields` (fields added after models were
    cached under the older keys) is left out while it is off, so those models keep their keys;
    `labels` (names for results, such as the preset a setting came from) are always left out."""
    fields = dataclasses.asdict(settings)
    for name in later_fields:
        if not fields[name]:
            del fields[name]
    for name in labels:
        del fields[name]
    return fields


def cache_key(fields):
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def entry_path(kind, fields, cache=None, suffix=".weights.h5"):
    """The cache file for `fields` (which need not exist yet)."""
    return os.path.join(cache_dir(cache), kind, f"{fields.get('dataset', 'any')}_{fields.get('layer', 'any')}_"
                                               f"{cache_key(fields)}{suffix}")


def load_or_train(kind, fields, model, train, cache=None):
    """Give `model` the cached weights for `fields`, or train it and cache them.

    Args:
      train: called as train(backup_dir) to train `model` in place; it may return a Keras history
        dict (values per epoch), kept in the training record.
    Returns:
      (path of the weights, True if they came from the cache).
    """
    path = entry_path(kind, fields, cache)
    record = _stem(path) + ".json"
    fields = json.loads(json.dumps(fields))  # as it reads back from the JSON record
    if os.path.exists(path):
        with open(record) as f:
            recorded = json.load(f)
        if recorded != fields:
            differ = sorted(k for k in set(recorded) | set(fields) if recorded.get(k) != fields.get(k))
            raise UsageError(f"the cached {kind[:-1]} {path} was trained for other settings ({', '.join(differ)} "
                             f"differ: it has {', '.join(f'{k}={recorded.get(k)!r}' for k in differ)}): "
                             f"delete it or give another --cache-dir")
        model.load_weights(path)
        return path, True
    backup = _stem(path) + ".backup"
    resumed, started = os.path.isdir(backup), time.time()
    history = train(backup)
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
    training = {  # a resumed run's seconds and history cover only its last part
        "seconds": round(time.time() - started, 1), "resumed": resumed,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if history:
        training["history"] = {name: [float(f"{value:.5g}") for value in values] for name, values in history.items()}
    write_json(_training_record_path(path), training)
    write_json(record, fields)
    shutil.rmtree(backup, ignore_errors=True)
    return path, False


def _stem(weights_path):
    """`<cache>/<kind>/<key>` of a cache entry's weights file, to name the files beside it."""
    return weights_path[: -len(".weights.h5")]


def _training_record_path(weights_path):
    return _stem(weights_path) + ".training.json"


def model_record(weights_path, from_cache):
    """What an attack reports of a model it used: its cache path, whether it was loaded, and the
    record of the training that made it."""
    return {"cache": weights_path, "from_cache": from_cache, "training": training_record(weights_path)}


def training_record(weights_path):
    """{"seconds", "resumed", "machine", "finished", "history"} of the training that made a cached
    model (history: loss and metrics per epoch, when the trainer returned them), or None if unknown."""
    try:
        with open(_training_record_path(weights_path)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
