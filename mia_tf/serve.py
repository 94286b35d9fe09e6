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

It refuses what it cannot vouch for, always with a JSON error and never a dropped connection or a
traceback: 405 for other methods, 413 for a body over the limit, 400 for the rest (JSON nested
deeper than MAX_JSON_DEPTH, measured before parsing; a binary tensor the wire format refuses; a
body shorter than its Content-Length), 404 for other paths and models, 507 when the log cannot
take the record (disk full: the request is not answered as if logged), 503 when
`max_connections` are open, 500 with one line on stderr for a bug of ours. A client silent for
`socket_timeout` seconds, or whose request is not in after `request_seconds` (a byte-a-second
trickle), is disconnected, so no client holds a thread for ever. Nothing invalid is logged.
docs/reliability.md lists what was tried against it.
"""

import http.server
import json
import os
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from http import HTTPStatus

import numpy as np

from edge import wire
from mia_tf.errors import UsageError
from mia_tf.intercept_log import LogWriteError

DEFAULT_PORT = 8501  # TensorFlow Serving's REST port
DEFAULT_MAX_BODY_BYTES = 64 << 20
MODEL_VERSION = "1"
MAX_JSON_DEPTH = 32  # a feature batch is 5 deep; Python's json recursion dies near 1,000
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = np.zeros(256, np.int8)
_BRACKETS[[ord("["), ord("{")]], _BRACKETS[[ord("]"), ord("}")]] = 1, -1
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<what>/metadata|:predict)?$")


def json_depth(body, chunk=1 << 20):
    """How deep arrays and objects nest in a JSON text, found without parsing it (no recursion,
    bounded memory): brackets inside strings are blanked out, the rest counted a chunk at a time."""
    depth, deepest = 0, 0
    stripped = _JSON_STRING.sub(b'""', bytes(body))
    for start in range(0, len(stripped), chunk):
        running = depth + np.cumsum(_BRACKETS[np.frombuffer(stripped[start:start + chunk], np.uint8)], dtype=np.int64)
        if len(running):
            deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def banner(server, label, log_path):
    """The line `python -m mia_tf serve` prints first, once it listens; `url_in_banner` reads it back."""
    service = server.service
    return (f"serving {service.name} (tail of {label} after {service.layer}, features {service.feature_shape}) at "
            f"{server.url}/v1/models/{service.name}; intercept log {log_path}")


def url_in_banner(line):
    """The server's base URL (http://HOST:PORT) from its `banner`; ValueError if `line` is none."""
    match = re.match(r"serving \S+ .* at (http://[^/\s]+)/v1/models/", line)
    if not match:
        raise ValueError(f"not the server's start-up line: {line!r}")
    return match.group(1)


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
        depth = json_depth(body)
        if depth > MAX_JSON_DEPTH:
            raise RequestError(400, f"JSON nested {depth} deep: at most {MAX_JSON_DEPTH} levels (a feature batch needs 5)")
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(400, f"malformed JSON body: {e}") from None
        except RecursionError:  # cannot happen below MAX_JSON_DEPTH; kept as the last guard
            raise RequestError(400, "JSON nested too deep") from None
        if not isinstance(request, dict) or ("instances" in request) == ("inputs" in request):
            raise RequestError(400, 'the JSON body must be an object with exactly one of "instances" or "inputs"')
        values = request.get("instances", request.get("inputs"))
        if isinstance(values, dict):  # columnar format with named inputs: this tail has one input
            if len(values) != 1:
                raise RequestError(400, f"the tail takes one input tensor, got {len(values)} named inputs")
            values = next(iter(values.values()))
        try:
            with np.errstate(over="ignore"):  # numbers past float32's range become inf, refused below
                return np.asarray(values, dtype=np.float32)
        except (ValueError, TypeError):
            raise RequestError(400, "instances must be a nested list of numbers of one shape") from None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: an edge client reuses its connection
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "mia_tf-serve"
    ALLOW = "GET, POST"

    def setup(self):
        self.timeout = self.server.socket_timeout  # seconds of silence before the connection is dropped
        super().setup()

    def log_message(self, format, *args):  # one line per request only when asked
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", self.ALLOW)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (garbled request line, unknown method, a line or header too
        long, HTTP/2+) as JSON like every other error, instead of an HTML page."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method http.server has no do_ for
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed: use {self.ALLOW}"
        if code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code = HTTPStatus.BAD_REQUEST
        if getattr(self, "request_version", "") in ("HTTP/0.9", ""):  # a broken request line: http.server would send a bare body
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        try:
            self._reply(int(code), {"error": message or HTTPStatus(code).phrase})
        except (ConnectionError, TimeoutError, ValueError):
            pass  # the client is gone (ValueError: no request version yet on a broken line)

    def parse_request(self):
        if not self.raw_requestline.strip():  # a bare line break: http.server would close silently
            self.command, self.requestline = None, ""
            self.send_error(HTTPStatus.BAD_REQUEST, "empty request line")
            return False
        return super().parse_request()

    def handle_one_request(self):
        self.server.connections.started(self.connection)
        try:
            super().handle_one_request()
        except ConnectionError:  # the client reset or closed mid-request: nobody to answer
            self.close_connection = True
        finally:
            self.server.connections.finished(self.connection)

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
        # a body still unread when a request is refused would be taken for the next request
        self._body_read = not self._declares_body()
        try:
            if self.server.connections.over_limit():
                raise RequestError(503, f"the server has {self.server.max_connections} connections open: try again")
            what = self._route()
            if method == "GET" and what is None:
                return self._reply(200, self.server.service.status())
            if method == "GET" and what == "/metadata":
                return self._reply(200, self.server.service.metadata())
            if method == "POST" and what == ":predict":
                return self._reply(200, self._predict())
            raise RequestError(405, f"{method} is not supported on {self.path}")
        except RequestError as e:
            unread_body = not self._body_read
            if unread_body:
                self.close_connection = True  # the unread body would be taken for the next request
            self._reply(e.status, {"error": str(e)})
            if unread_body:
                self._drain()
        except LogWriteError as e:
            print(f"mia_tf serve: {e}; the request was refused (507)", file=sys.stderr)
            self._reply(507, {"error": "the server cannot store this request now: try again later"})
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away: nothing to answer, nothing logged
        except Exception as e:  # a bug of ours: one line for the operator, a JSON 500 for the client
            print(f"mia_tf serve: internal error on {method} {self.path}: {type(e).__name__}: {e}", file=sys.stderr)
            self.close_connection = True
            self._reply(500, {"error": "internal server error"})

    def _declares_body(self):
        return self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers

    def _drain(self, seconds=1.0, limit=1 << 20):
        """Read what the client is still sending for a little while before closing: closing with
        unread data makes the kernel reset the connection, which can throw the answer away."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline, received = time.monotonic() + seconds, 0
            while received < limit and time.monotonic() < deadline:
                ready, _, _ = select.select([self.connection], [], [], max(0.0, deadline - time.monotonic()))
                chunk = self.connection.recv(65536) if ready else b""
                if not chunk:
                    break
                received += len(chunk)
        except OSError:
            pass

    def _predict(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(411, "a predict request needs a Content-Length header")
        if int(length) > self.server.max_body_bytes:
            raise RequestError(413, f"body of {length} bytes exceeds the limit of {self.server.max_body_bytes}: "
                                    f"send fewer images per request")
        body = self.rfile.read(int(length))
        self._body_read = True
        if len(body) < int(length):  # the client stopped sending (closed its side) before the end
            raise RequestError(400, f"the body ended after {len(body)} of the {length} bytes its Content-Length promised")
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

    def _refuse_method(self):
        self.send_error(HTTPStatus.NOT_IMPLEMENTED)  # answered as 405 with Allow, like a method with no do_
        if self._declares_body():
            self._drain()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_TRACE = do_CONNECT = _refuse_method


class Connections:
    """The open connections and when each request began: refuses more than a limit, and a
    watchdog disconnects a client whose request is not in after a time limit (a socket timeout
    alone lets a client that sends a byte every few seconds hold its thread for ever)."""

    def __init__(self, limit, request_seconds):
        self.limit, self.request_seconds = limit, request_seconds
        self._lock = threading.Lock()
        self._started = {}
        self._open = 0
        threading.Thread(target=self._watch, daemon=True).start()

    def opened(self):
        with self._lock:
            self._open += 1

    def closed(self):
        with self._lock:
            self._open -= 1

    def over_limit(self):
        with self._lock:
            return self._open > self.limit

    def started(self, connection):
        with self._lock:
            self._started[connection] = time.monotonic()

    def finished(self, connection):
        with self._lock:
            self._started.pop(connection, None)

    def _watch(self):
        while True:
            time.sleep(min(1.0, self.request_seconds / 4))
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._started.items() if now - t > self.request_seconds]
            for connection in late:
                try:
                    connection.shutdown(socket.SHUT_RDWR)  # the handler's read fails and it ends
                except OSError:
                    pass


class TailServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threaded HTTP server around one `TailService` and an optional `InterceptLog`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops connections when many devices connect at once
    socket_timeout = 30  # seconds of silence from a client before its connection is dropped
    request_seconds = 60  # a request (line, headers, body) must be in within this
    max_connections = 256  # more open at once get 503

    def __init__(self, service, host="127.0.0.1", port=DEFAULT_PORT, log=None,
                 max_body_bytes=DEFAULT_MAX_BODY_BYTES, verbose=False):
        self.service, self.log, self.max_body_bytes, self.verbose = service, log, max_body_bytes, verbose
        self.connections = Connections(self.max_connections, self.request_seconds)
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}): pick another --port") from None

    def handle_error(self, request, client_address):
        """One line, not socketserver's traceback, for whatever a connection's thread did not catch."""
        error = sys.exc_info()[1]
        print(f"mia_tf serve: connection from {client_address[0]}:{client_address[1]} failed: "
              f"{type(error).__name__}: {error}", file=sys.stderr)

    def process_request_thread(self, request, client_address):
        self.connections.opened()
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.closed()

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
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past a file size limit: an error (507), not death
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if server.log is not None:
            server.log.close()
        print("server stopped", file=sys.stderr)
