"""Free disk space, checked before a store writes: a full disk must be one clear line, not a crash.

Qdrant Edge writes through memory-mapped files; when the file system cannot allocate a page the
process gets SIGBUS (exit 135, no message) and can leave the store half-written. So an embedded
store checks free space (``statvfs`` of its folder) before it opens, creates, or writes a batch,
and stops with :class:`~indexer.errors.DiskSpaceError` while the store is still as it was.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from indexer.config import StoreSettings
from indexer.errors import DiskSpaceError

MIB = 2**20

DEFAULT_RESERVE_MB: int = StoreSettings.model_fields["reserve_free_mb"].default
"""The default of ``store.reserve_free_mb``: MiB a write leaves free."""

OPEN_BYTES = 64 * MIB
"""What Qdrant Edge may write when it opens a shard (measured: ~56 MiB of log and segment
files on a 3000-point shard reopened on tmpfs)."""

CREATE_BYTES = 48 * MIB
"""What creating an empty shard and opening it writes (measured: 11 + 24 MiB, 512-d, with
payload indexes)."""

WRITE_OVERHEAD = 4
"""Bytes written per byte of a batch's vectors and payload: the write-ahead log, the segment,
payload indexes and the Parquet shard."""

BATCH_BYTES = 1 * MIB
"""Fixed cost of a batch, whatever its size (log headers, index pages)."""


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes an unprivileged process may still write on the file system holding ``path``.

    A path that does not exist yet is looked up through its nearest existing parent.
    """
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    stats = os.statvfs(probe)
    return stats.f_bavail * stats.f_frsize


def device_of(path: str | os.PathLike[str]) -> str:
    """The name of the device (or file system source, e.g. ``tmpfs``) holding ``path``."""
    real = os.path.realpath(os.fspath(path))
    best, source = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if " - " not in line or len(fields) < 10:
                    continue
                mount_point = _unescape(fields[4])
                after = line.split(" - ", 1)[1].split()
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best) and len(after) >= 2:
                    best, source = mount_point, after[1]
    except OSError:
        pass
    if source:
        return source
    try:
        device = os.stat(_existing(real)).st_dev
    except OSError:
        return "?"
    return f"device {os.major(device)}:{os.minor(device)}"


def check_free_space(
    path: str | os.PathLike[str], needed: int, *, reserve: int = 0, what: str = "write"
) -> None:
    """Raise :class:`DiskSpaceError` unless ``needed`` bytes fit with ``reserve`` bytes to spare.

    Args:
        path: A file or folder on the file system to check (it need not exist yet).
        needed: What the write is estimated to take, in bytes.
        reserve: Bytes that must stay free afterwards (``store.reserve_free_mb``).
        what: What the write is, for the message (``open the store``, ``store 128 images``).

    Raises:
        DiskSpaceError: Less than ``needed + reserve`` bytes are free. Its message is one
            line: ``N MB free on DEVICE (PATH), need about M MB to WHAT``.
    """
    free = free_bytes(path)
    total = needed + reserve
    if free >= total:
        return
    shown = os.path.abspath(os.fspath(path))
    reserve_note = f", {_mb(reserve)} of it kept free (store.reserve_free_mb)" if reserve else ""
    raise DiskSpaceError(
        f"{_mb(free)} free on {device_of(shown)} ({shown}), need about {_mb(total)} to "
        f"{what}{reserve_note}: free some space",
        free=free,
        needed=total,
    )


def batch_bytes(vectors: Any, payloads: Sequence[dict[str, Any]]) -> int:
    """Estimated bytes that storing a batch writes to disk (log, segment, indexes, Parquet).

    Args:
        vectors: The batch's vectors (anything with ``nbytes``, or a sequence of rows).
        payloads: The batch's payloads.
    """
    vector_bytes = int(getattr(vectors, "nbytes", 0)) or 4 * sum(len(row) for row in vectors)
    payload_bytes = sum(len(json.dumps(p, default=str, ensure_ascii=False)) for p in payloads)
    return WRITE_OVERHEAD * (vector_bytes + payload_bytes) + BATCH_BYTES


def allocated_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks, not apparent sizes:
    Qdrant Edge pre-allocates sparse files of tens of MB)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _mb(count: int) -> str:
    return f"{max(count, 0) / MIB:.0f} MB" if count >= 10 * MIB else f"{count / MIB:.1f} MB"


def _existing(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes of spaces, tabs, newlines and backslashes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
