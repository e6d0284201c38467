"""Stand-ins for a decoder that crashes or hangs on one image, for the decoding workers.

They replace a pipeline's PIL steps, so the worker process really dies (SIGKILL, as a segfault
or the OOM killer would end it) or really hangs where no Python signal handler can run. Kept
apart from the test modules so that spawned workers import only this, not torch.
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass

from PIL import Image

from indexer.prepare import ResizeCrop


@dataclass(frozen=True)
class DieOnWidth:
    """Resize and crop, but kill the worker on an image of width ``width``."""

    width: int
    steps: ResizeCrop

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.width == self.width:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.steps(image)


@dataclass(frozen=True)
class HangOnWidth:
    """Resize and crop, but hang inside C code on width ``width``: Python's signal handlers
    (the decode deadline) never get to run, as in a decoder stuck in a loop."""

    width: int
    steps: ResizeCrop

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.width == self.width:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            libc = ctypes.CDLL(None)
            while True:
                libc.pause()  # never returns to Python
        return self.steps(image)
