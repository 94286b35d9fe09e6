"""Run an exported head on the device with LiteRT: uint8 images in, feature tensors out.

The steps are the ones the exporter recorded in the manifest: pixels / 255, then
(x - mean) / std per channel (the paper's normalisation), then, for a full-int8 head, quantise
the input with its scale and zero point. The output is what the device sends: raw int8 with its
scale and zero point, or float32.
"""

import numpy as np

from edge import EdgeError
from edge.manifest import load_manifest
from edge.wire import dequantize


class EdgeHead:
    """A `.tflite` head with its manifest, run by the LiteRT interpreter."""

    def __init__(self, tflite_path, manifest_path=None, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.manifest = load_manifest(tflite_path, manifest_path)
        try:
            self.interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EdgeError(f"LiteRT cannot load {tflite_path} ({e}): export the head again") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        height, width, channels = self.manifest["input"]["shape"]
        self.image_shape = (height, width, channels)
        norm = self.manifest["normalization"]
        self._mean = np.asarray(norm["mean"], np.float32)
        self._std = np.asarray(norm["std"], np.float32)

    @property
    def output_quantization(self):
        """(scale, zero_point) of the features the head emits; (0.0, 0) for float features."""
        out = self.manifest["output"]
        return float(out.get("scale", 0.0)), int(out.get("zero_point", 0))

    def preprocess(self, images):
        """uint8 (N, H, W, C) images -> the interpreter's input (normalised, quantised for int8)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            raise EdgeError(f"images must be uint8 (N, {', '.join(map(str, self.image_shape))}), "
                            f"got {images.dtype} {images.shape}")
        return self._quantize_input((images.astype(np.float32) / 255.0 - self._mean) / self._std)

    def _quantize_input(self, x):
        spec = self.manifest["input"]
        if spec["dtype"] == "float32":
            return x
        info = np.iinfo(spec["dtype"])
        q = np.round(x / spec["scale"]) + spec["zero_point"]
        return np.clip(q, info.min, info.max).astype(spec["dtype"])

    def run(self, images):
        """Raw head outputs for a batch of uint8 images (int8 for an int8 head, else float32)."""
        return self._invoke(self.preprocess(images))

    def run_normalized(self, x):
        """Raw head outputs for inputs already in normalised space (any float values, e.g. noise)."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.image_shape:
            raise EdgeError(f"inputs must be (N, {', '.join(map(str, self.image_shape))}), got {x.shape}")
        return self._invoke(self._quantize_input(x))

    def _invoke(self, x):
        if len(x) != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [len(x), *self.image_shape])
            self.interpreter.allocate_tensors()
            self._batch = len(x)
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"]).copy()

    def features(self, images):
        """float32 features (de-quantised for an int8 head): what the tail computes on."""
        return dequantize(self.run(images), *self.output_quantization)
