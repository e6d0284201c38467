"""Snapshots between a folder of this machine and the collection of a running ``anyshot serve``.

The server never reads or writes a path a client names. An export pages through
``GET /export/points`` (one Parquet shard per page, checked here as it arrives, like any shard
read from a snapshot) and takes the carried documents (concepts) from ``GET /export/documents``.
A load reads the local snapshot with the checks of a local load (:func:`indexer.transfer.
check_shard`, :func:`indexer.snapshot_documents.read_documents`), so that its report names the
same shards, rows and reasons; the good rows go to ``POST /load`` in shards small enough for the
server's upload limit, and the good concepts to ``POST /load/documents``. The server checks
everything again.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from indexer.disk_space import DEFAULT_RESERVE_MB, MIB, check_free_space
from indexer.errors import ParquetError, StoreError
from indexer.parquet_store import (
    ParquetBatch,
    ParquetShardWriter,
    ShardError,
    list_shards,
    read_shard,
)
from indexer.progress import ProgressCallback
from indexer.schema import ModelIdentity
from indexer.snapshot_documents import (
    CONCEPTS_DOCUMENT,
    CONCEPTS_FORMAT,
    DOCUMENTS_FILE,
    FORMAT_VERSION,
    read_documents,
)
from indexer.transfer import REJECTED_SAMPLES, LoadReport, check_shard
from indexer.trusted_roots import root_of
from search.messages import (
    NEXT_AFTER_HEADER,
    PARQUET_MEDIA_TYPE,
    SHARD_CHECKSUM_HEADER,
    TOTAL_POINTS_HEADER,
    LoadReportBody,
    SnapshotDocumentsBody,
)

if TYPE_CHECKING:
    from search.remote_client import RemoteImageSearch

EXPORT_PAGE_POINTS = 10_000
"""Points asked for per page of an export (the server's most): one shard each, as a local
export writes them."""
UPLOAD_TARGET_BYTES = 4 * MIB
"""About how large a shard sent to ``POST /load`` is at first (well under the default upload
limit of 20 MB); a server that refuses it as too large gets shards half as large."""
CUT_OFF = (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError)
"""How a server that refuses a body unread may end the upload of it."""


# -- export ---------------------------------------------------------------------------------------


def export_from_server(
    client: RemoteImageSearch,
    folder: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    page_points: int = EXPORT_PAGE_POINTS,
) -> int:
    """Write the server's collection as a snapshot into ``folder`` (see the module).

    Returns:
        The number of points written.

    Raises:
        StoreNotFoundError: The server's store holds no collection.
        ParquetError: The folder already holds a snapshot or cannot be written, or a shard
            arrived damaged (nothing half-written is left).
    """
    target = Path(folder)
    pages = export_pages(client, page_points)
    first = next(pages, None)  # the server says first whether it has a collection at all
    if list_shards(target) or os.path.lexists(target / DOCUMENTS_FILE):
        raise ParquetError(f"{folder} already holds Parquet shards: export into an empty folder")
    written = 0
    stamp = time.time_ns()
    for number, page in enumerate(_chained(first, pages)):
        written += save_shard(
            target, page.data, page.checksum, order=stamp + number, origin=client.url
        )
        if progress is not None:
            progress(written, max(page.total, written))
    documents = SnapshotDocumentsBody.model_validate(client.send_json("GET", "/export/documents"))
    if documents.documents:
        write_documents_file(target, documents.model_dump())
    return written


@dataclass(frozen=True)
class ExportPage:
    """One page of ``GET /export/points``: a shard's bytes, the checksum the server says it
    carries, and the points of the whole collection."""

    data: bytes
    checksum: str | None
    total: int


def export_pages(client: RemoteImageSearch, page_points: int) -> Iterator[ExportPage]:
    """The shards of ``GET /export/points``, page after page, until the server says the last.

    Raises:
        StoreNotFoundError: The server's store holds no collection (at the first page).
    """
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": page_points}
        if after is not None:
            params["after"] = after
        reply = client.send("GET", "/export/points", params=params, long=True)
        if reply.status_code == 204 or not reply.content:
            return
        total = reply.headers.get(TOTAL_POINTS_HEADER, "0")
        yield ExportPage(
            reply.content,
            reply.headers.get(SHARD_CHECKSUM_HEADER),
            int(total) if total.isdigit() else 0,
        )
        after = reply.headers.get(NEXT_AFTER_HEADER)
        if not after:
            return


def _chained(first: ExportPage | None, rest: Iterator[ExportPage]) -> Iterator[ExportPage]:
    if first is not None:
        yield first
        yield from rest


def save_shard(folder: Path, data: bytes, checksum: str | None, *, order: int, origin: str) -> int:
    """Write one shard that came over HTTP, checked as a shard of any snapshot is.

    Args:
        folder: The snapshot folder (created if missing).
        data: The shard's bytes.
        checksum: The checksum the server sent with it, if any: it must be the shard's own.
        order: A number that orders the shard's name after those written before it.
        origin: The server's URL, for messages.

    Returns:
        The shard's number of points.

    Raises:
        ParquetError: The shard is damaged, or the folder cannot be written.
    """
    name = f"part-{order:020d}-{secrets.token_hex(3)}.parquet"
    tmp = folder / f".{name}.tmp"
    check_free_space(
        folder,
        len(data) + MIB,
        reserve=DEFAULT_RESERVE_MB * MIB,
        what=f"write a Parquet shard of {len(data)} bytes",
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        shard = read_shard(tmp)
        if checksum is not None and shard.checksum != checksum:
            raise ShardError(tmp, "checksum mismatch: the shard changed on its way")
        os.replace(tmp, folder / name)
    except ShardError as exc:
        tmp.unlink(missing_ok=True)
        raise ParquetError(f"a shard from {origin} arrived damaged: {exc.reason}") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ParquetError(f"cannot write a Parquet shard in {folder}: {exc}") from exc
    return len(shard.ids)


def write_documents_file(folder: Path, documents: dict[str, Any]) -> None:
    """Write a snapshot's ``documents.json`` as a local export writes it."""
    path = folder / DOCUMENTS_FILE
    tmp = path.with_name(f".{DOCUMENTS_FILE}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(documents), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ParquetError(f"cannot write {DOCUMENTS_FILE} in {folder}: {exc}") from exc


# -- load -----------------------------------------------------------------------------------------


def load_into_server(
    client: RemoteImageSearch,
    folder: str | os.PathLike[str],
    *,
    trust: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Load a local snapshot folder into the server's collection (see the module).

    Returns:
        What was loaded, rejected and skipped: the report a local load gives.

    Raises:
        ParquetError: The folder holds no shards, or the server takes not even one row.
        ConfigError: A ``trust`` entry is neither a folder nor an http(s) origin, or lies
            outside the folders the server may read.
        StoreReadOnlyError: The server's store may not be written.
    """
    roots = [root_of(entry) for entry in trust]  # refuse a bad entry before sending anything
    shards = list_shards(folder)
    if not shards:
        raise ParquetError(f"{folder}: no Parquet shards (part-*.parquet) to load")
    report = LoadReport(shards=len(shards))
    model = model_of(client.info().model)
    with ShardUploader(client, roots, report) as uploader:
        for done, path in enumerate(shards):
            if progress and done:
                progress(done, len(shards))
            checked = check_shard(path, model, report)
            if checked is None:
                continue
            shard, kept = checked
            model = model or shard.model
            uploader.upload(shard, kept)
        if progress:
            progress(len(shards), len(shards))
        documents = read_documents(folder, model)
        report.rejected_documents = documents.rejected
        if documents.concepts and model is not None:
            uploader.upload_concepts(documents.concepts, model)
    if not uploader.answered:
        report.points = client.info().points
    return report


def model_of(data: dict[str, Any] | None) -> ModelIdentity | None:
    """The model of an info reply (None: the collection is empty)."""
    return ModelIdentity.from_dict(data) if data else None


class ShardUploader:
    """Sends checked rows to ``POST /load`` in shards the server takes, and adds what it says
    to the report.

    Args:
        client: The server's client.
        trust: Roots (already checked here) the server is to serve the loaded images from.
        report: The report of the whole load.
    """

    def __init__(self, client: RemoteImageSearch, trust: list[str], report: LoadReport) -> None:
        self.client = client
        self.trust = trust
        self.report = report
        self.answered = False
        self._rows: int | None = None
        self._scratch = tempfile.TemporaryDirectory(prefix="anyshot-upload-")

    def __enter__(self) -> ShardUploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._scratch.cleanup()

    def upload(self, shard: ParquetBatch, kept: list[int]) -> None:
        """Send the kept rows of one local shard, in as many shards as the upload limit needs.

        Raises:
            ParquetError: The server refuses even a single row as too large.
        """
        if self._rows is None:
            self._rows = max(1, UPLOAD_TARGET_BYTES // (shard.model.dim * 4 + 1024))
        start = 0
        while start < len(kept):
            rows = kept[start : start + self._rows]
            reply = self._post(encode_rows(shard, rows, Path(self._scratch.name)))
            if reply is None:  # too large for the server: halve, and keep the smaller size
                if len(rows) == 1:
                    raise ParquetError(
                        f"the anyshot server at {self.client.url} refuses a shard of one row as "
                        "too large (its api.max_upload_bytes)"
                    )
                self._rows = max(1, len(rows) // 2)
                continue
            self._take(LoadReportBody.model_validate(reply.json()), shard, rows)
            start += len(rows)

    def upload_concepts(self, concepts: list[dict[str, Any]], model: ModelIdentity) -> None:
        """Send the checked concepts of the snapshot (``POST /load/documents``) as its
        documents file holds them; the server checks them again."""
        content = SnapshotDocumentsBody(
            format=FORMAT_VERSION,
            model=model.to_dict(),
            documents={CONCEPTS_DOCUMENT: {"format": CONCEPTS_FORMAT, "concepts": concepts}},
        )
        body = LoadReportBody.model_validate(
            self.client.send_json("POST", "/load/documents", json=content.model_dump(), long=True)
        )
        answer = body.model_dump()
        self.report.concepts += list(answer.get("concepts") or [])
        self.report.rejected_documents += list(answer.get("rejected_documents") or [])
        self._note_store(answer)

    def _post(self, data: bytes) -> httpx.Response | None:
        """POST one shard; None when the server refuses it as too large.

        A server refuses a body over its limit before reading it, and may close the
        connection while the body is still being sent: that counts as too large too.
        """
        try:
            reply = self.client.send(
                "POST",
                "/load",
                content=data,
                params=[("trust", root) for root in self.trust],
                headers={"Content-Type": PARQUET_MEDIA_TYPE},
                long=True,
                allow=(413,),
            )
        except StoreError as exc:
            if isinstance(exc.__cause__, CUT_OFF):
                return None
            raise
        return None if reply.status_code == 413 else reply

    def _take(self, body: LoadReportBody, shard: ParquetBatch, rows: list[int]) -> None:
        """Add the server's report of one uploaded shard (rows renumbered as the local
        shard's)."""
        answer = body.model_dump()
        report = self.report
        report.loaded += body.loaded
        report.rejected += body.rejected
        for bad in body.bad_shards:
            report.bad_shards.append({"path": str(shard.path), "reason": str(bad.get("reason"))})
        for row in answer.get("rejected_rows") or []:
            if len(report.rejected_rows) < REJECTED_SAMPLES:
                local_row = rows[int(row["row"])] if 0 <= int(row["row"]) < len(rows) else None
                report.rejected_rows.append(row | {"shard": str(shard.path), "row": local_row})
        self._note_store(answer)

    def _note_store(self, answer: dict[str, Any]) -> None:
        self.answered = True
        if "points" in answer:
            self.report.points = int(answer["points"])
        if answer.get("trusted"):
            self.report.trusted = [str(root) for root in answer["trusted"]]


def encode_rows(shard: ParquetBatch, rows: list[int], scratch: Path) -> bytes:
    """Some rows of a shard as the bytes of a new shard (with its checksum)."""
    writer = ParquetShardWriter(scratch, shard.model, reserve_free_mb=0)
    path = writer.write(
        [int(shard.ids[row]) for row in rows],
        np.asarray(shard.vectors[rows]),
        [shard.payloads[row] for row in rows],
    )
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
