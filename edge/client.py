"""Send features to the cloud tail: TensorFlow Serving's REST predict API, over one kept-alive
HTTP/1.1 connection, with a JSON body (any TF Serving) or the compact binary body of `wire`."""

import http.client
import json
import urllib.parse

import numpy as np

from edge import EdgeError
from edge.wire import CONTENT_TYPE, dequantize, encode

FORMATS = ("binary", "json")


class TailClient:
    """POSTs feature batches to `URL/v1/models/NAME:predict` and returns the logits."""

    def __init__(self, url, model_name, body_format="binary", timeout=30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise EdgeError(f"server URL {url!r} must look like http://HOST:PORT")
        if body_format not in FORMATS:
            raise EdgeError(f"unknown body format {body_format!r}: use binary or json")
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.path = f"{parsed.path.rstrip('/')}/v1/models/{urllib.parse.quote(model_name)}:predict"
        self.body_format, self.timeout = body_format, timeout
        self._connection = None

    def predict(self, features, scale=0.0, zero_point=0):
        """Logits (N, classes) for a batch of raw head outputs (int8 with its quantisation, or float)."""
        if self.body_format == "binary":
            body, content_type = encode(features, scale, zero_point), CONTENT_TYPE
        else:  # TF Serving's row format; int8 features travel as their real values
            values = dequantize(np.asarray(features), scale, zero_point)
            body, content_type = json.dumps({"instances": values.tolist()}).encode(), "application/json"
        status, reply = self._post(body, content_type)
        try:
            answer = json.loads(reply)
        except ValueError:
            raise EdgeError(f"the server answered {status} with a body that is not JSON: {reply[:200]!r}") from None
        if status != 200:
            raise EdgeError(f"the server refused the features ({status}): {answer.get('error', answer)}")
        return np.asarray(answer["predictions"], np.float32)

    def _post(self, body, content_type):
        for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._connection.request("POST", self.path, body=body, headers={"Content-Type": content_type})
                response = self._connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.close()
                if attempt == 2 or not isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError,
                                                       ConnectionResetError)):
                    raise EdgeError(f"cannot reach the server at {self.host}:{self.port} ({e})") from None

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None
