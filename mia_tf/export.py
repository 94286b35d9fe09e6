"""Export a split for real devices: the head as a checked `.tflite` with a manifest, the tail as
a SavedModel that TensorFlow Serving serves as it is.

Variants of the head (quantisation goes through the TFLite converter; tensorflow-model-optimization
is not used because it refuses Keras 3 models):
- float32: the head as it is;
- float16: weights stored as float16 (half the size), computed in float32;
- int8: full integer quantisation (int8 weights, activations, input and output), calibrated on a
  representative set of the owner's training images.

Before anything is written the converted head is run by LiteRT through the device code
(`edge.head.EdgeHead`, the same normalisation and quantisation as on the device) and compared
with Keras on real test images: the largest feature error relative to the features' range, and
the tail's accuracy on the `.tflite` head's (de-quantised) features against its accuracy on the
Keras head's. An export that fails its check is refused and nothing is written.
"""

import dataclasses
import datetime
import os
import shutil
import tempfile

import numpy as np

from mia_tf import data as data_lib
from mia_tf.errors import UsageError
from mia_tf.io import atomic_path, sha256_file, silenced_output, write_json

VARIANTS = ("float32", "float16", "int8")
# Largest |tflite - keras| feature error allowed, relative to the range of the Keras features.
MAX_RELATIVE_FEATURE_ERROR = {"float32": 1e-4, "float16": 1e-2, "int8": None}  # int8: accuracy decides


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    calibration_images: int = 200  # training images that calibrate int8 ranges
    check_images: int = 100  # test images for the feature-error check
    max_accuracy_drop: float = 1.0  # percentage points the tail may lose on the .tflite features
    batch_size: int = 100


