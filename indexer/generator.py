"""Generated visual features: a small conditional model G(text embedding, noise) → image embedding.

The idea anyshot was founded on (Zhu et al. 2018, "A Generative Adversarial Approach for Zero-Shot
Learning from Noisy Texts"): a generator trained on captioned images turns the description of a
thing the collection has no labelled images of into a few *visual* feature vectors, and the
search looks for the nearest images to those, across the gap between CLIP's text and image cones.

This module is the torch-free half: the generator's numbers and their forward pass in numpy (a few
matmuls), its document kept with the collection (``generator``, with the model identity it was
trained for), text chunking for descriptions longer than CLIP's 77 tokens, and the fusion of the
ranked lists of a multi-vector search. Training (torch) is :mod:`indexer.generator_train`.

The network, for a unit text embedding ``t`` (d) and noise ``z`` (``noise_dim``)::

    h1 = leaky_relu([t, z] @ w1 + b1)
    h2 = leaky_relu(h1 @ w2 + b2)
    g  = unit(t @ skip + h2 @ w3 + b3)
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from indexer.errors import QueryError, StoreError
from indexer.schema import ModelIdentity
from indexer.stores.interface import ScoredPoint, VectorStore

GENERATOR_DOCUMENT = "generator"
"""The name of the document the generator is kept in, with the collection."""
FORMAT_VERSION = 1

WEIGHT_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3", "skip")
"""The generator's arrays, in the order of the forward pass."""

Fusion = Literal["rrf", "max", "mean"]
FUSIONS: tuple[str, ...] = ("rrf", "max", "mean")
RRF_K = 60
"""Reciprocal rank fusion's constant (Cormack et al. 2009)."""

CHUNK_WORDS = 40
"""Words per chunk of a long description: CLIP reads 77 tokens, about 50 English words."""

_LEAK = 0.2


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row of ``matrix`` scaled to length 1 (rows of zeros stay zero)."""
    matrix = np.asarray(matrix, np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, _LEAK * x)


@dataclass
class Generator:
    """A trained generator: its arrays and what it was trained for.

    Attributes:
        kind: How it was trained: ``mlp`` (residual MLP, contrastive loss) or ``gan``
            (conditional GAN with a retrieval regulariser).
        model: The identity of the model whose embeddings it maps; searches with any other
            model refuse it.
        noise_dim: Length of the noise vector.
        noise_scale: Standard deviation of the noise at query time.
        weights: The arrays named in :data:`WEIGHT_NAMES`.
        pairs: How many (caption, image) pairs it was trained on.
        trained: When (seconds since the epoch).
        info: Training details for ``anyshot generator train --json`` (epochs, loss, ...).
    """

    kind: str
    model: ModelIdentity
    noise_dim: int
    weights: dict[str, np.ndarray]
    noise_scale: float = 1.0
    pairs: int = 0
    trained: float = field(default_factory=time.time)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """The embedding dimension it reads and writes."""
        return int(self.weights["skip"].shape[0])

    def generate(self, texts: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
        """``k`` visual vectors per text embedding.

        Args:
            texts: Unit text embeddings, one per row (n × dim).
            k: Vectors per text; the first uses zero noise (the generator's "mean" image).
            seed: Seeds the noise: the same texts and seed give the same vectors.

        Returns:
            ``n·k`` unit rows, the ``k`` of the first text first.
        """
        texts = np.asarray(texts, np.float32)
        if texts.ndim != 2 or texts.shape[1] != self.dim:
            raise QueryError(
                f"the generator reads {self.dim}-d embeddings, not {texts.shape[-1]}-d"
            )
        n = texts.shape[0]
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((n, k, self.noise_dim)).astype(np.float32) * self.noise_scale
        noise[:, 0] = 0.0
        repeated = np.repeat(texts, k, axis=0)
        return self.forward(repeated, noise.reshape(n * k, self.noise_dim))

    def forward(self, texts: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The forward pass for rows of text embeddings and noise (unit rows out)."""
        w = self.weights
        h = _leaky_relu(np.concatenate([texts, noise], axis=1) @ w["w1"] + w["b1"])
        h = _leaky_relu(h @ w["w2"] + w["b2"])
        return unit_rows(texts @ w["skip"] + h @ w["w3"] + w["b3"])

    def check_model(self, identity: ModelIdentity) -> None:
        """Refuse a model other than the one it was trained for.

        Raises:
            QueryError: ``identity`` is another model (or other weights) than the generator's.
        """
        if not self.model.is_compatible(identity):
            raise QueryError(
                f"the collection's generator was trained for model {self.model.label!r}"
                f"{_fingerprint_note(self.model, identity)}, not {identity.label!r}: "
                f"train it again with `anyshot generator train`"
            )

    def to_document(self) -> dict[str, Any]:
        """The generator as a JSON document (arrays as base64 float32, little-endian)."""
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "noise_dim": self.noise_dim,
            "noise_scale": self.noise_scale,
            "pairs": self.pairs,
            "trained": self.trained,
            "info": self.info,
            "weights": {
                name: {
                    "shape": list(self.weights[name].shape),
                    "data": base64.b64encode(
                        np.ascontiguousarray(self.weights[name], "<f4").tobytes()
                    ).decode("ascii"),
                }
                for name in WEIGHT_NAMES
            },
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Generator:
        """Rebuild a generator from :meth:`to_document`'s output.

        Raises:
            StoreError: The document is of an unknown format or damaged.
        """
        if document.get("format") != FORMAT_VERSION:
            raise StoreError(f"generator document of format {document.get('format')!r} unknown")
        try:
            weights = {}
            for name in WEIGHT_NAMES:
                entry = document["weights"][name]
                data = np.frombuffer(base64.b64decode(entry["data"]), "<f4")
                weights[name] = data.reshape([int(n) for n in entry["shape"]]).astype(np.float32)
            generator = cls(
                kind=str(document["kind"]),
                model=ModelIdentity.from_dict(document["model"]),
                noise_dim=int(document["noise_dim"]),
                weights=weights,
                noise_scale=float(document.get("noise_scale", 1.0)),
                pairs=int(document.get("pairs", 0)),
                trained=float(document.get("trained", 0.0)),
                info=dict(document.get("info") or {}),
            )
            _check_shapes(generator)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"damaged generator document: {exc}") from exc
        return generator


