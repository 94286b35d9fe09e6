"""The tail server on loopback: TF Serving's REST API, the binary body, and every kind of bad request."""

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

import mia_tf
from edge import wire
from edge.client import TailClient
from mia_tf.intercept_log import InterceptLog, read_features
from mia_tf.serve import TailServer, TailService

from conftest import start_server

NAME = "lenet_mnist_relu2"


@pytest.fixture(scope="module")
def split_lenet():
    model, _, _ = mia_tf.load_model("lenet_mnist")
    return mia_tf.split(model, "relu2")


@pytest.fixture(scope="module")
def victims_features(split_lenet):
    images, labels = mia_tf.load_sample("mnist")
    return split_lenet[0].predict(mia_tf.normalize(images[:20], "mnist"), verbose=0), labels[:20]


@pytest.fixture()
def server(split_lenet, tmp_path):
    log = InterceptLog(tmp_path / "intercept.log")
    server = TailServer(TailService(split_lenet[1], NAME, "relu2"), "127.0.0.1", 0, log, max_body_bytes=1 << 20)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    log.close()


def _request(server, method, path, body=None, content_type="application/json"):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    connection.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def test_status_metadata_and_json_predict_speak_tf_serving(server, split_lenet, victims_features):
    features, labels = victims_features
    status, answer = _request(server, "GET", f"/v1/models/{NAME}")
    assert status == 200 and answer["model_version_status"][0]["state"] == "AVAILABLE"
    status, answer = _request(server, "GET", f"/v1/models/{NAME}/metadata")
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert [d["size"] for d in signature["inputs"]["features"]["tensor_shape"]["dim"]] == ["-1", "8", "8", "16"]
    for path in (f"/v1/models/{NAME}:predict", f"/v1/models/{NAME}/versions/1:predict"):
        status, answer = _request(server, "POST", path, json.dumps({"instances": features[:5].tolist()}))
        assert status == 200
        expected = split_lenet[1].predict(features[:5], verbose=0)
        np.testing.assert_allclose(answer["predictions"], expected, atol=1e-4)
    status, answer = _request(server, "POST", f"/v1/models/{NAME}:predict",
                              json.dumps({"inputs": {"features": features[:2].tolist()}}))
    assert status == 200 and len(answer["predictions"]) == 2


def test_binary_int8_body_is_dequantised_and_logged_as_sent(server, victims_features):
    features, labels = victims_features
    scale = float(features.max()) / 255
    quantised = np.clip(np.round(features / scale) - 128, -128, 127).astype(np.int8)
    client = TailClient(server.url, NAME, "binary")
    logits = client.predict(quantised, scale, -128)
    client.close()
    assert np.mean(np.argmax(logits, axis=1) == labels) >= 0.95
    logged, headers = read_features(server.log.path, layer="relu2")
    np.testing.assert_allclose(logged, wire.dequantize(quantised, scale, -128))
    assert headers[0]["format"] == "binary" and headers[0]["client"].startswith("127.0.0.1:")


@pytest.mark.parametrize("path, body, content_type, status, message", [
    (f"/v1/models/{NAME}:predict", b"{not json", "application/json", 400, "malformed JSON"),
    (f"/v1/models/{NAME}:predict", b'{"instances": [[1, 2], [3]]}', "application/json", 400, "nested list"),
    (f"/v1/models/{NAME}:predict", b'{"instances": [[1, 2]]}', "application/json", 400, "shape (N, 8, 8, 16)"),
    (f"/v1/models/{NAME}:predict", b'{"signature": 1}', "application/json", 400, 'exactly one of "instances"'),
    (f"/v1/models/{NAME}:predict", wire.encode(np.full((1, 8, 8, 16), np.nan, np.float32)), wire.CONTENT_TYPE,
     400, "NaN"),
    (f"/v1/models/{NAME}:predict", wire.encode(np.zeros((1, 8, 8, 16), np.float64).astype(np.float32))[:-3],
     wire.CONTENT_TYPE, 400, "malformed binary tensor"),
    (f"/v1/models/{NAME}:predict", wire.encode(np.zeros((1, 8, 8, 16), np.float32)).replace(b"MIAT\x01\x01\x04\x00",
                                                                                      b"MIAT\x01\x02\x04\x00", 1),
     wire.CONTENT_TYPE, 400, "positive finite scale"),  # an int8 tensor with a float's scale of 0
    ("/v1/models/other:predict", b"{}", "application/json", 404, "Servable not found"),
    (f"/v1/models/{NAME}/versions/7:predict", b"{}", "application/json", 404, "version 7"),
    ("/nowhere", b"{}", "application/json", 404, "unknown path"),
])
def test_bad_requests_get_a_4xx_json_error_and_are_not_logged(server, path, body, content_type, status, message):
    got, answer = _request(server, "POST", path, body, content_type)
    assert got == status and message in answer["error"]
    status, _ = _request(server, "GET", f"/v1/models/{NAME}")  # still serving
    assert status == 200
    with pytest.raises(Exception, match="no records yet"):
        read_features(server.log.path)


