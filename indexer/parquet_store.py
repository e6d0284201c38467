"""Parquet shards of embeddings plus payload: a collection that any store can be rebuilt from.

One schema (:func:`parquet_schema`), written once. Each shard is one file named
``part-<time>-<random>.parquet`` so that several writers never collide and sorting the names
gives the order of writing; later shards win when the same id appears twice. The model that
made the embeddings is recorded in each file's schema metadata.
"""

from __future__ import annotations

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
import pyarrow.parquet as pq

from indexer.errors import ModelMismatchError, ParquetError
from indexer.schema import ModelIdentity

SHARD_GLOB = "part-*.parquet"
MODEL_METADATA_KEY = b"anyshot.model"
FORMAT_METADATA_KEY = b"anyshot.format"
FORMAT_VERSION = b"1"


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
        pa.field("embedding", pa.list_(pa.float32(), identity.dim), nullable=False),
    ]
    metadata = {
        MODEL_METADATA_KEY: json.dumps(identity.to_dict()).encode(),
        FORMAT_METADATA_KEY: FORMAT_VERSION,
    }
    return pa.schema(fields, metadata=metadata)


PAYLOAD_COLUMNS = ("uri", "size", "mtime", "sha256", "width", "height", "format", "tags")


@dataclass(frozen=True)
class ParquetBatch:
    """The rows of one shard."""

    path: Path
    model: ModelIdentity
    ids: np.ndarray
    vectors: np.ndarray
    payloads: list[dict[str, Any]]


class ParquetShardWriter:
    """Writes batches of embeddings as Parquet shards into one folder.

    Args:
        folder: Where shards go; created if missing.
        identity: The model that made the embeddings.
    """

    def __init__(self, folder: str | os.PathLike[str], identity: ModelIdentity) -> None:
        self.folder = Path(folder)
        self.identity = identity
        self.schema = parquet_schema(identity)

    def write(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]
    ) -> Path:
        """Write one shard atomically (temporary file, then rename).

        Returns:
            The shard's path.

        Raises:
            ParquetError: The folder cannot be written, or the vectors have the wrong size.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.identity.dim:
            raise ParquetError(
                f"vectors of shape {vectors.shape} do not match dimension {self.identity.dim}"
            )
        columns: dict[str, Any] = {"id": pa.array(np.asarray(ids, dtype=np.uint64))}
        for name in PAYLOAD_COLUMNS:
            columns[name] = [payload.get(name) for payload in payloads]
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1)), self.identity.dim
        )
        try:
            table = pa.Table.from_pydict(columns, schema=self.schema)
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.time_ns():020d}-{secrets.token_hex(3)}.parquet"
            tmp = self.folder / f".{name}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self.folder / name)
        except (OSError, pa.ArrowException) as exc:
            raise ParquetError(f"cannot write a Parquet shard in {self.folder}: {exc}") from exc
        return self.folder / name


def list_shards(folder: str | os.PathLike[str]) -> list[Path]:
    """Return the shard files of a folder in the order they were written."""
    return sorted(Path(folder).glob(SHARD_GLOB))


def read_shards(
    folder: str | os.PathLike[str], *, expect: ModelIdentity | None = None
) -> Iterator[ParquetBatch]:
    """Read every shard of a folder, oldest first.

    Args:
        folder: A folder of shards written by :class:`ParquetShardWriter`.
        expect: If given, shards of any other model raise :class:`ModelMismatchError`.

    Raises:
        ParquetError: A shard cannot be read or has no anyshot metadata.
    """
    for path in list_shards(folder):
        try:
            table = pq.read_table(path)
            raw_model = (table.schema.metadata or {}).get(MODEL_METADATA_KEY)
            if raw_model is None:
                raise ParquetError(f"{path}: not an anyshot shard (no model metadata)")
            model = ModelIdentity.from_dict(json.loads(raw_model))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ParquetError(f"{path}: unreadable Parquet shard: {exc}") from exc
        if expect is not None and not model.is_compatible(expect):
            raise ModelMismatchError(model.label, expect.label)
        embedding = table.column("embedding").combine_chunks()
        vectors = embedding.values.to_numpy(zero_copy_only=False).reshape(-1, model.dim)
        payload_table = table.select(list(PAYLOAD_COLUMNS)).to_pylist()
        yield ParquetBatch(
            path=path,
            model=model,
            ids=table.column("id").to_numpy().astype(np.uint64),
            vectors=vectors.astype(np.float32, copy=False),
            payloads=[{k: v for k, v in row.items() if v is not None} for row in payload_table],
        )
