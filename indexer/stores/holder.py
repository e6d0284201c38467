"""The "a server holds this store folder" file: ``server.json``, written by ``anyshot serve``.

An embedded store allows one process. While ``anyshot serve`` has a store folder open, it
writes ``server.json`` (its URL and pid) into the folder, and removes it when it stops. Anyone
who finds the folder locked reads it to learn where to send the work instead: ``anyshot
index``/``search`` hand their work to the server, and an index flow refuses at start with the
server's URL (:class:`~indexer.errors.StoreServedError`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from indexer.stores.folder_lock import process_alive

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerAddress:
    """Where a running server listens, as it wrote in the store folder."""

    url: str
    pid: int


def advertise_server(store_dir: Path, url: str) -> Path:
    """Write ``server.json`` (URL and pid of this process) into a store folder.

    Returns:
        The file's path.
    """
    path = store_dir / SERVER_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "started": time.time()}))
    os.replace(tmp, path)
    return path


def withdraw_server(store_dir: Path) -> None:
    """Remove ``server.json`` if this process wrote it."""
    found = find_server(store_dir)
    if found is not None and found.pid == os.getpid():
        (store_dir / SERVER_FILE).unlink(missing_ok=True)


def find_server(store_dir: Path) -> ServerAddress | None:
    """The server that says it holds this store folder, or None."""
    try:
        data = json.loads((store_dir / SERVER_FILE).read_text())
        return ServerAddress(url=str(data["url"]).rstrip("/"), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_server(store_dir: Path) -> ServerAddress | None:
    """The server that says it holds this store folder, if its process still runs.

    A file left by a server that was killed names a process that is gone: None then.
    """
    found = find_server(store_dir)
    if found is None or not process_alive(found.pid):
        return None
    return found