def test_oversized_bodies_and_dropped_clients_leave_the_server_serving(server, victims_features):
    features, _ = victims_features
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as s:  # declares 2 MiB: refused unread
        s.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {2 << 20}\r\n\r\n".encode())
        reply = b"".join(iter(lambda: s.recv(4096), b"")).decode()  # the server closes after answering
    assert reply.startswith("HTTP/1.1 413") and "exceeds the limit" in reply
    body = wire.encode(features[:1])
    with socket.create_connection((host, port), timeout=30) as s:  # disconnects halfway through its body
        s.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: {wire.CONTENT_TYPE}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    client = TailClient(server.url, NAME)
    client.predict(features[:3])
    client.close()
    logged, _ = read_features(server.log.path)
    assert len(logged) == 3  # only the whole request was logged
    np.testing.assert_array_equal(logged, features[:3])


def test_many_concurrent_clients_all_get_answers_and_every_tensor_is_logged(server, victims_features):
    features, labels = victims_features
    errors, answers = [], {}

    def client(k):
        try:
            c = TailClient(server.url, NAME, "binary" if k % 2 else "json")
            answers[k] = [int(np.argmax(c.predict(features[i:i + 1]))) for i in range(len(features))]
            c.close()
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert all(answers[k] == answers[0] for k in answers) and len(answers) == 8
    assert len(read_features(server.log.path)[0]) == 8 * len(features)


def _raw_exchange(server, request, half_close=False):
    """Send raw bytes, read until the server closes; (status, headers text, JSON body)."""
    with socket.create_connection(server.server_address[:2], timeout=30) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), json.loads(body) if body else None


@pytest.mark.parametrize("request_bytes, status, message", [
    (f"PUT /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode(), 405, "PUT"),
    (f"DELETE /v1/models/{NAME} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), 405, "DELETE"),
    (f"BREW /v1/models/{NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 405, "BREW"),
    (b"\r\n", 400, "empty request line"),
    (b"GARBAGE\r\n\r\n", 400, "Bad request syntax"),
    (f"GET /v1/models/{NAME} HTTP/9.9\r\nHost: x\r\n\r\n".encode(), 400, "Invalid HTTP version"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "Request-URI Too Long"),
])
def test_http_level_refusals_are_json_too(server, request_bytes, status, message):
    got, head, answer = _raw_exchange(server, request_bytes)
    assert got == status and message in answer["error"], (head, answer)
    if status == 405:
        assert "Allow: GET, POST" in head
    assert _request(server, "GET", f"/v1/models/{NAME}")[0] == 200


def test_json_nested_deeper_than_a_batch_needs_is_refused_before_parsing(server):
    body = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer = _request(server, "POST", f"/v1/models/{NAME}:predict", body)
    assert status == 400 and answer["error"].startswith("JSON nested 100001 deep")
    status, answer = _request(server, "POST", f"/v1/models/{NAME}:predict", b'{"instances": [[[["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]]}')
    assert status == 400 and "deep" not in answer["error"]  # brackets inside strings do not count


def test_a_body_shorter_than_its_length_is_a_400_not_a_dropped_connection(server, victims_features):
    body = wire.encode(victims_features[0][:1])
    head = (f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: {wire.CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status, _, answer = _raw_exchange(server, head + body[:100], half_close=True)
    assert status == 400 and "ended after 100 of the" in answer["error"]


def test_a_trickling_client_is_cut_off_and_others_are_served_meanwhile(server, victims_features):
    server.connections.request_seconds = 2
    head = f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
    trickles = []
    for _ in range(5):
        s = socket.create_connection(server.server_address[:2], timeout=30)
        s.sendall(head)
        trickles.append(s)
    client = TailClient(server.url, NAME)
    started = time.monotonic()
    for _ in range(6):  # a byte a second each: never silent long enough for the socket timeout
        for s in trickles:
            try:
                s.sendall(b"[")
            except OSError:
                pass
        assert client.predict(victims_features[0][:1]).shape == (1, 10)  # served while they trickle
        time.sleep(1)
    client.close()
    for s in trickles:  # each was disconnected, within the watchdog's time, not held for ever
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert time.monotonic() - started < 20


def test_a_bug_of_ours_is_a_500_with_one_line_and_the_server_goes_on(server, victims_features, monkeypatch, capsys):
    def broken(features):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(server.service, "predict", broken)
    status, answer = _request(server, "POST", f"/v1/models/{NAME}:predict", wire.encode(victims_features[0][:1]),
                               wire.CONTENT_TYPE)
    assert status == 500 and answer == {"error": "internal server error"}
    assert "internal error on POST" in capsys.readouterr().err
    assert _request(server, "GET", f"/v1/models/{NAME}")[0] == 200


FULL_DISK_SERVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))  # the log's file may not grow past this
from mia_tf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_log_refuses_with_507_and_keeps_serving(tmp_path, victims_features):
    log = tmp_path / "intercept.log"
    process, url = start_server(log, "--layer", "relu2", "--dataset", "mnist", python=("-c", FULL_DISK_SERVER))
    try:
        client = TailClient(url, NAME)
        answered = refused = 0
        for i in range(8):  # each record is about 4.2 kB: the limit takes 4
            try:
                client.predict(victims_features[0][i:i + 1])
                answered += 1
            except Exception as e:  # the client's one-line error carries the server's JSON
                assert "507" in str(e) or "cannot store" in str(e), e
                refused += 1
        client.close()
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", f"/v1/models/{NAME}")
        assert connection.getresponse().status == 200  # still serving
        connection.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert answered == 4 and refused == 4, stderr
    logged, _ = read_features(log)  # exactly the answered tensors, none torn
    np.testing.assert_array_equal(logged, victims_features[0][:4])
    assert "Traceback" not in stderr and "cannot append to the intercept log" in stderr, stderr[-3000:]
