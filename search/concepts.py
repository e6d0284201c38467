"""Registered concepts: a name with one to a few example images (one-shot naming).

A concept keeps the embeddings of its examples, not the images, so examples given as bytes, PIL
images or URLs need not stay reachable. Concepts are one JSON document kept with the collection
(:meth:`VectorStore.write_document`): a file in an embedded store's folder, collection metadata
on a Qdrant server or in ``:memory:``. ``anyshot export`` carries them beside the Parquet shards
(:mod:`indexer.snapshot_documents`, which checks them on ``anyshot load``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.errors import QueryError, StoreError
from indexer.stores.interface import VectorStore
from search.knowledge import normalise_name

DOCUMENT = "concepts"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Concept:
    """A name defined by example images.

    Attributes:
        name: The name, as registered.
        examples: Where each example came from: a path or URL, ``id:N`` for an indexed image,
            ``<bytes>`` or ``<Image>`` for in-memory images.
        created: When it was registered (seconds since the epoch).
        vectors: The examples' embeddings, one unit row each.
    """

    name: str
    examples: list[str]
    created: float = field(default_factory=time.time)
    vectors: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), np.float32), repr=False, compare=False
    )

    @property
    def vector(self) -> np.ndarray:
        """The query vector: the unit mean of the examples' embeddings."""
        mean = np.asarray(self.vectors, np.float32).mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The concept as JSON-ready values (without its vectors)."""
        return {"name": self.name, "examples": list(self.examples), "created": self.created}

    def _document(self) -> dict[str, Any]:
        return self.to_dict() | {"vectors": np.asarray(self.vectors, np.float32).tolist()}

    @classmethod
    def _from_document(cls, data: dict[str, Any]) -> Concept:
        return cls(
            name=str(data["name"]),
            examples=[str(e) for e in data.get("examples", [])],
            created=float(data.get("created", 0.0)),
            vectors=np.asarray(data["vectors"], np.float32),
        )


class ConceptRegistry:
    """The concepts of one collection, read from and written to its store.

    Args:
        store: An open store with a collection.
    """

    def __init__(self, store: VectorStore) -> None:
        self.store = store

    def _read(self) -> dict[str, Concept]:
        document = self.store.read_document(DOCUMENT)
        if not document:
            return {}
        if document.get("format") != FORMAT_VERSION:
            raise StoreError(f"concepts document of format {document.get('format')!r} unknown")
        try:
            concepts = [Concept._from_document(item) for item in document["concepts"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"damaged concepts document: {exc}") from exc
        return {normalise_name(c.name): c for c in concepts}

    def _write(self, concepts: dict[str, Concept]) -> None:
        items = [c._document() for c in sorted(concepts.values(), key=lambda c: c.name)]
        self.store.write_document(
            DOCUMENT, {"format": FORMAT_VERSION, "concepts": items} if items else None
        )

    def list(self) -> list[Concept]:
        """All concepts, sorted by name."""
        return sorted(self._read().values(), key=lambda c: c.name)

    def get(self, name: str) -> Concept | None:
        """The concept of that name (case-insensitive), or None."""
        return self._read().get(normalise_name(name))

    def add(self, concept: Concept) -> None:
        """Register a concept, replacing one of the same name."""
        if not normalise_name(concept.name):
            raise QueryError("a concept needs a name")
        concepts = self._read()
        concepts[normalise_name(concept.name)] = concept
        self._write(concepts)

    def remove(self, name: str) -> None:
        """Forget a concept.

        Raises:
            QueryError: No concept has that name.
        """
        concepts = self._read()
        if concepts.pop(normalise_name(name), None) is None:
            known = ", ".join(c.name for c in concepts.values()) or "none"
            raise QueryError(f"no concept named {name!r} (registered: {known})")
        self._write(concepts)