def _fingerprint_note(trained: ModelIdentity, asked: ModelIdentity) -> str:
    if trained.label == asked.label and trained.fingerprint and asked.fingerprint:
        return f" (weights {trained.fingerprint[:12]}, now {asked.fingerprint[:12]})"
    return ""


def _check_shapes(generator: Generator) -> None:
    w = generator.weights
    d = w["skip"].shape[0]
    hidden = w["w1"].shape[1]
    expected = {
        "w1": (d + generator.noise_dim, hidden),
        "b1": (hidden,),
        "w2": (hidden, hidden),
        "b2": (hidden,),
        "w3": (hidden, d),
        "b3": (d,),
        "skip": (d, d),
    }
    for name, shape in expected.items():
        if tuple(w[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(w[name].shape)}, not {shape}")
        if not np.all(np.isfinite(w[name])):
            raise ValueError(f"{name} holds a value that is not finite")


def save_generator(store: VectorStore, generator: Generator) -> None:
    """Keep the generator with the collection (replacing one trained before)."""
    store.write_document(GENERATOR_DOCUMENT, generator.to_document())


def load_generator(store: VectorStore) -> Generator | None:
    """The collection's generator, or None when none was trained.

    Raises:
        StoreError: The stored document is damaged.
    """
    document = store.read_document(GENERATOR_DOCUMENT)
    return Generator.from_document(document) if document else None


def noise_seed(texts: Sequence[str]) -> int:
    """A seed from the texts, so the same query always draws the same noise."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


_SENTENCE = re.compile(r"(?<=[.!?;])\s+")


def chunk_text(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Split a long description into chunks CLIP's text tower reads whole.

    Sentences are kept together while a chunk stays within ``max_words`` words; a sentence
    longer than that is cut by words.

    Returns:
        One chunk for a short text (the text itself), more for a long one; none for a blank one.
    """
    words_total = text.split()
    if len(words_total) <= max_words:
        return [" ".join(words_total)] if words_total else []
    chunks: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        words = sentence.split()
        while len(words) > max_words:
            if current:
                chunks.append(" ".join(current))
                current = []
            chunks.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            chunks.append(" ".join(current))
            current = []
        current += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def fuse_ranked(
    lists: Sequence[Sequence[ScoredPoint]], fusion: Fusion, *, limit: int
) -> list[tuple[ScoredPoint, float, float]]:
    """Fuse the ranked lists of a multi-vector search into one.

    Args:
        lists: One ranked list per query vector (best first).
        fusion: ``rrf`` (sum of 1/(60 + rank)), ``max`` (a point's best score) or ``mean``
            (the mean of its scores, a list it is missing from counting its lowest score).
        limit: How many to return.

    Returns:
        (point, fused score, best cosine) triples, best first; ties broken by id.
    """
    if fusion not in FUSIONS:
        raise QueryError(f"unknown fusion {fusion!r}: use one of {FUSIONS}")
    points: dict[int, ScoredPoint] = {}
    best: dict[int, float] = {}
    rrf: dict[int, float] = {}
    sums: dict[int, float] = {}
    seen: dict[int, int] = {}
    floor = 1.0
    for ranked in lists:
        for rank, point in enumerate(ranked):
            points.setdefault(point.id, point)
            best[point.id] = max(best.get(point.id, -2.0), point.score)
            rrf[point.id] = rrf.get(point.id, 0.0) + 1.0 / (RRF_K + rank + 1)
            sums[point.id] = sums.get(point.id, 0.0) + point.score
            seen[point.id] = seen.get(point.id, 0) + 1
        if ranked:
            floor = min(floor, min(p.score for p in ranked))
    if fusion == "rrf":
        fused = rrf
    elif fusion == "max":
        fused = best
    else:
        n = max(len(lists), 1)
        fused = {i: (sums[i] + (n - seen[i]) * floor) / n for i in sums}
    order = sorted(fused, key=lambda i: (-fused[i], i))[:limit]
    return [(points[i], float(fused[i]), float(best[i])) for i in order]
