"""Fuzzing what a hostile client or a damaged disk can hand the server: every input either yields
a valid record or a clean refusal, never another exception, a dropped connection or a torn record.

Each property runs FUZZ_EXAMPLES examples in the suite; `python -m pytest -m slow` runs the same
properties with CAMPAIGN_EXAMPLES each (test_fuzz_campaign).
"""

import functools
import http.client
import json
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import mia_tf
from edge import wire
from mia_tf.errors import UsageError
from mia_tf.intercept_log import InterceptLog, read_log
from mia_tf.serve import RequestError, TailServer, TailService

from conftest import ROOT

FUZZ_EXAMPLES = 150
CAMPAIGN_EXAMPLES = 3000
NAME = "lenet_mnist_relu2"
FEATURE_SHAPE = (8, 8, 16)
# The suite's run is the same every time (derandomized); the campaign draws new examples each run.
settings.register_profile("suite", max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("campaign", max_examples=CAMPAIGN_EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
fuzz = settings(settings.get_profile(os.environ.get("MIA_TF_FUZZ_PROFILE", "suite")))


@functools.cache
def service():
    """One traced tail for every example (tracing costs about a second)."""
    model, _, _ = mia_tf.load_model("lenet_mnist")
    return TailService(mia_tf.split(model, "relu2")[1], NAME, "relu2")


# ---- the wire decoder --------------------------------------------------------------------------

VALID_BODIES = st.one_of(
    st.builds(lambda a: wire.encode(a), st.integers(1, 3).flatmap(
        lambda n: st.just(np.arange(n * 4, dtype=np.float32).reshape(n, 4)))),
    st.builds(lambda n, s, z: wire.encode(np.full((n, 2, 2), 3, np.int8), s, z), st.integers(1, 3),
              st.floats(0.125, 10.0, width=32), st.integers(-128, 127)),
)


def _decodes_exactly_or_refuses(body):
    try:
        array, scale, zero_point = wire.decode(body)
    except wire.WireError:
        return
    assert wire.encode(array, scale, zero_point) == bytes(body)  # what was accepted is exactly what it says


@fuzz
@given(st.binary(max_size=200))
def test_wire_decoder_on_arbitrary_bytes(body):
    _decodes_exactly_or_refuses(body)


@fuzz
@given(VALID_BODIES, st.data())
def test_wire_decoder_on_bit_flipped_and_cut_bodies(body, data):
    damaged = bytearray(body)
    for bit in data.draw(st.lists(st.integers(0, 8 * len(body) - 1), max_size=4)):
        damaged[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(damaged)))
    _decodes_exactly_or_refuses(bytes(damaged[:cut]))


# ---- request parsing ---------------------------------------------------------------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5),
                                                                                               children, max_size=3),
                           max_leaves=30)
FEATURE_BATCHES = st.integers(1, 2).flatmap(lambda n: arrays(np.float32, (n, *FEATURE_SHAPE), fill=st.just(0.5),
                                                                elements=st.floats(width=32)))


def _parses_or_refuses(body, content_type):
    try:
        features, logged, _ = service().parse(body, content_type)
    except RequestError as e:
        assert 400 <= e.status < 500 and str(e)
        return
    assert features.shape[1:] == FEATURE_SHAPE and np.all(np.isfinite(features))
    decoded, scale, zero_point = wire.decode(logged)  # what goes into the log is a valid tensor
    np.testing.assert_array_equal(wire.dequantize(decoded, scale, zero_point), features)


@fuzz
@given(JSON_VALUES, st.sampled_from(["instances", "inputs", "signature"]))
def test_request_parsing_on_arbitrary_json(value, key):
    _parses_or_refuses(json.dumps({key: value}).encode(), "application/json")
    _parses_or_refuses(json.dumps(value).encode(), "application/json")


@fuzz
@given(FEATURE_BATCHES, st.booleans())
def test_request_parsing_on_feature_batches_some_broken(batch, ragged):
    values = batch.tolist()
    if ragged:
        values[-1][-1][-1] = values[-1][-1][-1][:-1]  # one feature short
    _parses_or_refuses(json.dumps({"instances": values}).encode(), "application/json")


@fuzz
@given(st.binary(max_size=300), st.sampled_from(["application/json", wire.CONTENT_TYPE, "text/plain", ""]))
def test_request_parsing_on_arbitrary_bytes(body, content_type):
    _parses_or_refuses(body, content_type)


@fuzz
@given(st.integers(1, 3000))
def test_request_parsing_on_deep_nesting(depth):
    _parses_or_refuses(b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}", "application/json")


