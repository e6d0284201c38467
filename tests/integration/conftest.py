"""A real Prefect server for the flow tests, started once per session on 127.0.0.1; the tiny
model for the tests of the exported towers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

PREFECT_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `prefect server start` on a free port; yield its API URL; stop it afterwards."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = os.environ | PREFECT_ENV | {"PREFECT_HOME": str(home)}
    prefect = Path(sys.executable).parent / "prefect"
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # before the server goes, not at interpreter exit
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def prefect_env(prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point this process and its children at the test server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for key, value in PREFECT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("DASK_TEMPORARY_DIRECTORY", str(Path(os.environ.get("TMPDIR", "/tmp"))))
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        yield prefect_api


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Embedder, ModelSettings]:
    """(Embedder, ModelSettings): anyshot-tiny in fp32 with an export cache of its own (per
    test module), for the tests of the exported towers."""
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

    settings = ModelSettings(
        name="anyshot-tiny", precision="fp32", cache_dir=tmp_path_factory.mktemp("tower-cache")
    )
    return Embedder(settings), settings
