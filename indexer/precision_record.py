"""Which precisions made a collection's vectors (a store document, shown by ``anyshot info``).

Vectors made in int8, bf16 and fp32 by the same weights lie in the same space (cosine to fp32
above 0.999), so a store takes runs in any precision and queries in any other; the record says
what is in it, so that a user who sees a quality change can tell why.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.stores.interface import VectorStore

PRECISION_DOCUMENT = "precision"
"""Name of the store document that lists the precisions index runs embedded in."""

KNOWN_PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def read_precisions(store: VectorStore) -> tuple[str, ...]:
    """The precisions the collection's vectors were embedded in, oldest first; empty when not
    recorded (a store made before anyshot recorded them, or one filled by ``load``)."""
    document = store.read_document(PRECISION_DOCUMENT) or {}
    used = document.get("precisions")
    if not isinstance(used, list):
        return ()
    return tuple(p for p in used if isinstance(p, str) and p in KNOWN_PRECISIONS)


def describe_precisions(store: VectorStore) -> str | None:
    """``int8``, ``fp32+int8`` (runs in both), or None when unknown: ``info``'s ``precision``."""
    used = read_precisions(store)
    return "+".join(used) if used else None


def record_precision(store: VectorStore, precision: str) -> None:
    """Add ``precision`` to the record (called by runs that embed at least one image)."""
    used = read_precisions(store)
    if precision in used:
        return
    store.write_document(
        PRECISION_DOCUMENT, {"precisions": [*used, precision], "updated": time.time()}
    )
