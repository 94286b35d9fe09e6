"""The curious server's intercept log: every feature tensor it receives, kept across crashes.

The log is one append-only file of records:

    magic b"MIAR" | header length u32 | payload length u64 | CRC-32 of header + payload u32
    | header (JSON: time, client, model, layer, body format) | payload (the tensor, `edge.wire`)

Each record is written with one `write` on a file opened for appending, then flushed to disk
(`fsync`), under a lock, so concurrent requests never interleave. A crash can only leave a
partial record at the very end; readers stop at the first record whose length or CRC does not
hold and report how many bytes they skipped, and a writer opening the log cuts such a tail off
before it appends, so every complete record stays readable and no broken one is ever read.
The attack verbs read it with `--features LOG`. A record whose CRC holds but whose tensor the
wire format refuses (written by an older server that did not check headers, or by hand) is left
out by the readers and named, never read as data.
"""

import json
import os
import struct
import sys
import threading
import time
import zlib

import numpy as np

from edge import wire
from mia_tf.errors import UsageError

MAGIC = b"MIAR"
_PREFIX = struct.Struct("<4sIQI")


def _record(header, payload):
    header = json.dumps(header, sort_keys=True).encode()
    crc = zlib.crc32(payload, zlib.crc32(header))
    return _PREFIX.pack(MAGIC, len(header), len(payload), crc) + header + payload


def _scan(data):
    """(list of (header dict, payload bytes), offset just after the last complete record)."""
    records, offset = [], 0
    while offset + _PREFIX.size <= len(data):
        magic, header_len, payload_len, crc = _PREFIX.unpack_from(data, offset)
        end = offset + _PREFIX.size + header_len + payload_len
        if magic != MAGIC or end > len(data):
            break
        header = data[offset + _PREFIX.size: offset + _PREFIX.size + header_len]
        payload = data[offset + _PREFIX.size + header_len: end]
        if zlib.crc32(payload, zlib.crc32(header)) != crc:
            break
        try:
            records.append((json.loads(header), payload))
        except ValueError:
            break
        offset = end
    return records, offset


class LogWriteError(OSError):
    """The log could not take a record (disk full, file size limit): the record is not in it."""


class InterceptLog:
    """Appends received feature tensors to a log file; safe to share between request threads."""

    def __init__(self, path, durable=True):
        self.path, self.durable = os.fspath(path), durable
        os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.truncated_bytes = self._cut_torn_tail()

    def _cut_torn_tail(self):
        size = os.fstat(self._fd).st_size
        with open(self.path, "rb") as f:
            _, good = _scan(f.read())
        if good < size:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        return size - good

    def append(self, body, client, model, layer, body_format):
        """Log one received tensor (`body` in the `edge.wire` format) with who sent it and when."""
        record = _record({"time": time.time(), "client": client, "model": model, "layer": layer,
                          "format": body_format}, body)
        with self._lock:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(self._fd, view):]
                if self.durable:
                    os.fsync(self._fd)
            except OSError as e:  # ENOSPC, EFBIG (RLIMIT_FSIZE), EIO: leave no partial record behind
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass  # the torn tail is then cut when the log is next opened
                raise LogWriteError(e.errno, f"cannot append to the intercept log {self.path}: "
                                             f"{e.strerror}") from None

    def close(self):
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_log(path):
    """(records as (header, array, scale, zero_point), bytes ignored at a torn tail, refused records).

    Refused records are (position in the log, why) for whole records the wire format refuses."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read the intercept log {path} ({e.strerror}): give the file "
                         f"`python -m mia_tf serve --intercept-log` wrote") from None
    records, good = _scan(data)
    if not records and data:
        raise UsageError(f"{path} is not a mia_tf intercept log (no valid record at its start)")
    decoded, refused = [], []
    for position, (header, payload) in enumerate(records):
        try:
            decoded.append((header, *wire.decode(payload)))
        except wire.WireError as e:
            refused.append((position, str(e)))
    return decoded, len(data) - good, refused


def read_features(path, layer=None, allow_refused=False):
    """float32 features of every record in the log, concatenated in arrival order, and the headers.

    Args:
      layer: if given, every record must come from this split layer (else a UsageError).
      allow_refused: leave out records the wire format refuses (with a warning on stderr); else
        they are a UsageError, because the features would no longer line up with their originals.
    """
    records, _, refused = read_log(path)
    if refused:
        which = ", ".join(f"#{position} ({why})" for position, why in refused[:3])
        message = f"{path}: {len(refused)} record(s) hold tensors the wire format refuses: {which}"
        if not allow_refused:
            raise UsageError(f"{message}; without --images they are left out and the rest attacked")
        print(f"warning: {message}; left out", file=sys.stderr)
    if not records:
        raise UsageError(f"the intercept log {path} holds no records yet: run the edge client against the server")
    layers = sorted({header["layer"] for header, *_ in records})
    if layer is not None and layers != [layer]:
        raise UsageError(f"{path} holds features of layer {', '.join(layers)}, not {layer}: "
                         f"pass --layer {layers[0]}")
    shapes = sorted({array.shape[1:] for _, array, _, _ in records})
    if len(shapes) > 1:
        raise UsageError(f"{path} mixes feature shapes {shapes}: attack one model's log at a time")
    features = np.concatenate([wire.dequantize(array, scale, zero) for _, array, scale, zero in records])
    return features, [header for header, *_ in records]
