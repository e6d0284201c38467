"""anyshot's core: settings, errors, discovery, decoding, embedding and the vector stores.

Public names are imported lazily, so ``import indexer.config`` does not load torch.
"""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "Settings": "indexer.config",
    "ModelSettings": "indexer.config",
    "StoreSettings": "indexer.config",
    "ScaleSettings": "indexer.config",
    "IndexSettings": "indexer.config",
    "Runner": "indexer.config",
    "ProgressCallback": "indexer.progress",
    "AnyshotError": "indexer.errors",
    "ConfigError": "indexer.errors",
    "SourceError": "indexer.errors",
    "ImageDecodeError": "indexer.errors",
    "VideoDecodeError": "indexer.errors",
    "ModelError": "indexer.errors",
    "ModelUnavailableError": "indexer.errors",
    "StoreError": "indexer.errors",
    "StoreLockedError": "indexer.errors",
    "StoreServedError": "indexer.errors",
    "StoreNotFoundError": "indexer.errors",
    "StoreReadOnlyError": "indexer.errors",
    "DiskSpaceError": "indexer.errors",
    "BusyError": "indexer.errors",
    "ModelMismatchError": "indexer.errors",
    "QueryError": "indexer.errors",
    "ParquetError": "indexer.errors",
    "ImageRecord": "indexer.schema",
    "ImagePayload": "indexer.schema",
    "ModelIdentity": "indexer.schema",
    "point_id": "indexer.schema",
    "discover": "indexer.discover",
    "DecodedImage": "indexer.decode",
    "decode_image": "indexer.decode",
    "load_image": "indexer.decode",
    "read_video_frames": "indexer.video",
    "Embedder": "indexer.embed",
    "VectorStore": "indexer.stores.interface",
    "PayloadFilter": "indexer.stores.interface",
    "StoreLocation": "indexer.stores.location",
    "open_store": "indexer.stores.opening",
    "ParquetShardWriter": "indexer.parquet_store",
    "read_shards": "indexer.parquet_store",
    "IndexReport": "indexer.indexing",
    "index_source": "indexer.indexing",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
