"""How an attack runs, apart from what it computes: where trained models are kept, on which
devices, and how it reports progress. Every attack takes one `AttackContext` (or None: the
defaults) instead of a cache path, a strategy and a logger threaded through each call.

Progress goes through the standard `logging` module (logger "mia_tf": one line per trained or
loaded model, per decision, and every `progress_seconds` of a long optimisation); the CLI shows
it on stderr and adds a progress bar through `progress`.
"""

import dataclasses
import logging
import time
from collections.abc import Callable

from mia_tf.attacks import cache as cache_lib

logger = logging.getLogger("mia_tf")


@dataclasses.dataclass(frozen=True)
class Progress:
    """One report from a long optimisation: `step` of `total` done, for the victims from `first` on."""

    label: str
    step: int
    total: int
    loss: float
    reconstruction: object  # the current images of this batch, normalised
    first: int  # index of the batch's first victim


@dataclasses.dataclass(frozen=True)
class AttackContext:
    """Where and how an attack runs.

    cache_dir: where trained decoders and shadows, query answers and resumable rMLE state are
      kept (None: $MIA_TF_CACHE, else ~/.cache/mia_tf).
    strategy: a tf.distribute strategy (`mia_tf.distributed.make_strategy`) for training, and
      with several workers each attacks its share of the victims; None: the default device.
    batch_size: victims inverted together by rMLE (the result does not depend on it; memory does).
    verbose: Keras progress bars while models train (0: none, 1: a bar).
    progress: called with a `Progress` between compiled optimisation calls; None: a log line at
      most every `progress_seconds`.
    """

    cache_dir: str | None = None
    strategy: object = None
    batch_size: int = 100
    verbose: int = 0
    progress: Callable[[Progress], None] | None = None
    progress_seconds: float = 60.0

    def __post_init__(self):
        from mia_tf.errors import UsageError

        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch_size must be a positive whole number, got {self.batch_size!r}")

    @property
    def cache(self):
        return cache_lib.cache_dir(self.cache_dir)

    @property
    def rmle_checkpoints(self):
        return cache_lib.rmle_checkpoint_dir(self.cache_dir)

    def log(self, message):
        logger.info(message)

    def progress_for(self, label, total, first=0):
        """A `whitebox.reconstruct` progress callback for one batch of victims from `first` on."""
        if self.progress is not None:
            return lambda step, loss, x: self.progress(Progress(label, step, total, loss, x, first))
        last = {}

        def log_progress(step, loss, x):  # a line at most every progress_seconds, and at the end
            now = time.time()
            if last and step < total and now - last["time"] < self.progress_seconds:
                return
            pace = f", {(now - last['time']) / (step - last['step']):.2f} s per step" \
                if last and step > last["step"] else ""
            self.log(f"{label}: step {step:,} of {total:,}, loss {loss:.5g}{pace}")
            last.update(time=now, step=step)

        return log_progress


DEFAULT_CONTEXT = AttackContext()
