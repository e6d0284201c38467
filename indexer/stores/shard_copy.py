"""A private, writable copy of a shard, for stores this process may only read.

Qdrant Edge cannot open a shard whose files it may not write (measured: "Failed to open mmap
payload storage: Permission denied"), and it has no read-only mode. A store on a read-only
mount, or one whose folder belongs to someone else, is therefore searched through a copy in
the temporary folder: sparse files stay sparse (only their data is copied), and the copy is
removed when the store closes, or by the next process when this one was killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from indexer.stores.folder_lock import process_alive

COPY_PREFIX = "anyshot-readonly-"
"""Temporary folders of read-only copies are named ``anyshot-readonly-<pid>-<random>``."""

_CHUNK = 8 * 2**20


def make_copy_folder() -> Path:
    """A new private folder for a copy, named after this process (:func:`remove_stale_copies`)."""
    remove_stale_copies()
    return Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}-"))


def copy_tree(source: Path, target: Path) -> None:
    """Copy a folder of regular files, keeping holes of sparse files; the copy is writable.

    Raises:
        OSError: A file cannot be read or written.
    """
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in os.scandir(source):
        destination = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            copy_tree(Path(entry.path), destination)
        elif entry.is_file(follow_symlinks=False):
            _copy_file(entry.path, destination)


def remove_copy(folder: Path) -> None:
    """Remove a copy made by this process (best effort)."""
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_copies() -> None:
    """Remove copies left by processes that are gone (killed before they could clean up)."""
    base = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for folder in base.glob(f"{COPY_PREFIX}*"):
            pid_text = folder.name[len(COPY_PREFIX) :].split("-", 1)[0]
            if pid_text.isdigit() and not process_alive(int(pid_text)):
                shutil.rmtree(folder, ignore_errors=True)


def _copy_file(source: str, target: Path) -> None:
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(src).st_size
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            for start, end in _data_extents(src, size):
                os.lseek(src, start, os.SEEK_SET)
                os.lseek(dst, start, os.SEEK_SET)
                remaining = end - start
                while remaining > 0:
                    chunk = os.read(src, min(_CHUNK, remaining))
                    if not chunk:
                        break
                    os.write(dst, chunk)
                    remaining -= len(chunk)
            os.ftruncate(dst, size)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of the parts of a file that hold data; the whole file where the file
    system cannot tell holes apart."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    extents: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after offset
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    except OSError:
        return [(0, size)]
    return extents
