"""A real ``anyshot serve`` process for the end-to-end tests: started, awaited, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shape_collection import free_port

ANYSHOT = Path(sys.executable).parent / "anyshot"


@dataclass
class ServeProcess:
    """A running ``anyshot serve``.

    Attributes:
        url: Its base URL.
        store: The store folder it holds.
        log: Its log file (stdout and stderr).
    """

    url: str
    store: Path
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop it as Ctrl-C does, and wait until it has let go of the store."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@contextmanager
def anyshot_serve(
    store: Path, log: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[ServeProcess]:
    """Run ``anyshot serve --store STORE`` on a free port until the block ends.

    It counts as started once it has written ``STORE/server.json`` (after binding its port and
    opening the store).
    """
    port = free_port()
    environment = os.environ | {"ANYSHOT_INDEX__WORKERS": "0"} | (env or {})
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(ANYSHOT), "serve", "--store", str(store), "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    served = ServeProcess(f"http://127.0.0.1:{port}", store, log, process)
    deadline = time.monotonic() + 120
    while not (store / "server.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"anyshot serve did not start: {log.read_text()}")
        time.sleep(0.2)
    try:
        yield served
    finally:
        served.stop()
