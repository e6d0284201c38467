"""The query engine: turn a text or an example image into a vector and find its neighbours."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.decode import decode_image, load_image
from indexer.embed import Embedder
from indexer.errors import ImageDecodeError, ModelMismatchError, QueryError
from indexer.store import PayloadFilter, VectorStore

ImageInput = str | Path | bytes | Image.Image
"""An example image: a file path, an http(s) URL, encoded bytes or a PIL image."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, best first in a result list.

    Attributes:
        id: The image's point id (stable: derived from its URI).
        uri: Where the image is.
        score: Cosine similarity to the query (higher is closer).
        payload: Everything stored with the image (size, mtime, sha256, width, ...).
    """

    id: int
    uri: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the hit as JSON-ready values."""
        return {
            "id": self.id,
            "uri": self.uri,
            "score": round(self.score, 6),
            "payload": self.payload,
        }


PROMPT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
)
"""Templates that turn a name into descriptions (a subset of the CLIP paper's ensemble)."""


class SearchEngine:
    """Searches one store with one embedder; both must come from the same model.

    Args:
        store: An open store with a collection in it.
        embedder: The model that built the collection.

    Raises:
        StoreNotFoundError: The store holds no collection yet.
        ModelMismatchError: The store was built by another model.
    """

    def __init__(self, store: VectorStore, embedder: Embedder) -> None:
        stored = store.require_model()
        if not stored.is_compatible(embedder.identity):
            raise ModelMismatchError(stored.label, embedder.identity.label)
        self.store = store
        self.embedder = embedder

    def search_vector(
        self,
        vector: np.ndarray,
        *,
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        """Return the ``k`` images nearest to a unit vector, best first."""
        if k < 1:
            raise QueryError(f"k must be at least 1, not {k}")
        if offset < 0:
            raise QueryError(f"offset must not be negative, not {offset}")
        found = self.store.search(
            vector, limit=k, offset=offset, where=where, score_threshold=threshold
        )
        return [Hit(p.id, str(p.payload.get("uri", "")), p.score, p.payload) for p in found]

    def search_text(self, text: str, **options: Any) -> list[Hit]:
        """Zero-shot search: images that match a description.

        Raises:
            QueryError: The text is empty.
        """
        if not text or not text.strip():
            raise QueryError("empty text query")
        return self.search_vector(self.embedder.embed_texts([text.strip()])[0], **options)

    def embed_image(self, image: ImageInput) -> np.ndarray:
        """Embed an example image given as a path, URL, bytes or PIL image.

        Raises:
            QueryError: The image cannot be read or decoded.
        """
        try:
            if isinstance(image, Image.Image):
                pil = image.convert("RGB")
            elif isinstance(image, bytes | bytearray):
                pil = decode_image(
                    bytes(image), uri="<uploaded image>", target_size=self.embedder.image_size
                ).image
            else:
                pil = load_image(str(image), target_size=self.embedder.image_size).image
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use the example image {exc.path}: {exc.reason}") from exc
        return self.embedder.embed_images([pil])[0]

    def search_image(self, image: ImageInput, **options: Any) -> list[Hit]:
        """One-shot search: images that look like an example."""
        return self.search_vector(self.embed_image(image), **options)

    def embed_name(self, name: str) -> np.ndarray:
        """Embed a name through an ensemble of prompt templates (the CLIP paper's recipe).

        Each template ("a photo of a {name}.") is embedded; the unit mean of the embeddings
        is the name's query vector.

        Raises:
            QueryError: The name is empty.
        """
        name = name.strip() if name else ""
        if not name:
            raise QueryError("empty name")
        vectors = self.embedder.embed_texts([t.format(name) for t in PROMPT_TEMPLATES])
        mean = vectors.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def search_name(self, name: str, **options: Any) -> list[Hit]:
        """Search by a name, through prompt templates."""
        return self.search_vector(self.embed_name(name), **options)

    def search_similar(self, point_id: int, **options: Any) -> list[Hit]:
        """ "More like this": images near an indexed image, by its id.

        Raises:
            QueryError: No image with that id is in the collection.
        """
        found = self.store.retrieve([point_id], with_vectors=True)
        if not found or found[0].vector is None:
            raise QueryError(f"no image with id {point_id} in the collection")
        return self.search_vector(found[0].vector, **options)
