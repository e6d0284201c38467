"""Find images: walk a folder, read a list of paths and URLs, or take a single file.

Discovery never fails on one bad entry: unreadable folders, symlink loops, broken links, special
files (FIFOs, sockets, devices) with image names and list entries that may not be read are logged
and passed to an ``on_problem`` callback as :class:`DiscoveryProblem`, and the walk goes on. Only a
source that cannot be used at all raises :class:`~indexer.errors.SourceError`, and it does so when
the function is called, before the first record.

An :class:`~indexer.access.AccessPolicy` with ``roots`` confines discovery: the source, every link
met in a walk (after resolving it) and every entry of a list must lie under one of the roots, and
URLs in a list are reported, not yielded, when the policy does not fetch URLs. Records carry the
lossless URI of their path (:func:`~indexer.schema.path_uri`), so names that are not UTF-8 work.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import logging
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, BinaryIO

from indexer.access import AccessPolicy, file_kind, open_regular_file
from indexer.errors import ImageDecodeError, SourceError
from indexer.formats import is_indexed_name
from indexer.schema import ImageRecord, path_uri, uri_path

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

LIST_COLUMNS = ("uri", "path", "url", "filepath")
"""Columns of a Parquet list that may hold the images, in order of preference."""

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SNIFF_BYTES = 64 * 1024
_by_name = attrgetter("name")


@dataclass(frozen=True, slots=True)
class DiscoveryProblem:
    """A folder, link or file that discovery had to skip.

    Attributes:
        path: The path as discovery saw it (not resolved), as a lossless URI
            (:func:`~indexer.schema.path_uri`: itself unless it is not UTF-8), or a list's
            entry as written.
        reason: A short reason, e.g. ``"symlink loop"``, ``"broken symlink"``.
        folder: True when the entry is (or leads to) a folder rather than one image file.
    """

    path: str
    reason: str
    folder: bool = False


ProblemHandler = Callable[[DiscoveryProblem], None]
StrPath = str | os.PathLike[str]


def discover(
    source: StrPath,
    *,
    include_hidden: bool = False,
    follow_symlinks: bool = True,
    on_problem: ProblemHandler | None = None,
    access: AccessPolicy | None = None,
) -> Iterator[ImageRecord]:
    """Find the images of a source: a folder, a list file or a single image.

    A folder is walked by :func:`discover_images`; a ``.parquet`` file or any other file that is
    not an image is read by :func:`read_image_list`; an image file gives itself.

    Args:
        source: Folder, list file (text or Parquet) or image file.
        include_hidden: Walk hidden files and folders too (names starting with ``.``).
        follow_symlinks: Follow symbolic links while walking a folder.
        on_problem: Called with each entry that had to be skipped.
        access: What may be read; None reads anything (a person indexing their own files).

    Returns:
        An iterator of records, in a deterministic order.

    Raises:
        SourceError: At once, if the source does not exist, cannot be read or lies outside
            ``access.roots``.
    """
    path = os.path.abspath(os.fspath(source))
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise SourceError(f"{source}: no such file or folder") from exc
    except OSError as exc:
        raise SourceError(f"{source}: {_why(exc)}") from exc
    if stat.S_ISDIR(info.st_mode):
        return discover_images(
            path,
            include_hidden=include_hidden,
            follow_symlinks=follow_symlinks,
            on_problem=on_problem,
            access=access,
        )
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"{source}: not a folder, an image or a list of images")
    if is_indexed_name(os.path.basename(path)):
        _check_source_within(path, source, access)
        return iter((ImageRecord(path_uri(path), info.st_size, info.st_mtime),))
    return read_image_list(path, on_problem=on_problem, access=access)


def discover_images(
    root: StrPath,
    *,
    include_hidden: bool = False,
    follow_symlinks: bool = True,
    on_problem: ProblemHandler | None = None,
    access: AccessPolicy | None = None,
) -> Iterator[ImageRecord]:
    """Walk a folder recursively and yield its image files.

    Entries are visited in name order, depth first, so the order is deterministic. Each real
    folder is walked once: a link to a folder already walked is skipped, and a link back to a
    folder being walked is reported as a loop. URIs are absolute but not resolved, i.e. they
    keep the links the user sees. Files with image names that are not regular files (FIFOs,
    sockets, devices) are reported, never yielded.

    Args:
        root: The folder to walk.
        include_hidden: Walk hidden files and folders too (names starting with ``.``).
        follow_symlinks: Follow links to folders and files; if false, links are ignored.
        on_problem: Called with each folder, link or file that had to be skipped (also logged).
        access: With ``roots``, links that resolve outside them are reported, not followed.

    Returns:
        An iterator of records with size and modification time from the file system.

    Raises:
        SourceError: At once, if ``root`` is not a folder, cannot be listed or lies outside
            ``access.roots``.
    """
    top = os.path.abspath(os.fspath(root))
    try:
        info = os.stat(top)
        if not stat.S_ISDIR(info.st_mode):
            raise SourceError(f"{root}: not a folder")
        _check_source_within(top, root, access)
        entries = _list_folder(top)
    except FileNotFoundError as exc:
        raise SourceError(f"{root}: no such file or folder") from exc
    except OSError as exc:
        raise SourceError(f"{root}: cannot read folder: {_why(exc)}") from exc
    walk = _Walk(include_hidden, follow_symlinks, on_problem, access)
    return walk.records(entries, (info.st_dev, info.st_ino))


def read_image_list(
    path: StrPath,
    *,
    on_problem: ProblemHandler | None = None,
    access: AccessPolicy | None = None,
) -> Iterator[ImageRecord]:
    """Read a list of images from a text or Parquet file.

    A text list has one local path or http(s) URL per line; blank lines and lines starting with
    ``#`` are ignored. A Parquet list (``.parquet``) has a column named ``uri``, ``path``,
    ``url`` or ``filepath`` (the first of these present). In both, relative paths are relative
    to the list's folder. Local files get size and time from the file system; URLs get
    ``size=-1, mtime=0.0``. Entries that cannot be indexed are reported and left out: missing
    files, folders, special files, ``file://`` URLs of other hosts, unsupported schemes, and
    under ``access``, paths outside its roots and URLs it does not fetch.

    Args:
        path: The list file (a regular file; under ``access.roots`` when given).
        on_problem: Called with each entry that is left out.
        access: What may be read; None reads anything.

    Returns:
        An iterator of records, in the list's order.

    Raises:
        SourceError: At once, if the list cannot be read, is not a regular file, lies outside
            ``access.roots``, is not UTF-8 text or has no usable column; later, if it turns out
            to be unreadable part way.
    """
    list_path = os.path.abspath(os.fspath(path))
    stack, file = _open_list(list_path, path, access)
    try:
        if list_path.lower().endswith(".parquet"):
            column = _parquet_column(file, path)
            entries = _parquet_entries(file, path, column)
        else:
            _check_text(file, path)
            entries = _text_entries(file, path)
    except BaseException:
        stack.close()
        raise
    return _list_records(_closing(entries, stack), os.path.dirname(list_path), on_problem, access)


class _Walk:
    """One walk of a folder tree: its options, and the folders met so far."""

    def __init__(
        self,
        include_hidden: bool,
        follow_symlinks: bool,
        on_problem: ProblemHandler | None,
        access: AccessPolicy | None,
    ) -> None:
        self.include_hidden = include_hidden
        self.follow_symlinks = follow_symlinks
        self.on_problem = on_problem
        self.roots = access.roots if access is not None else None

    def records(
        self, top_entries: list[os.DirEntry[str]], top_key: tuple[int, int]
    ) -> Iterator[ImageRecord]:
        # An explicit stack rather than recursion: deep trees cannot hit the recursion limit.
        stack: list[tuple[Iterator[os.DirEntry[str]], tuple[int, int]]] = [
            (iter(top_entries), top_key)
        ]
        walking = {top_key}  # folders on the current path: meeting one again is a loop
        walked = {top_key}  # every folder entered: meeting one again is an alias
        report = self.report
        while stack:
            entries, key = stack[-1]
            for entry in entries:
                name = entry.name
                if not self.include_hidden and name.startswith("."):
                    continue
                is_link = entry.is_symlink()  # from d_type: no system call on most file systems
                if is_link and not self.follow_symlinks:
                    continue
                is_image = is_indexed_name(name)
                if not (is_image or is_link or entry.is_dir(follow_symlinks=False)):
                    continue  # other files are skipped without a stat
                try:
                    info = entry.stat()  # the one stat per entry; follows links
                except OSError as exc:
                    report(entry.path, _stat_reason(exc, is_link), folder=not is_image)
                    continue
                is_folder = stat.S_ISDIR(info.st_mode)
                if is_link and self.roots is not None:
                    refusal = AccessPolicy(roots=self.roots).path_refusal(
                        os.path.realpath(entry.path)
                    )
                    if refusal is not None:
                        report(entry.path, f"symlink {refusal}", folder=is_folder)
                        continue
                if stat.S_ISREG(info.st_mode):
                    if is_image:
                        yield ImageRecord(path_uri(entry.path), info.st_size, info.st_mtime)
                    continue
                if not is_folder:
                    if is_image:
                        report(entry.path, f"not a regular file ({file_kind(info.st_mode)})")
                    continue
                folder_key = (info.st_dev, info.st_ino)
                if folder_key in walking:
                    reason = "symlink loop" if is_link else "folder loop"
                    report(entry.path, reason, folder=True)
                    continue
                if folder_key in walked:
                    logger.debug("%s: already walked through another link, skipped", entry.path)
                    continue
                walked.add(folder_key)
                try:
                    children = _list_folder(entry.path)
                except OSError as exc:
                    report(entry.path, f"cannot read folder: {_why(exc)}", folder=True)
                    continue
                # Descend now; this folder's iterator stays on the stack and resumes afterwards.
                stack.append((iter(children), folder_key))
                walking.add(folder_key)
                break
            else:
                stack.pop()
                walking.discard(key)

    def report(self, path: str, reason: str, *, folder: bool = False) -> None:
        _report(self.on_problem, path_uri(path), reason, folder=folder)


def _check_source_within(path: str, shown: StrPath, access: AccessPolicy | None) -> None:
    if access is None or access.roots is None:
        return
    refusal = access.path_refusal(os.path.realpath(path))
    if refusal is not None:
        raise SourceError(f"{shown}: {refusal}")


def _list_folder(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return sorted(entries, key=_by_name)


def _stat_reason(exc: OSError, is_link: bool) -> str:
    if is_link and exc.errno == errno.ENOENT:
        return "broken symlink"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return f"cannot stat: {_why(exc)}"


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _report(
    on_problem: ProblemHandler | None, path: str, reason: str, *, folder: bool = False
) -> None:
    logger.warning("skipped %s: %s", path, reason)
    if on_problem is not None:
        on_problem(DiscoveryProblem(path, reason, folder))


# -- list files -----------------------------------------------------------------------------------


def _open_list(
    list_path: str, shown: StrPath, access: AccessPolicy | None
) -> tuple[contextlib.ExitStack, BinaryIO]:
    """Open a list file at once: a regular file only (a FIFO cannot hang us), within roots."""
    stack = contextlib.ExitStack()
    roots = access.roots if access is not None else None
    try:
        file, _ = stack.enter_context(open_regular_file(list_path, roots=roots, shown=str(shown)))
    except ImageDecodeError as exc:
        reason = "no such file or folder" if exc.reason == "no such file" else exc.reason
        raise SourceError(f"{shown}: {reason}") from exc
    return stack, file


def _closing(entries: Iterator[str], stack: contextlib.ExitStack) -> Iterator[str]:
    with stack:
        yield from entries


def _check_text(file: BinaryIO, shown: StrPath) -> None:
    """Fail early on a list that is plainly not UTF-8 text."""
    try:
        head = file.read(_SNIFF_BYTES)
        file.seek(0)
    except OSError as exc:
        raise SourceError(f"{shown}: {_why(exc)}") from exc
    try:
        if b"\0" in head:
            raise ValueError("NUL byte")
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise SourceError(f"{shown}: not a text list of images (not UTF-8 text)") from exc


def _text_entries(file: BinaryIO, shown: StrPath) -> Iterator[str]:
    try:
        lines = io.TextIOWrapper(file, encoding="utf-8-sig")
        for line in lines:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                yield entry
    except UnicodeDecodeError as exc:
        raise SourceError(f"{shown}: not a text list of images (not UTF-8 text)") from exc
    except OSError as exc:
        raise SourceError(f"{shown}: {_why(exc)}") from exc


def _parquet_column(file: BinaryIO, shown: StrPath) -> str:
    # pyarrow is imported here, not at the top: it is slow to import and only lists need it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
        file.seek(0)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{shown}: not a readable Parquet file ({exc})") from exc
    for name in LIST_COLUMNS:
        if name in schema.names:
            if not _is_text_type(schema.field(name).type):
                raise SourceError(f"{shown}: column {name!r} does not hold text")
            return name
    raise SourceError(f"{shown}: no column named {', '.join(LIST_COLUMNS)}")


def _is_text_type(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    if isinstance(data_type, pa.DictionaryType):
        data_type = data_type.value_type
    return str(data_type) in ("string", "large_string", "string_view")


def _parquet_entries(file: BinaryIO, shown: StrPath, column: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(file) as parquet:
            for batch in parquet.iter_batches(columns=[column], batch_size=65_536):
                for value in batch.column(0).to_pylist():
                    if value:
                        yield value
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{shown}: cannot read Parquet file ({exc})") from exc


def _list_records(
    entries: Iterable[str],
    base: str,
    on_problem: ProblemHandler | None,
    access: AccessPolicy | None,
) -> Iterator[ImageRecord]:
    roots = access.roots if access is not None else None
    for entry in entries:
        match = _URL_SCHEME.match(entry)
        if match is not None:
            scheme = match.group(1).lower()
            if scheme in ("http", "https"):
                refusal = access.url_refusal(entry) if access is not None else None
                if refusal is not None:
                    _report(on_problem, entry, refusal)
                    continue
                yield ImageRecord(entry)
                continue
            if scheme != "file":
                _report(on_problem, entry, f"unsupported URL scheme {scheme!r}")
                continue
            local = uri_path(entry)
            if local is None:  # file://otherhost/...: never read as a local file
                host = urllib.parse.urlsplit(entry).netloc
                _report(on_problem, entry, f"not a local file URL (host {host!r})")
                continue
            entry = local
        path = os.path.abspath(os.path.join(base, os.path.expanduser(entry)))
        shown = path_uri(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            reason = "no such file" if exc.errno == errno.ENOENT else f"cannot stat: {_why(exc)}"
            _report(on_problem, shown, reason)
            continue
        if stat.S_ISDIR(info.st_mode):
            _report(on_problem, shown, "a folder, not an image", folder=True)
            continue
        if not stat.S_ISREG(info.st_mode):
            _report(on_problem, shown, f"not a regular file ({file_kind(info.st_mode)})")
            continue
        if roots is not None:
            refusal = AccessPolicy(roots=roots).path_refusal(os.path.realpath(path))
            if refusal is not None:
                _report(on_problem, shown, refusal)
                continue
        yield ImageRecord(shown, info.st_size, info.st_mtime)
