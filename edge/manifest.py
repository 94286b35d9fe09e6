"""The manifest the exporter writes beside each `.tflite` head, read and checked on the device.

It carries everything the device needs and nothing from TensorFlow: the split layer, input and
output shapes and dtypes with their quantisation (scale, zero point), the normalisation constants,
the model name the server serves, and SHA-256 hashes of the `.tflite` and of the source model.
"""

import hashlib
import json
import os

from edge import EdgeError

FORMAT = "mia_tf.head/1"
REQUIRED = ("format", "tflite_sha256", "variant", "dataset", "layer", "input", "output", "normalization",
            "server_model_name")


def manifest_path_for(tflite_path):
    """The manifest's default place: `head.tflite` -> `head.json`."""
    base, _ = os.path.splitext(tflite_path)
    return base + ".json"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(tflite_path, manifest_path=None):
    """The manifest as a dict, after checking it belongs to this `.tflite` file."""
    manifest_path = manifest_path or manifest_path_for(tflite_path)
    if not os.path.exists(manifest_path):
        raise EdgeError(f"no manifest at {manifest_path}: export the head with `python -m mia_tf export`, "
                        f"which writes it beside the .tflite, or pass --manifest")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise EdgeError(f"cannot read the manifest {manifest_path} ({e}): export the head again") from None
    missing = [k for k in REQUIRED if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED)
    if missing:
        raise EdgeError(f"{manifest_path} is not a mia_tf head manifest (missing {', '.join(missing)})")
    if manifest["format"] != FORMAT:
        raise EdgeError(f"{manifest_path} has format {manifest['format']!r}; this runner reads {FORMAT!r}")
    if not os.path.exists(tflite_path):
        raise EdgeError(f"model file {tflite_path} not found")
    actual = sha256_file(tflite_path)
    if actual != manifest["tflite_sha256"]:
        raise EdgeError(f"{tflite_path} does not match its manifest (SHA-256 {actual[:12]}..., manifest says "
                        f"{manifest['tflite_sha256'][:12]}...): the file is corrupt or from another export")
    return manifest
