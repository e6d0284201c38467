"""Limits on concurrent work in a server: so many downloads or decodes at once, the rest refused.

A server must keep answering while clients ask for expensive work (downloading a slow URL,
decoding a large image). Each kind of work gets a :class:`WorkLimiter`: a request takes a
slot or, after waiting at most a few seconds, is refused with
:class:`~indexer.errors.BusyError` (HTTP 429), instead of piling up threads and memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from indexer.errors import BusyError


class WorkLimiter:
    """At most ``limit`` pieces of one kind of work at once.

    Args:
        limit: How many may run at once.
        what: What the work is, for the error (``"downloads"``).
        setting: The setting that sets the limit, for the error.
        wait: Seconds a request may wait for a free slot before it is refused.
    """

    def __init__(self, limit: int, *, what: str, setting: str, wait: float = 0.0) -> None:
        self.limit = limit
        self.what = what
        self.setting = setting
        self.wait = wait
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the duration of the ``with`` block.

        Raises:
            BusyError: No slot became free within ``wait`` seconds.
        """
        taken = (
            self._slots.acquire(timeout=self.wait) if self.wait > 0 else self._slots.acquire(False)
        )
        if not taken:
            raise BusyError(
                f"the server is busy: {self.limit} {self.what} already running ({self.setting}); "
                f"try again shortly"
            )
        try:
            yield
        finally:
            self._slots.release()
