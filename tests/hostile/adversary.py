"""Helpers of the hostile-input suite: the real ``anyshot`` in a process, unprivileged runs,
a real ``anyshot serve`` on 127.0.0.1, and checks that nothing printed a traceback."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ANYSHOT = str(Path(sys.executable).parent / "anyshot")
"""The console script of the installed package (the very command users run)."""

DROP_FILE_OVERRIDES = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable",
    "--",
)
"""Runs a command as root without root's override of file permissions, so that ``chmod 000``
and read-only folders bite (``/root`` may be unreadable to other users, which rules out
running the venv's Python as ``nobody``)."""

BASE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "ANYSHOT_INDEX__WORKERS": "0",
}


def permissions_bite() -> bool:
    """True when an unprivileged run can be made: not root, or root with ``setpriv``."""
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def unprivileged(command: Sequence[str]) -> list[str]:
    """``command`` so that file permissions apply to it, even when the tests run as root."""
    if os.geteuid() != 0:
        return list(command)
    return [*DROP_FILE_OVERRIDES, *command]


def run_anyshot(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    drop_privileges: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``anyshot`` command in a new process; returns its exit code and output."""
    command = [ANYSHOT, *args]
    if drop_privileges:
        command = unprivileged(command)
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=os.environ | BASE_ENV | (env or {}),
        cwd=cwd,
    )


def assert_no_traceback(*outputs: str) -> None:
    """Fail if a Python traceback (or a bare panic) was printed."""
    for output in outputs:
        assert "Traceback (most recent call last)" not in output, output
        assert "panicked at" not in output, output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """A running ``anyshot serve``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(
    store: Path,
    *,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    log: Path | None = None,
    startup_timeout: float = 120,
) -> Iterator[Served]:
    """Start ``anyshot serve --store STORE`` on a free port of 127.0.0.1; stop it afterwards.

    Waits until ``/healthz`` answers. On exit the server gets SIGINT, then SIGKILL after 30 s.
    """
    port = free_port()
    log = log or store.parent / f"serve-{port}.log"
    out = log.open("wb")
    process = subprocess.Popen(
        [
            ANYSHOT,
            *("serve", "--store", str(store), "--host", "127.0.0.1", "--port", str(port)),
            *args,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=os.environ | BASE_ENV | (env or {}),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out.close()
            raise RuntimeError(f"anyshot serve did not start: {log.read_text(errors='replace')}")
        time.sleep(0.2)
    served = Served(url, process, log)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.close()


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header is rewritten to declare ``width`` × ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)
