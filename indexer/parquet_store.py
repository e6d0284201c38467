"""Parquet shards of embeddings plus payload: a collection that any store can be rebuilt from.

One schema (:func:`parquet_schema`), written once. Each shard is one file named
``part-<time>-<random>.parquet`` so that several writers never collide and sorting the names
gives the order of writing; later shards win when the same id appears twice. The model that
made the embeddings is recorded in each file's schema metadata.

Shards carry their own integrity checks: Parquet page checksums (CRC32 of every page, checked
on reading) and, in the schema metadata, a SHA-256 over their ids, vectors and payloads
(:func:`shard_checksum`). :func:`read_shard` refuses a shard that fails either, that is not a
regular file, that is not anyshot's schema, or that would unpack to more than
:data:`MAX_SHARD_BYTES`. Shards of older versions have no checksum and are read without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from indexer.access import open_regular_file
from indexer.disk_space import DEFAULT_RESERVE_MB, MIB, check_free_space
from indexer.errors import ImageDecodeError, ModelMismatchError, ParquetError
from indexer.schema import (
    METADATA_FILTER_TWINS,
    METADATA_KEYS,
    OCR_KEYS,
    VIDEO_KEYS,
    ModelIdentity,
)

SHARD_GLOB = "part-*.parquet"
MODEL_METADATA_KEY = b"anyshot.model"
FORMAT_METADATA_KEY = b"anyshot.format"
CHECKSUM_METADATA_KEY = b"anyshot.checksum"
FORMAT_VERSION = b"1"
CHECKSUM_PREFIX = "sha256:"
MAX_SHARD_BYTES = 2 * 2**30
"""A shard that would take more than this in memory (uncompressed) is refused unread."""


class ShardError(ParquetError):
    """A Parquet shard that cannot be used: unreadable, damaged, foreign or of another schema.

    Attributes:
        path: The shard's path.
        reason: Why, in a few words (``checksum mismatch: ...``).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def parquet_schema(identity: ModelIdentity) -> pa.Schema:
    """Return the Arrow schema of a shard holding embeddings of ``identity``'s model."""
    fields = [
        pa.field("id", pa.uint64(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("sha256", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("tag_scores", pa.map_(pa.string(), pa.float64())),
        pa.field(EXTRA_COLUMN, pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), identity.dim), nullable=False),
    ]
    metadata = {
        MODEL_METADATA_KEY: json.dumps(identity.to_dict()).encode(),
        FORMAT_METADATA_KEY: FORMAT_VERSION,
    }
    return pa.schema(fields, metadata=metadata)


PAYLOAD_COLUMNS = (
    "uri",
    "size",
    "mtime",
    "sha256",
    "width",
    "height",
    "format",
    "tags",
    "tag_scores",
)
"""Payload keys with a column; ``tag_scores`` (label → probability, from ``anyshot tag``) is a
map column, missing from shards of older versions."""
MAP_COLUMNS = ("tag_scores",)
EXTRA_COLUMN = "extra"
"""A JSON object of the payload keys without a column of their own (:data:`EXTRA_KEYS`), or
null; missing from shards of older versions."""
EXTRA_KEYS = (*METADATA_KEYS, *METADATA_FILTER_TWINS, *OCR_KEYS, *VIDEO_KEYS)
"""Payload keys kept in the ``extra`` column: a photo's metadata and place, the text read in
it, a video frame's time and video. Other keys are not written (and a shard that has them is
refused row by row on loading: :mod:`indexer.shard_checks`)."""
CHECKED_COLUMNS = (*PAYLOAD_COLUMNS, EXTRA_COLUMN)
"""Payload columns that the shard checksum covers (those present)."""


@dataclass(frozen=True)
class ParquetBatch:
    """The rows of one shard.

    Attributes:
        checksum: The shard's verified checksum; None for a shard of an older version, which
            has none.
    """

    path: Path
    model: ModelIdentity
    ids: np.ndarray
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    checksum: str | None = None


def shard_checksum(table: pa.Table) -> str:
    """SHA-256 over a shard's ids, vectors and payload columns, as ``sha256:<hex>``.

    Computed from the values (not the file's bytes), so that it is the same whether computed
    on the table about to be written or on the table read back.
    """
    digest = hashlib.sha256()
    ids = pc.fill_null(table.column("id").combine_chunks(), 0)
    digest.update(b"id")
    digest.update(ids.to_numpy(zero_copy_only=False).astype("<u8").tobytes())
    digest.update(b"embedding")
    digest.update(_embedding_values(table).astype("<f4").tobytes())
    columns = [name for name in CHECKED_COLUMNS if name in table.column_names]
    payload = json.dumps(
        table.select(columns).to_pylist(), sort_keys=True, separators=(",", ":"), default=str
    )
    digest.update(b"payload")
    digest.update(payload.encode("utf-8", "surrogatepass"))
    return CHECKSUM_PREFIX + digest.hexdigest()


def _embedding_values(table: pa.Table) -> np.ndarray:
    """The vectors of a table's fixed-size-list ``embedding`` column, as a (rows, dim) array;
    a null vector is all NaN."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    rows = len(column)
    values = column.values.slice(column.offset * dim, rows * dim)
    vectors = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
    vectors = vectors.reshape(rows, dim) if dim else np.zeros((rows, 0), dtype=np.float32)
    if column.null_count:
        vectors = vectors.copy()
        vectors[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return vectors


class ParquetShardWriter:
    """Writes batches of embeddings as Parquet shards into one folder.

    Args:
        folder: Where shards go; created if missing.
        identity: The model that made the embeddings.
        reserve_free_mb: Disk space (MiB) each write leaves free, else it stops with
            :class:`DiskSpaceError` (``store.reserve_free_mb``; its default if not given).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        identity: ModelIdentity,
        *,
        reserve_free_mb: int = DEFAULT_RESERVE_MB,
    ) -> None:
        self.folder = Path(folder)
        self.identity = identity
        self.schema = parquet_schema(identity)
        self.reserve_bytes = reserve_free_mb * MIB

    def write(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> Path:
        """Write one shard atomically (temporary file, then rename).

        The shard carries Parquet page checksums and, in its metadata, a checksum of its
        values (:func:`shard_checksum`).

        Returns:
            The shard's path.

        Raises:
            ParquetError: The folder cannot be written, or the vectors have the wrong size.
            DiskSpaceError: The shard would not fit on the disk (with the reserve).
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.identity.dim:
            raise ParquetError(
                f"vectors of shape {vectors.shape} do not match dimension {self.identity.dim}"
            )
        columns: dict[str, Any] = {"id": pa.array(np.asarray(ids, dtype=np.uint64))}
        for name in PAYLOAD_COLUMNS:
            columns[name] = [payload.get(name) for payload in payloads]
        try:
            columns[EXTRA_COLUMN] = [_extra_json(payload) for payload in payloads]
        except (TypeError, ValueError) as exc:  # NaN, or a value JSON has no form for
            raise ParquetError(f"cannot write a Parquet shard in {self.folder}: {exc}") from exc
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1)), self.identity.dim
        )
        try:
            table = pa.Table.from_pydict(columns, schema=self.schema)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise ParquetError(f"cannot write a Parquet shard in {self.folder}: {exc}") from exc
        metadata = dict(self.schema.metadata) | {
            CHECKSUM_METADATA_KEY: shard_checksum(table).encode()
        }
        table = table.replace_schema_metadata(metadata)
        check_free_space(
            self.folder,
            table.nbytes + MIB,
            reserve=self.reserve_bytes,
            what=f"write a Parquet shard of {len(vectors)} images",
        )
        name = f"part-{time.time_ns():020d}-{secrets.token_hex(3)}.parquet"
        tmp = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
            os.replace(tmp, self.folder / name)
        except (OSError, pa.ArrowException) as exc:
            tmp.unlink(missing_ok=True)  # no half-written shard left behind (a full disk)
            raise ParquetError(f"cannot write a Parquet shard in {self.folder}: {exc}") from exc
        return self.folder / name


def list_shards(folder: str | os.PathLike[str]) -> list[Path]:
    """Return the shard files of a folder in the order they were written."""
    return sorted(Path(folder).glob(SHARD_GLOB))


def read_shard(path: str | os.PathLike[str], *, max_bytes: int = MAX_SHARD_BYTES) -> ParquetBatch:
    """Read one shard and check its integrity (not its rows: see :mod:`indexer.shard_checks`).

    Args:
        path: A shard written by :class:`ParquetShardWriter` (or by anyone: it is checked).
        max_bytes: Refuse shards that would take more memory than this, uncompressed.

    Raises:
        ShardError: Not a regular file, unreadable or truncated, a page or shard checksum that
            does not match, no anyshot metadata, columns of another schema, or too large.
    """
    try:
        with open_regular_file(os.fspath(path)) as (file, _):
            parquet = pq.ParquetFile(file, page_checksum_verification=True)
            metadata = parquet.metadata
            unpacked = sum(
                metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
            )
            if unpacked > max_bytes:
                raise ShardError(path, f"too large: {unpacked} bytes uncompressed")
            table = parquet.read()
    except ImageDecodeError as exc:
        raise ShardError(path, exc.reason) from exc
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise ShardError(path, f"unreadable Parquet shard: {_one_line(exc)}") from exc
    raw = table.schema.metadata or {}
    if MODEL_METADATA_KEY not in raw:
        raise ShardError(path, "not an anyshot shard (no model metadata)")
    try:
        model = ModelIdentity.from_dict(json.loads(raw[MODEL_METADATA_KEY]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(path, f"unreadable model metadata: {_one_line(exc)}") from exc
    _check_columns(path, table, model)
    checksum = raw.get(CHECKSUM_METADATA_KEY)
    if checksum is not None:
        checksum = checksum.decode(errors="replace")
        actual = shard_checksum(table)
        if checksum != actual:
            raise ShardError(
                path, "checksum mismatch: the shard was changed or damaged after it was written"
            )
    ids = pc.fill_null(table.column("id").combine_chunks(), 0)
    present = [name for name in CHECKED_COLUMNS if name in table.column_names]
    payloads = []
    for row, values in enumerate(table.select(present).to_pylist()):
        try:
            payloads.append(_payload(values))
        except ValueError as exc:
            raise ShardError(path, f"row {row}: {exc}") from None
    return ParquetBatch(
        path=Path(path),
        model=model,
        ids=ids.to_numpy(zero_copy_only=False).astype(np.uint64),
        vectors=_embedding_values(table),
        payloads=payloads,
        checksum=checksum,
    )


def _extra_json(payload: dict[str, Any]) -> str | None:
    extra = {key: payload[key] for key in EXTRA_KEYS if payload.get(key) is not None}
    if not extra:
        return None
    return json.dumps(extra, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    """A row's payload: no empty values, map columns (read as key-value pairs) as dicts, the
    ``extra`` column's keys beside the columns' (a column wins over an ``extra`` key).

    Raises:
        ValueError: ``extra`` is not a JSON object (or nests too deep to read).
    """
    extra_text = row.pop(EXTRA_COLUMN, None)
    payload = {k: v for k, v in row.items() if v is not None}
    for name in MAP_COLUMNS:
        if name in payload:
            payload[name] = dict(payload[name])
    if extra_text is None:
        return payload
    try:
        extra = json.loads(extra_text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the extra column is not JSON: {_one_line(exc)[:100]}") from None
    if not isinstance(extra, dict):
        raise ValueError("the extra column is not a JSON object")
    return {k: v for k, v in extra.items() if v is not None and k not in row} | payload


def _check_columns(path: str | os.PathLike[str], table: pa.Table, model: ModelIdentity) -> None:
    """Refuse a table whose columns are not anyshot's (payload columns may be missing)."""
    expected = parquet_schema(model)
    for name in ("id", "uri", "embedding"):
        if name not in table.column_names:
            raise ShardError(path, f"not an anyshot shard (no {name!r} column)")
    embedding = table.schema.field("embedding").type
    if not pa.types.is_fixed_size_list(embedding) or not pa.types.is_floating(embedding.value_type):
        raise ShardError(path, f"embedding column is {embedding}, not fixed-size float vectors")
    if embedding.list_size != model.dim:
        raise ShardError(
            path,
            f"vectors of dimension {embedding.list_size}, but the shard's model "
            f"{model.label} has dimension {model.dim}",
        )
    for field in expected:
        if field.name == "embedding" or field.name not in table.column_names:
            continue
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise ShardError(path, f"column {field.name!r} is {actual}, not {field.type}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def read_shards(
    folder: str | os.PathLike[str], *, expect: ModelIdentity | None = None
) -> Iterator[ParquetBatch]:
    """Read every shard of a folder, oldest first.

    Args:
        folder: A folder of shards written by :class:`ParquetShardWriter`.
        expect: If given, shards of any other model raise :class:`ModelMismatchError`.

    Raises:
        ParquetError: A shard cannot be read, fails its checks, or has no anyshot metadata.
    """
    for path in list_shards(folder):
        shard = read_shard(path)
        if expect is not None and not shard.model.is_compatible(expect):
            raise ModelMismatchError(shard.model.label, expect.label)
        yield shard