# ---- the HTTP handler on a real server ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = InterceptLog(tmp_path_factory.mktemp("fuzz") / "intercept.log", durable=False)
    server = TailServer(service(), "127.0.0.1", 0, log, max_body_bytes=1 << 16)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    log.close()


METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "BREW"])
PATHS = st.sampled_from([f"/v1/models/{NAME}", f"/v1/models/{NAME}:predict", f"/v1/models/{NAME}/metadata",
                         f"/v1/models/{NAME}/versions/1:predict", "/v1/models/other:predict", "/", "/%00"])
BODIES = st.one_of(st.binary(max_size=200), VALID_BODIES,
                   st.just(json.dumps({"instances": np.zeros((1, *FEATURE_SHAPE)).tolist()}).encode()))
LENGTHS = st.sampled_from(["exact", "missing", "short", "long", "junk", "huge"])


def _exchange(address, method, path, body, content_type, length, keep_alive):
    declared = {"exact": str(len(body)), "missing": None, "short": str(max(0, len(body) - 1)), "long": str(len(body) + 5),
                "junk": "12abc", "huge": str(1 << 40)}[length]
    head = f"{method} {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: {content_type}\r\n"
    head += "" if declared is None else f"Content-Length: {declared}\r\n"
    head += "" if keep_alive else "Connection: close\r\n"
    with socket.create_connection(address, timeout=30) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        if length == "long":
            s.shutdown(socket.SHUT_WR)  # the promised bytes never come: the server must still answer
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(65536)
            assert chunk, f"connection dropped without an answer: {method} {path} {length}"
            reply += chunk
    return reply


@fuzz
@given(METHODS, PATHS, BODIES, st.sampled_from(["application/json", wire.CONTENT_TYPE, "x/y"]), LENGTHS,
       st.booleans())
def test_the_http_handler_answers_everything_with_json(server, method, path, body, content_type, length, keep_alive):
    reply = _exchange(server.server_address[:2], method, path, body, content_type, length, keep_alive)
    status = int(reply.split()[1])
    assert 200 <= status < 300 or 400 <= status < 500, reply[:300]
    assert b"Content-Type: application/json" in reply.split(b"\r\n\r\n")[0]
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    connection.request("GET", f"/v1/models/{NAME}")
    assert connection.getresponse().status == 200  # still serving
    connection.close()


# ---- the intercept log reader ------------------------------------------------------------------

LOGS = {}


def _log_bytes(tmp_path_factory, count):
    """A log of `count` records, made once per count: its bytes (with their time stamps) must be the
    same in every example hypothesis replays."""
    if count not in LOGS:
        path = tmp_path_factory.mktemp("log") / "intercept.log"
        log = InterceptLog(path, durable=False)
        for i in range(count):
            log.append(wire.encode(np.full((1, 4), i, np.float32)), "127.0.0.1:1", NAME, "relu2", "binary")
        log.close()
        LOGS[count] = path.read_bytes()
    return LOGS[count]


@fuzz
@given(st.integers(1, 5), st.data())
def test_the_log_reader_on_cut_and_flipped_logs(tmp_path_factory, count, data):
    damaged = bytearray(_log_bytes(tmp_path_factory, count))
    for bit in data.draw(st.lists(st.integers(0, 8 * len(damaged) - 1), max_size=3)):
        damaged[bit // 8] ^= 1 << (bit % 8)
    damaged = damaged[:data.draw(st.integers(0, len(damaged)))]
    path = tmp_path_factory.mktemp("damaged") / "intercept.log"
    path.write_bytes(bytes(damaged))
    try:
        records, torn, refused = read_log(path)
    except UsageError:
        return  # damage at the very start: not a log, said in one line
    # whole original records, in order, up to the first damage; a damaged tensor is named, not read
    assert len(records) + len(refused) <= count and torn >= 0
    for position, (_, array, _, _) in enumerate(records):
        np.testing.assert_array_equal(array, np.full((1, 4), position, np.float32))
    InterceptLog(path, durable=False).close()  # a writer reopening it cuts the damage off
    assert read_log(path)[1] == 0


@pytest.mark.slow
def test_fuzz_campaign():
    """Every property above with CAMPAIGN_EXAMPLES random examples (a pytest of this file in a subprocess)."""
    env = dict(os.environ, MIA_TF_FUZZ_PROFILE="campaign", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pytest", __file__, "-m", "not slow", "-q", "-p", "no:cacheprovider"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    assert result.returncode == 0, result.stdout[-5000:]
    assert "8 passed" in result.stdout