def convert_head(head, variant, calibration=None):
    """The `.tflite` bytes of a Keras head; `calibration` (normalised images) is needed for int8."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise UsageError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)} or all")
    converter = tf.lite.TFLiteConverter.from_keras_model(head)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        def representative():
            for image in calibration:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with silenced_output():  # the converter prints its temporary SavedModel and quantiser notes
            return converter.convert()
    except Exception as e:  # the converter raises many types; all mean "this head does not convert"
        raise UsageError(f"TFLite cannot convert the head ({type(e).__name__}: {str(e)[:300]})") from None


def _tensor_spec(detail, shape):
    scale, zero_point = detail["quantization"]
    spec = {"shape": [int(d) for d in shape], "dtype": np.dtype(detail["dtype"]).name}
    if spec["dtype"] != "float32":
        spec.update(scale=float(scale), zero_point=int(zero_point))
    return spec


def _manifest(tflite_bytes, variant, head, dataset, model_label, layer, source_sha256, server_name):
    from ai_edge_litert.interpreter import Interpreter

    with silenced_output():  # LiteRT announces its CPU delegate on fd 2
        interpreter = Interpreter(model_content=tflite_bytes)
    s = data_lib.spec(dataset)
    return {
        "format": "mia_tf.head/1",
        "variant": variant,
        "model": model_label,
        "dataset": dataset,
        "layer": layer,
        "server_model_name": server_name,
        "input": _tensor_spec(interpreter.get_input_details()[0], head.input.shape[1:]),
        "output": _tensor_spec(interpreter.get_output_details()[0], head.output.shape[1:]),
        "normalization": {"mean": list(s.mean), "std": list(s.std), "pixels": "uint8 / 255"},
        "source_model_weights_sha256": source_sha256,
        "tflite_bytes": len(tflite_bytes),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _accuracy(tail, features, labels, batch_size):
    logits = tail.predict(features, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def check_export(tflite_path, manifest_path, head, tail, check_images, test_images, test_labels,
                 settings=ExportSettings()):
    """Run the `.tflite` through the device code and compare it with Keras; returns the figures.

    Raises UsageError when the feature error or the accuracy drop is over its limit.
    """
    from edge.head import EdgeHead

    device = EdgeHead(tflite_path, manifest_path)
    manifest = device.manifest
    dataset = manifest["dataset"]

    def device_features(images):
        return np.concatenate([device.features(images[i:i + settings.batch_size])
                               for i in range(0, len(images), settings.batch_size)])

    keras_features = head.predict(data_lib.normalize(check_images, dataset), verbose=0)
    error = float(np.max(np.abs(device_features(check_images) - keras_features)))
    feature_range = float(keras_features.max() - keras_features.min()) or 1.0
    keras_accuracy = _accuracy(tail, head.predict(data_lib.normalize(test_images, dataset),
                                                  batch_size=settings.batch_size, verbose=0),
                               test_labels, settings.batch_size)
    tflite_accuracy = _accuracy(tail, device_features(test_images), test_labels, settings.batch_size)
    figures = {"check_images": len(check_images), "max_abs_feature_error": error,
               "feature_range": feature_range, "relative_feature_error": error / feature_range,
               "test_images": len(test_labels), "tail_accuracy_keras_head": keras_accuracy,
               "tail_accuracy_tflite_head": tflite_accuracy}
    limit = MAX_RELATIVE_FEATURE_ERROR[manifest["variant"]]
    if limit is not None and error / feature_range > limit:
        raise UsageError(f"the {manifest['variant']} head differs from Keras by {error:.3g} "
                         f"({error / feature_range:.2%} of the feature range, limit {limit:.2%}): not written")
    drop = 100.0 * (keras_accuracy - tflite_accuracy)
    if drop > settings.max_accuracy_drop:
        raise UsageError(f"the {manifest['variant']} head costs the tail {drop:.2f} accuracy points "
                         f"({100 * keras_accuracy:.2f} % -> {100 * tflite_accuracy:.2f} %, limit "
                         f"{settings.max_accuracy_drop}): not written; try float16 or more --calibration-images")
    return figures


def export_head(model, layer, variant, out_dir, dataset, model_label, calibration_images, check_images,
                test_images, test_labels, settings=ExportSettings()):
    """Convert, check and write `<out_dir>/<name>_<variant>.tflite` and its `.json` manifest.

    Args:
      model: the whole Keras model (split here at `layer`).
      calibration_images, check_images, test_images: uint8 NHWC real images (the owner's
        training images for int8 calibration; test images for the checks), test_labels int.
    Returns:
      (path of the .tflite, manifest dict).
    """
    from mia_tf.models import weights_sha256
    from mia_tf.serve import default_server_name
    from mia_tf.split import split

    head, tail = split(model, layer)
    calibration = data_lib.normalize(calibration_images, dataset) if variant == "int8" else None
    tflite_bytes = convert_head(head, variant, calibration)
    server_name = default_server_name(model_label, layer)
    manifest = _manifest(tflite_bytes, variant, head, dataset, model_label, layer, weights_sha256(model),
                         server_name)
    if variant == "int8":
        manifest["calibration_images"] = len(calibration_images)
    stem = os.path.join(out_dir, f"{server_name}_{variant}")
    with tempfile.TemporaryDirectory() as scratch:  # check the very bytes that will be written
        tflite_tmp, manifest_tmp = os.path.join(scratch, "head.tflite"), os.path.join(scratch, "head.json")
        with open(tflite_tmp, "wb") as f:
            f.write(tflite_bytes)
        manifest["tflite_sha256"] = sha256_file(tflite_tmp)
        write_json(manifest_tmp, manifest)
        manifest["check"] = check_export(tflite_tmp, manifest_tmp, head, tail, check_images, test_images,
                                         test_labels, settings)
    with atomic_path(stem + ".tflite") as tmp:
        with open(tmp, "wb") as f:
            f.write(tflite_bytes)
    write_json(stem + ".json", manifest)
    return stem + ".tflite", manifest


def export_tail(tail, out_dir, server_name):
    """Write the tail as `<out_dir>/<server_name>/1/` (a SavedModel TensorFlow Serving loads as it is).

    Its `serving_default` signature takes `features` (float32, (N, *feature shape)) and returns
    `logits`. The directory appears complete or not at all.
    """
    import keras
    import tensorflow as tf

    final = os.path.join(out_dir, server_name, "1")
    os.makedirs(os.path.dirname(final), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tail-", dir=os.path.dirname(final))
    try:
        archive = keras.export.ExportArchive()
        archive.track(tail)
        spec = tf.TensorSpec((None, *tail.input.shape[1:]), tf.float32, name="features")
        archive.add_endpoint("serving_default", lambda features: {"logits": tail(features, training=False)},
                             input_signature=[spec])
        with silenced_output():
            archive.write_out(os.path.join(staging, "1"), verbose=False)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(os.path.join(staging, "1"), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final

