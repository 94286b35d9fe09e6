import os
import sys

# Keep TensorFlow's start-up chatter (CUDA probes, CPU feature notes) out of the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mia_tf.io import silenced_output  # noqa: E402

# Some of TensorFlow's C++ start-up notes ("Could not find cuda drivers") are written before
# TF_CPP_MIN_LOG_LEVEL is read, and would bury the CLI's one-line errors.
with silenced_output():
    import tensorflow  # noqa: F401

from mia_tf.cli import main  # noqa: E402

sys.exit(main())
