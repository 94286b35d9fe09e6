import os
import sys

# Keep TensorFlow's start-up chatter (CUDA probes, CPU feature notes) out of the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _import_tensorflow_quietly():
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    Some of its C++ start-up notes ("Could not find cuda drivers") are written before
    TF_CPP_MIN_LOG_LEVEL is read, and would bury the CLI's one-line errors. Import errors still
    raise as usual once stderr is back.
    """
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


_import_tensorflow_quietly()

from mia_tf.cli import main  # noqa: E402

sys.exit(main())
