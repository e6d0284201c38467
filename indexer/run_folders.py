"""Where an index run writes besides the store: Parquet shards and its state."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from indexer.config import Settings, default_data_dir
from indexer.stores.location import StoreLocation


@dataclass(frozen=True)
class RunFolders:
    """Folders of an index run.

    Attributes:
        parquet_dir: Parquet shards of the embeddings, or None to write none.
        state_dir: The run's state (report of skipped files), or None to keep none.
    """

    parquet_dir: Path | None
    state_dir: Path | None


def run_folders(settings: Settings) -> RunFolders:
    """Pick the run's folders: explicit settings first, then inside a folder store.

    A Qdrant server keeps its state under the data folder, one subfolder per server and
    collection; ``:memory:`` keeps none unless told.

    Raises:
        StoreError: The store location is not a folder, ``:memory:`` or an http(s) URL.
    """
    location = StoreLocation.parse(settings.store.location)
    parquet_dir, state_dir = settings.index.parquet_dir, settings.index.state_dir
    root = location.folder
    if root is not None:
        return RunFolders(parquet_dir or root / "parquet", state_dir or root / "state")
    if state_dir is None and location.is_server:
        key = f"{location.text}#{settings.store.collection}"
        slug = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[:60]
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        state_dir = default_data_dir() / "state" / f"{slug}-{digest}"
    return RunFolders(parquet_dir, state_dir)
