"""How a Qdrant Edge shard is laid out: its configuration from the scale settings, read back.

The shard keeps the layout it was created with (``edge_config.json`` beside its segments);
search parameters apply to every query. These are Qdrant Edge's equivalents of a server
collection's settings (:mod:`indexer.stores.qdrant_server`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from indexer.config import ScaleSettings
from indexer.schema import VECTOR_NAME, ModelIdentity

EDGE_CONFIG_FILE = "edge_config.json"
"""Where Qdrant Edge persists a shard's configuration (read for ``EdgeStore.info``)."""
FULL_SCAN_THRESHOLD_KB = 10_000
"""Below this many kilobytes of vectors a segment is searched exactly (Qdrant's default)."""
PAYLOAD_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "geo": qe.PayloadSchemaType.Geo,
    # Full-text: words, lower-cased (the OCR text; see indexer.ocr).
    "text": qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True),
}
"""Qdrant Edge's payload index types, by the type names of ``INDEXED_PAYLOAD_KEYS`` and
``ON_DEMAND_PAYLOAD_KEYS``."""

logger = logging.getLogger(__name__)


def edge_config(identity: ModelIdentity, scale: ScaleSettings) -> qe.EdgeConfig:
    """The shard layout for ``scale``: Qdrant Edge's equivalents of a server collection's."""
    if scale.shard_number not in (None, 1) or scale.replication_factor not in (None, 1):
        logger.warning(
            "shard_number and replication_factor apply to a Qdrant server; an embedded store "
            "has one shard"
        )
    return qe.EdgeConfig(
        vectors={
            VECTOR_NAME: qe.EdgeVectorParams(
                size=identity.dim,
                distance=qe.Distance.Cosine,
                memory=qe.Memory.Cold if scale.on_disk_vectors else qe.Memory.Cached,
            )
        },
        payload_memory=qe.Memory.Cold if scale.on_disk_payload else qe.Memory.Cached,
        hnsw_config=qe.HnswIndexConfig(
            m=scale.hnsw_m,
            ef_construct=scale.hnsw_ef_construct,
            full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
        ),
        quantization_config=_edge_quantization(scale),
        optimizers=(
            None
            if scale.indexing_threshold is None
            else qe.EdgeOptimizersConfig(indexing_threshold=scale.indexing_threshold)
        ),
    )


def read_edge_layout(shard_dir: Path) -> dict[str, Any]:
    """The shard's layout, from the configuration Qdrant Edge keeps beside it (best effort)."""
    try:
        config = json.loads((shard_dir / EDGE_CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return {}
    vector = config.get("vectors", {}).get(VECTOR_NAME, {})
    hnsw = config.get("hnsw_config") or {}
    return {
        # Qdrant Edge's defaults: vectors cached in RAM, payload cold on disk.
        "on_disk_vectors": vector.get("memory", "cached") == "cold",
        "on_disk_payload": config.get("payload_memory", "cold") == "cold",
        "quantization": next(iter(config.get("quantization_config") or {}), "none"),
        "hnsw_m": hnsw.get("m"),
        "hnsw_ef_construct": hnsw.get("ef_construct"),
    }


def _edge_quantization(scale: ScaleSettings) -> Any:
    # Not always in RAM: placed like the vectors they compress, as on a server.
    memory = qe.Memory.Cached if scale.quantization_always_ram else None
    if scale.quantization == "scalar":
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=memory)
    if scale.quantization == "binary":
        return qe.BinaryQuantizationConfig(memory=memory)
    return None


def search_params(scale: ScaleSettings) -> qe.SearchParams:
    """The search parameters of every query: HNSW candidates, quantization rescoring."""
    return qe.SearchParams(
        hnsw_ef=scale.hnsw_ef,
        quantization=qe.QuantizationSearchParams(
            rescore=scale.quantization_rescore, oversampling=scale.quantization_oversampling
        ),
    )
