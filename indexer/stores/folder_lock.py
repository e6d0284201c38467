"""The lock file of a store folder: one writer, or any number of readers, never both.

Qdrant Edge allows one process per shard, and a second ``EdgeShard.load`` on an open shard not
only fails but can damage its payload index; ``anyshot.lock`` (an ``flock``) turns that into a
clean :class:`StoreLockedError` before Qdrant Edge is touched. A writer holds it exclusively
and writes its pid into it; readers of a read-only store hold it shared.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from indexer.errors import StoreError, StoreLockedError

LOCK_FILE = "anyshot.lock"


def lock_for_writing(root: Path) -> int:
    """Take the folder's lock exclusively (creating folder and file as needed).

    Returns:
        The lock file's descriptor; closing it releases the lock.

    Raises:
        StoreLockedError: Another process holds the lock.
        StoreError: The folder or the lock file cannot be created or opened.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store folder {root}: {exc.strerror or exc}") from exc
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        # Another user's lock file in a folder we may write: it still locks.
        fd = _open_for_reading(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked_error(root, fd) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass  # a lock file opened for reading: it locks, without our pid in it
    return fd


def lock_for_reading(root: Path) -> int | None:
    """Take the folder's lock shared: readers exclude a writer, not each other.

    Returns:
        The lock file's descriptor, or None when there is no lock file (no writer has ever
        held this store, and none can create the file).

    Raises:
        StoreLockedError: A writer holds the lock.
        StoreError: The lock file cannot be opened.
    """
    path = root / LOCK_FILE
    if not path.is_file():
        return None
    fd = _open_for_reading(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _locked_error(root, fd) from None
    return fd


def process_alive(pid: int) -> bool:
    """True when a process with this id exists (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _open_for_reading(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc


def _locked_error(root: Path, fd: int) -> StoreLockedError:
    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
    os.close(fd)
    # Readers of a read-only store cannot write their pid: the file may name a writer that is
    # gone.
    shown = f"pid {holder}" if holder.isdigit() and process_alive(int(holder)) else "pid ?"
    return StoreLockedError(
        f"{root} is open in another process ({shown}); Qdrant Edge allows one process per "
        f"store: stop it, or query it through its HTTP API"
    )
