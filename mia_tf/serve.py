"""The cloud half: serve a model's tail over TensorFlow Serving's REST API, and log what arrives.

`python -m mia_tf serve --model M --layer L` answers, like TensorFlow Serving,

    GET  /v1/models/NAME                  model status
    GET  /v1/models/NAME/metadata         signature (input: the features, output: the logits)
    POST /v1/models/NAME:predict          {"instances": [...]} or {"inputs": ...} -> {"predictions": ...}

(also under /v1/models/NAME/versions/1), so the edge runner can talk to the real TensorFlow
Serving and this server to any TF Serving client. A POST may instead carry the compact binary
body of `edge.wire` (Content-Type application/x-mia-tensor), which keeps int8 features int8.

As the curious party it appends every valid feature tensor, with time and client, to an
intercept log (`mia_tf.intercept_log`) that the attack verbs read with `--features LOG`.
Bad requests get a 4xx JSON error and the server keeps serving; nothing invalid is logged.
"""

import http.server
import json
import os
import re
import signal
import socketserver
import sys
import threading

import numpy as np

from edge import wire
from mia_tf.errors import UsageError

DEFAULT_PORT = 8501  # TensorFlow Serving's REST port
DEFAULT_MAX_BODY_BYTES = 64 << 20
MODEL_VERSION = "1"
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<what>/metadata|:predict)?$")


def default_server_name(model_label, layer):
    """The name a split's tail is served under, e.g. lenet_mnist_relu2 (also in the export manifest)."""
    stem = os.path.basename(str(model_label))
    stem = stem[: -len(".keras")] if stem.endswith(".keras") else stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{stem}_{layer.replace('/', '_')}")


class RequestError(Exception):
    """A request the server refuses: HTTP status and a message for the JSON error body."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class TailService:
    """A Keras tail behind a compiled predict function; safe to call from many threads."""

    def __init__(self, tail, name, layer):
        import tensorflow as tf

        self.name, self.layer = name, layer
        self.feature_shape = tuple(int(d) for d in tail.input.shape[1:])
        self.classes = int(tail.output.shape[-1])
        self._predict = tf.function(lambda x: tail(x, training=False), input_signature=[
            tf.TensorSpec((None, *self.feature_shape), tf.float32)])
        self.predict(np.zeros((1, *self.feature_shape), np.float32))  # trace once, before any thread

    def predict(self, features):
        return self._predict(features).numpy()

    def status(self):
        return {"model_version_status": [{"version": MODEL_VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        def tensor(name, shape):
            return {"dtype": "DT_FLOAT", "name": name, "tensor_shape": {
                "dim": [{"size": str(d), "name": ""} for d in (-1, *shape)], "unknown_rank": False}}

        signature = {"inputs": {"features": tensor("features", self.feature_shape)},
                     "outputs": {"logits": tensor("logits", (self.classes,))},
                     "method_name": "tensorflow/serving/predict"}
        return {"model_spec": {"name": self.name, "signature_name": "", "version": MODEL_VERSION},
                "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}

    def parse(self, body, content_type):
        """(float32 features (N, *feature_shape), the tensor as a wire body for the log, format)."""
        if content_type == wire.CONTENT_TYPE:
            try:
                raw, scale, zero_point = wire.decode(body)
                features = wire.dequantize(raw, scale, zero_point)
            except wire.WireError as e:
                raise RequestError(400, f"malformed binary tensor: {e}") from None
            logged, body_format = bytes(body), "binary"
        else:
            features = self._parse_json(body)
            logged, body_format = None, "json"
        if features.ndim != len(self.feature_shape) + 1 or features.shape[1:] != self.feature_shape \
                or len(features) == 0:
            raise RequestError(400, f"features must have shape (N, {', '.join(map(str, self.feature_shape))}) "
                                    f"for layer {self.layer}, got {features.shape}")
        if not np.all(np.isfinite(features)):
            raise RequestError(400, "features contain NaN or infinite values")
        return features, logged if logged is not None else wire.encode(features), body_format

    @staticmethod
    def _parse_json(body):
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(400, f"malformed JSON body: {e}") from None
        if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
            raise RequestError(400, 'the JSON body must be an object with exactly one of "instances" or "inputs"')
        values = request.get("instances", request.get("inputs"))
        if isinstance(values, dict):  # columnar format with named inputs: this tail has one input
            if len(values) != 1:
                raise RequestError(400, f"the tail takes one input tensor, got {len(values)} named inputs")
            values = next(iter(values.values()))
        try:
            return np.asarray(values, dtype=np.float32)
        except (ValueError, TypeError):
            raise RequestError(400, "instances must be a nested list of numbers of one shape") from None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: an edge client reuses its connection
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = 30  # seconds a client may stall mid-request before its connection is dropped
    server_version = "mia_tf-serve"

    def log_message(self, format, *args):  # one line per request only when asked
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        match = _PATH.match(self.path.split("?")[0])
        service = self.server.service
        if not match:
            raise RequestError(404, f"unknown path {self.path}: use /v1/models/{service.name}[:predict|/metadata]")
        if match["name"] != service.name:
            raise RequestError(404, f"Servable not found for request: Latest({match['name']}); "
                                    f"this server serves {service.name}")
        if match["version"] not in (None, MODEL_VERSION):
            raise RequestError(404, f"version {match['version']} of {service.name} not found (only {MODEL_VERSION})")
        return match["what"]

    def _handle(self, method):
        try:
            what = self._route()
            if method == "GET" and what is None:
                return self._reply(200, self.server.service.status())
            if method == "GET" and what == "/metadata":
                return self._reply(200, self.server.service.metadata())
            if method == "POST" and what == ":predict":
                return self._reply(200, self._predict())
            raise RequestError(405, f"{method} is not supported on {self.path}")
        except RequestError as e:
            if e.status in (411, 413, 408):
                self.close_connection = True  # the unread body would be taken for the next request
            self._reply(e.status, {"error": str(e)})
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away: nothing to answer, nothing logged

    def _predict(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(411, "a predict request needs a Content-Length header")
        if int(length) > self.server.max_body_bytes:
            raise RequestError(413, f"body of {length} bytes exceeds the limit of {self.server.max_body_bytes}: "
                                    f"send fewer images per request")
        body = self.rfile.read(int(length))
        if len(body) < int(length):  # the client disconnected mid-body
            raise ConnectionError("short body")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        service = self.server.service
        features, logged, body_format = service.parse(body, content_type)
        if self.server.log is not None:
            self.server.log.append(logged, f"{self.client_address[0]}:{self.client_address[1]}",
                                   service.name, service.layer, body_format)
        return {"predictions": service.predict(features).tolist()}

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


class TailServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threaded HTTP server around one `TailService` and an optional `InterceptLog`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops connections when many devices connect at once

    def __init__(self, service, host="127.0.0.1", port=DEFAULT_PORT, log=None,
                 max_body_bytes=DEFAULT_MAX_BODY_BYTES, verbose=False):
        self.service, self.log, self.max_body_bytes, self.verbose = service, log, max_body_bytes, verbose
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}): pick another --port") from None

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def run_forever(server):
    """Serve until SIGINT or SIGTERM, then close the log cleanly."""
    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if server.log is not None:
            server.log.close()
        print("server stopped", file=sys.stderr)
