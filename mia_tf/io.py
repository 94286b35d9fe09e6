"""Small file helpers: atomic writes, content hashes, and silencing TensorFlow's native output."""

import contextlib
import json
import os
import tempfile

from edge.manifest import sha256_file  # noqa: F401  (one definition, in the TensorFlow-free device package)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A crash or an exception leaves either the old file or none, never a half-written one.
    The temporary name keeps the whole extension (".weights.h5", ".npz") because Keras and numpy
    choose the format from it.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, dot, ext = os.path.basename(path).partition(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{dot}{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def silenced_output():
    """Point file descriptors 1 and 2 at /dev/null for the block.

    TensorFlow's C++ code and the TFLite converter print notes straight to the descriptors
    (CUDA probes at import, "Saved artifact at ...", quantiser statistics), which Python's
    sys.stdout / sys.stderr redirection cannot catch; they would bury the CLI's own output.
    Exceptions still propagate and are reported once the descriptors are back.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def write_json(path, obj):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
