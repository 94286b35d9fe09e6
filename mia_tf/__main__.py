import os
import sys

# Keep TensorFlow's start-up chatter (CUDA probes, CPU feature notes) out of the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mia_tf.cli import main  # noqa: E402

sys.exit(main())
