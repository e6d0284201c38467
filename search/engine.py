"""The query engine: turn texts, example images, names and ids into one vector, find neighbours.

Every query is a list of :class:`~search.query.QueryPart`. Each part becomes a unit vector:

- ``text``: the text's embedding (cached, LRU);
- ``image``: the example image's embedding; ``id``: the stored vector of an indexed image;
- ``name``: resolved in this order, and the result's ``explain`` says which way it went:
  1. a registered **concept** (:mod:`search.concepts`): the unit mean of its examples;
  2. a **description** from the knowledge base (:mod:`search.knowledge`), or online when that
     is switched on: the unit mean of its descriptions' embeddings, with the name in prompt
     templates counted as ``search.name_weight`` more descriptions;
  3. **prompt templates** (the CLIP paper's ensemble, averaged).

The query vector is the unit sum of the parts' vectors times their weights (a negative weight
pushes results away). With **generated visual features** (``generate``), each positive text and
name part (not a concept) is turned into descriptions, each description (each 77-token chunk
of a long one) into its text embedding and that into ``search.generate_vectors`` image-like
vectors by the collection's generator (:mod:`indexer.generator`); vector ``i`` of
the query is the unit sum of the generated vectors ``i`` and the other parts (negatives too),
and one batch search fuses their ranked lists (``search.generate_fusion``). Optional **visual
query expansion** (text and name queries): search, take
the mean embedding of the top images, blend it into the query, search again.

Scores are cosine similarities to the vector searched, and their scale depends on what was
compared: text↔image similarities of CLIP models are low (about 0.2–0.35 for a match with
ViT-B-32), image↔image ones high (0.6–1.0). ``explain["score_scale"]`` names the scale of a
result (``text-image``, ``image-image``, ``mixed``), and a threshold always applies on the
scale of the query as given: with expansion it is checked against the un-expanded query.

Every answer carries ``explain["confidence"]`` (in [0, 1]) and ``explain["no_match"]``: how sure
it is that something in the collection (within the filters) matches at all, from the best score
of the un-expanded query on a calibrated scale (:mod:`search.confidence`); ``min_confidence``
turns an answer below it into no hits.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from indexer.config import SearchSettings
from indexer.decode import decode_image, load_image
from indexer.errors import ImageDecodeError, ModelMismatchError, QueryError, StoreError
from indexer.generator import Generator, chunk_text, fuse_ranked, load_generator, noise_seed
from indexer.stores.interface import PayloadFilter, ScoredPoint, VectorStore
from search.concepts import ConceptRegistry
from search.confidence import calibration_for, check_min_confidence
from search.domain_words import TINY_MODEL, out_of_domain_warning, unknown_words
from search.knowledge import KnowledgeBase, KnowledgeEntry, OnlineDescriptions
from search.query import ExampleInput, ImageInput, QueryPart
from search.results import Hit, SearchResult

if TYPE_CHECKING:
    from indexer.embed import Embedder
    from indexer.query_model import QueryModel

logger = logging.getLogger(__name__)


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

_CANDIDATE_FACTOR = 4
_MIN_CANDIDATES = 50
_GROUP_MAX_CANDIDATES = 20_000
"""Frames looked at, at most, to fill a page of hits grouped per video."""
_MAX_MOMENTS = 50
"""Other matching moments listed per video hit, at most."""
MOMENT_MARGIN = 0.1
"""A frame is one of its video's other matching moments when it is among the candidates and
scores within this much (cosine) of the video's best frame."""


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32)."""
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise QueryError("the query parts cancel out: nothing left to search for")
    return (np.asarray(vector, np.float64) / norm).astype(np.float32)


@dataclass
class _Embedded:
    vector: np.ndarray
    modality: str  # "text" or "image"
    explain: dict[str, Any]
    descriptions: list[str] | None = None  # what a generator may read (text and name parts)


class SearchEngine:
    """Searches one store with one embedder; both must come from the same model.

    Args:
        store: An open store with a collection in it.
        embedder: The model that built the collection: loaded (:class:`Embedder`), or its
            exported text tower with the model loaded on the first image (:class:`QueryModel`).
        settings: Search settings (expansion, duplicates, names); defaults if None.
        knowledge: Names with descriptions, for name queries.
        online: An online description source, consulted after ``knowledge``.

    Raises:
        StoreNotFoundError: The store holds no collection yet.
        ModelMismatchError: The store was built by another model.
    """

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder | QueryModel,
        settings: SearchSettings | None = None,
        *,
        knowledge: KnowledgeBase | None = None,
        online: OnlineDescriptions | None = None,
    ) -> None:
        stored = store.require_model()
        if not stored.is_compatible(embedder.identity):
            raise ModelMismatchError(stored.label, embedder.identity.label)
        self.store = store
        self.embedder = embedder
        self.settings = settings or SearchSettings()
        self.knowledge = knowledge
        self.online = online
        self.concepts = ConceptRegistry(store)
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_lock = threading.Lock()
        self._domain_warned = False
        self._domain_warned_lock = threading.Lock()
        self._generator: Generator | None = None
        self._generator_lock = threading.Lock()

    # -- embedding -----------------------------------------------------------------------------

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts through an LRU cache (``search.text_cache_size`` entries).

        Raises:
            QueryError: A text is empty or only whitespace.
        """
        texts = [t.strip() if isinstance(t, str) else "" for t in texts]
        if any(not t for t in texts):
            raise QueryError("empty text query")
        # The API server searches from several threads: the cache is read and updated under a
        # lock (an entry evicted between a check and its use would otherwise be a KeyError).
        with self._text_cache_lock:
            cached = {t: self._text_cache[t] for t in texts if t in self._text_cache}
        missing = list(dict.fromkeys(t for t in texts if t not in cached))
        fresh = dict(zip(missing, self.embedder.embed_texts(missing), strict=True))
        out = np.stack([fresh[t] if t in fresh else cached[t] for t in texts])
        size = self.settings.text_cache_size
        with self._text_cache_lock:
            for text in texts:
                if text in fresh:
                    self._text_cache[text] = fresh[text]
                if text in self._text_cache:
                    self._text_cache.move_to_end(text)
            while len(self._text_cache) > size:
                self._text_cache.popitem(last=False)
        return out

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
            elif isinstance(image, str | Path):
                pil = load_image(str(image), target_size=self.embedder.image_size).image
            else:
                raise QueryError(f"not an image: {type(image).__name__}")
        except ImageDecodeError as exc:
            raise QueryError(f"cannot use the example image {exc.path}: {exc.reason}") from exc
        return self.embedder.embed_images([pil])[0]

    def stored_vectors(self, point_ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of indexed images, in the order asked.

        Raises:
            QueryError: An id is not in the collection.
        """
        ids = [int(i) for i in point_ids]
        found = {p.id: p.vector for p in self.store.retrieve(ids, with_vectors=True)}
        missing = [i for i in ids if found.get(i) is None]
        if missing:
            raise QueryError(f"no image with id {missing[0]} in the collection")
        return np.stack([found[i] for i in ids]).astype(np.float32)

    def embed_example(self, example: ExampleInput) -> tuple[np.ndarray, str]:
        """Embed an example image or look up an indexed one (an int, or ``"id:N"``).

        Returns:
            The unit vector and a label of the example (its path or URL, ``id:N``, ``<bytes>``).
        """
        if isinstance(example, int) and not isinstance(example, bool):
            return self.stored_vectors([example])[0], f"id:{example}"
        if isinstance(example, str) and example.startswith("id:"):
            try:
                point = int(example[3:])
            except ValueError:
                raise QueryError(f"not an image id: {example!r}") from None
            return self.stored_vectors([point])[0], example
        label = str(example) if isinstance(example, str | Path) else f"<{type(example).__name__}>"
        return self.embed_image(example), label

    def embed_templates(self, name: str) -> np.ndarray:
        """The unit mean of a name in every prompt template (the CLIP paper's ensembling)."""
        return unit(self.embed_texts([t.format(name) for t in PROMPT_TEMPLATES]).mean(axis=0))

    def embed_name(self, name: str) -> np.ndarray:
        """Embed a name the way a name query does (concept, description or templates).

        Raises:
            QueryError: The name is empty, or unknown while template fallback is off.
        """
        return self._resolve_name(name).vector

    def describe(self, name: str) -> KnowledgeEntry | None:
        """What the knowledge base (then the online source, if on) knows of a name."""
        entry = self.knowledge.lookup(name) if self.knowledge is not None else None
        if entry is None and self.online is not None:
            entry = self.online.lookup(name)
        return entry

    def _resolve_name(self, name: str) -> _Embedded:
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise QueryError("empty name")
        concept = self.concepts.get(name)
        if concept is not None:
            return _Embedded(
                concept.vector,
                "image",
                {
                    "name": name,
                    "resolved_as": "concept",
                    "concept": concept.name,
                    "examples": len(concept.examples),
                },
            )
        entry = self.describe(name)
        if entry is not None and entry.descriptions:
            # CuPL-style: the descriptions' mean, plus the name in templates counted as
            # ``name_weight`` descriptions (0 for names the model cannot know).
            weight = self.settings.name_weight
            described = self.embed_texts(list(entry.descriptions)).sum(axis=0)
            if weight > 0:
                described = described + weight * self.embed_templates(entry.name)
            return _Embedded(
                unit(described),
                "text",
                {
                    "name": name,
                    "resolved_as": "description",
                    "entry": entry.name,
                    "descriptions": list(entry.descriptions),
                    "source": entry.source,
                },
                list(entry.descriptions),
            )
        if not self.settings.name_templates:
            raise QueryError(
                f"unknown name {name!r}: register it as a concept with example images, or add "
                f"it to the knowledge base"
            )
        target = entry.name if entry is not None else name
        return _Embedded(
            self.embed_templates(target),
            "text",
            {"name": name, "resolved_as": "templates", "templates": len(PROMPT_TEMPLATES)},
            [template.format(target) for template in PROMPT_TEMPLATES],
        )

    def _embed_part(self, part: QueryPart) -> _Embedded:
        if part.kind == "text":
            if not isinstance(part.value, str) or not part.value.strip():
                raise QueryError("empty text query")
            return _Embedded(self.embed_texts([part.value])[0], "text", {}, [part.value])
        if part.kind == "name":
            return self._resolve_name(part.value)
        if part.kind == "id":
            try:
                point = int(part.value)
            except (TypeError, ValueError):
                raise QueryError(f"not an image id: {part.value!r}") from None
            return _Embedded(self.stored_vectors([point])[0], "image", {})
        return _Embedded(self.embed_image(part.value), "image", {})

    # -- searching -----------------------------------------------------------------------------

    def query(
        self,
        parts: Sequence[QueryPart],
        *,
        k: int = 10,
        offset: int = 0,
        where: PayloadFilter | None = None,
        threshold: float | None = None,
        expand: bool | None = None,
        collapse_duplicates: bool | float = False,
        group: bool = True,
        min_confidence: float | None = None,
        generate: bool | None = None,
    ) -> SearchResult:
        """Answer a query of one or more weighted parts.

        Args:
            parts: What to search for; at least one part with a positive weight.
            k: How many hits.
            offset: How many of the best hits to skip (pagination).
            where: Conditions on the payload.
            threshold: Minimum score, on the scale of the query as given (see module docs).
            expand: Visual query expansion for text and name queries; None: the setting.
            collapse_duplicates: Keep only the best of near-duplicate hits: True uses
                ``search.duplicate_threshold``, a float is the image↔image threshold.
            group: One hit per video, its best frame's, with the other matching frames as
                ``moments``; False: every frame is a hit of its own.
            min_confidence: No hits at all when the query's confidence (:mod:`search.confidence`)
                is below this; None: ``search.min_confidence``.
            generate: Search text and name parts by generated visual features (module docs);
                None: ``search.generate``. The threshold then applies to a hit's best cosine
                to the generated vectors.

        Returns:
            Hits, best first, and ``explain`` (with ``confidence`` and ``no_match``).

        Raises:
            QueryError: No positive part, an empty text, an unknown id, an unreadable image, a
                minimum confidence outside [0, 1]; generation asked for with no generator
                trained, or one of another model.
        """
        if min_confidence is None:
            min_confidence = self.settings.min_confidence
        min_confidence = check_min_confidence(min_confidence)
        if k < 1:
            raise QueryError(f"k must be at least 1, not {k}")
        if offset < 0:
            raise QueryError(f"offset must not be negative, not {offset}")
        if not parts:
            raise QueryError("empty query: give a text, an image, a name or an image id")
        if not any(part.weight > 0 for part in parts):
            raise QueryError("a query needs at least one positive part")
        embedded = [self._embed_part(part) for part in parts]
        query = unit(sum(p.weight * e.vector for p, e in zip(parts, embedded, strict=True)))
        positive = {e.modality for p, e in zip(parts, embedded, strict=True) if p.weight > 0}
        scale = "mixed" if len(positive) > 1 else f"{positive.pop()}-image"
        explain: dict[str, Any] = {
            "parts": [part.to_dict() for part in parts],
            "names": [e.explain for e in embedded if e.explain],
            "score_scale": scale,
            "threshold": threshold,
        }
        warnings = self._domain_warnings(parts, embedded)
        if warnings:
            explain["warnings"] = warnings

        generate = self.settings.generate if generate is None else generate
        generated = [
            i
            for i, (p, e) in enumerate(zip(parts, embedded, strict=True))
            if p.weight > 0 and e.descriptions is not None
        ]
        if generate and generated:
            result = self._query_generated(
                parts,
                embedded,
                generated,
                explain,
                k=k,
                offset=offset,
                where=where,
                threshold=threshold,
                collapse=self._collapse_threshold(collapse_duplicates),
                group=group,
            )
            # Confidence stays on the plain query's scale (generated scores are image↔image).
            return self._confident(
                result.hits, explain, query, scale, parts, where, [], min_confidence
            )
        if generate:
            explain["generated"] = {"applied": False, "reason": "only for text and name queries"}

        expand = self.settings.expand if expand is None else expand
        searched = query
        if expand and scale == "text-image":
            searched, explain["expansion"] = self._expand(query, where)
        else:
            reason = "off" if not expand else "only for text and name queries"
            explain["expansion"] = {"applied": False, "reason": reason}

        collapse = self._collapse_threshold(collapse_duplicates)
        expanded = searched is not query

        def fetch(limit: int, skip: int) -> tuple[list[ScoredPoint], int]:
            if collapse is None and not (expanded and threshold is not None):
                found = self.store.search(
                    searched, limit=limit, offset=skip, where=where, score_threshold=threshold
                )
                return found, 0
            return self._search_filtered(
                searched,
                query,
                k=limit,
                offset=skip,
                where=where,
                threshold=threshold,
                collapse=collapse,
                expanded=expanded,
            )

        if group:
            hits, explain["collapsed"] = group_video_hits(fetch, k=k, offset=offset)
        else:
            found, explain["collapsed"] = fetch(k, offset)
            hits = [Hit(p.id, str(p.payload.get("uri", "")), p.score, p.payload) for p in found]
        explain["collapse_threshold"] = collapse
        if group and any(hit.t is not None for hit in hits):
            reusable = []  # grouped: other frames of a video are in moments, not in hits
        elif offset == 0 and not expanded:
            reusable = [ScoredPoint(hit.id, hit.score, hit.payload) for hit in hits]
        else:
            reusable = []
        return self._confident(hits, explain, query, scale, parts, where, reusable, min_confidence)

    def _confident(
        self,
        hits: list[Hit],
        explain: dict[str, Any],
        query: np.ndarray,
        scale: str,
        parts: Sequence[QueryPart],
        where: PayloadFilter | None,
        found: list[ScoredPoint],
        min_confidence: float | None,
    ) -> SearchResult:
        """The result with the query's confidence in ``explain``; no hits below
        ``min_confidence``."""
        confident = self._confidence(query, scale, parts, where, found)
        explain.update(confident)
        explain["min_confidence"] = min_confidence
        if min_confidence is not None and confident["confidence"] < min_confidence:
            explain["below_min_confidence"] = True
            return SearchResult([], explain)
        return SearchResult(hits, explain)

    def _confidence(
        self,
        query: np.ndarray,
        scale: str,
        parts: Sequence[QueryPart],
        where: PayloadFilter | None,
        found: list[ScoredPoint],
    ) -> dict[str, Any]:
        """The query's confidence from its best score within ``where`` (see
        :mod:`search.confidence`); a "more like this" image does not count as its own match.

        ``found`` are the first hits of ``query`` itself when the search already has them
        (offset 0, no expansion): no second search is needed then.
        """
        own = {int(part.value) for part in parts if part.kind == "id"}
        best = next((p.score for p in found if p.id not in own), None)
        if best is None:
            top = self.store.search(query, limit=len(own) + 1, where=where)
            best = next((p.score for p in top if p.id not in own), None)
        calibration = calibration_for(
            self.embedder.identity.name, scale, self.settings.confidence_calibration
        )
        # Nothing to compare (no image within the filters): nothing matches.
        confidence = 0.0 if best is None else calibration.confidence(float(best))
        return {
            "confidence": round(confidence, 4),
            "no_match": confidence < self.settings.no_match_threshold,
            "best_score": None if best is None else round(float(best), 6),
            "calibration": {
                "centre": calibration.centre,
                "step": calibration.step,
                "source": calibration.source,
            },
        }

    # -- generated visual features ------------------------------------------------------------

    def generator(self) -> Generator:
        """The collection's generator, read once and checked against the model.

        Raises:
            QueryError: None was trained, or it was trained for another model.
        """
        with self._generator_lock:
            if self._generator is None:
                try:
                    found = load_generator(self.store)
                except StoreError as exc:  # the document, not the collection: train again
                    raise QueryError(
                        f"{exc}: train the generator again with `anyshot generator train`"
                    ) from exc
                if found is None:
                    raise QueryError(
                        "no generator trained for this collection: run `anyshot generator "
                        "train` first (or search without --generate)"
                    )
                found.check_model(self.embedder.identity)
                self._generator = found
            return self._generator

    def forget_generator(self) -> None:
        """Read the generator again on next use (after training a new one)."""
        with self._generator_lock:
            self._generator = None

    def generated_vectors(self, embedded: _Embedded, k: int) -> tuple[np.ndarray, list[str]]:
        """``k`` generated vectors per description (per chunk of a long one) of a text or
        name part.

        Returns:
            The unit vectors (each chunk's first, noise-free one first, then each one's
            second, ...) and the descriptions they came from.
        """
        generator = self.generator()
        descriptions = list(embedded.descriptions or [])
        if embedded.explain.get("resolved_as") == "templates":
            inputs = embedded.vector[None, :]  # the templates' mean: one description
            descriptions = [f"{embedded.explain['name']} in {len(descriptions)} prompt templates"]
        else:
            # Each 77-token chunk on its own: a long description's telling sentence is not
            # averaged with the rest (measured: bench/README.md, "Generated visual features").
            chunks = [chunk for text in descriptions for chunk in (chunk_text(text) or [text])]
            inputs = self.embed_texts(chunks)
        vectors = generator.generate(inputs, k, seed=noise_seed(descriptions))
        # Vector-major order: every description's noise-free vector first, so a cap on the
        # number of vectors drops noisy draws before it drops a description.
        vectors = vectors.reshape(len(inputs), k, -1).transpose(1, 0, 2).reshape(len(vectors), -1)
        return vectors, descriptions

    def _query_generated(
        self,
        parts: Sequence[QueryPart],
        embedded: list[_Embedded],
        generated: list[int],
        explain: dict[str, Any],
        *,
        k: int,
        offset: int,
        where: PayloadFilter | None,
        threshold: float | None,
        collapse: float | None,
        group: bool = True,
    ) -> SearchResult:
        settings = self.settings
        per = settings.generate_vectors
        sets: dict[int, np.ndarray] = {}
        used: list[str] = []
        inputs = 0
        for index in generated:
            vectors, descriptions = self.generated_vectors(embedded[index], per)
            sets[index] = vectors
            used += descriptions
            inputs += len(vectors) // per
        total = sum(len(v) for v in sets.values())
        if total > settings.generate_max_vectors:  # drops noisy draws first (vector-major)
            scale = settings.generate_max_vectors / total
            sets = {i: v[: max(1, int(len(v) * scale))] for i, v in sets.items()}
        rest = sum(
            (p.weight * e.vector for i, (p, e) in enumerate(zip(parts, embedded, strict=True))
             if i not in sets),
            np.zeros_like(embedded[0].vector),
        )  # fmt: skip
        count = max(len(v) for v in sets.values())
        queries = np.stack(
            [
                unit(rest + sum(parts[i].weight * v[j % len(v)] for i, v in sets.items()))
                for j in range(count)
            ]
        )
        depth = max(_MIN_CANDIDATES, _CANDIDATE_FACTOR * (offset + k))
        # Payloads only for the hits returned: the fused lists hold up to depth × vectors points.
        lists = self.store.search_batch(queries, limit=depth, where=where, with_payload=False)
        fused = fuse_ranked(lists, settings.generate_fusion, limit=depth)
        kept: list[tuple[ScoredPoint, float]] = []
        vectors = (
            self.stored_vectors([p.id for p, _, _ in fused])
            if collapse is not None and fused
            else None
        )
        kept_rows: list[int] = []
        collapsed = 0
        for row, (point, score, best) in enumerate(fused):
            if threshold is not None and best < threshold:
                continue
            if (
                vectors is not None
                and kept_rows
                and float(np.max(vectors[kept_rows] @ vectors[row])) >= (collapse or 1.0)
            ):
                collapsed += 1
                continue
            kept_rows.append(row)
            kept.append((point, score))
        generator = self.generator()
        explain["route"] = "generated"
        explain["score_scale"] = f"generated-{settings.generate_fusion}"
        explain["generated"] = {
            "applied": True,
            "descriptions": used,
            "chunks": inputs,
            "vectors": sum(len(v) for v in sets.values()),
            "searches": len(queries),
            "per_chunk": per,
            "fusion": settings.generate_fusion,
            "generator": {"kind": generator.kind, "pairs": generator.pairs},
        }
        explain["expansion"] = {"applied": False, "reason": "not with generated features"}
        explain["collapsed"] = collapsed
        explain["collapse_threshold"] = collapse
        if group:  # frames of one video as one hit: the candidates' payloads are needed
            payloads = {p.id: p.payload for p in self.store.retrieve([p.id for p, _ in kept])}
            scored = [ScoredPoint(p.id, score, payloads.get(p.id, {})) for p, score in kept]
            return SearchResult(_grouped(scored)[offset : offset + k], explain)
        page = kept[offset : offset + k]
        payloads = {p.id: p.payload for p in self.store.retrieve([p.id for p, _ in page])}
        hits = [
            Hit(p.id, str(payloads.get(p.id, {}).get("uri", "")), score, payloads.get(p.id, {}))
            for p, score in page
        ]
        return SearchResult(hits, explain)

    def _domain_warnings(self, parts: Sequence[QueryPart], embedded: list[_Embedded]) -> list[str]:
        """Warn when anyshot-tiny is asked for words outside its domain of coloured shapes.

        Every such query's ``explain["warnings"]`` says so; the log says it once per engine.
        """
        if self.embedder.identity.name != TINY_MODEL:
            return []
        words: list[str] = []
        for part, done in zip(parts, embedded, strict=True):
            worded = part.kind == "text" or (
                part.kind == "name" and done.explain.get("resolved_as") != "concept"
            )
            if worded and isinstance(part.value, str):
                words += unknown_words(part.value)
        if not words:
            return []
        warning = out_of_domain_warning(list(dict.fromkeys(words)))
        with self._domain_warned_lock:
            first, self._domain_warned = not self._domain_warned, True
        if first:
            logger.warning("%s", warning)
        return [warning]

    def _expand(
        self, query: np.ndarray, where: PayloadFilter | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        top = self.store.search(query, limit=self.settings.expand_top, where=where)
        if not top:
            return query, {"applied": False, "reason": "no images to expand from"}
        vectors = self.stored_vectors([p.id for p in top])
        weight = self.settings.expand_weight
        expanded = unit((1.0 - weight) * query + weight * unit(vectors.mean(axis=0)))
        info = {"applied": True, "from": [p.id for p in top], "weight": weight}
        return expanded, info

    def _collapse_threshold(self, collapse: bool | float) -> float | None:
        if collapse is False or collapse is None:
            return None
        if collapse is True:
            return self.settings.duplicate_threshold
        value = float(collapse)
        if not 0.0 < value <= 1.0:
            raise QueryError(f"a duplicate threshold lies in (0, 1], not {value}")
        return value

    def _search_filtered(
        self,
        searched: np.ndarray,
        query: np.ndarray,
        *,
        k: int,
        offset: int,
        where: PayloadFilter | None,
        threshold: float | None,
        collapse: float | None,
        expanded: bool,
    ) -> tuple[list[ScoredPoint], int]:
        """Search more candidates than asked, then drop some and page: for rules that need the
        hits' vectors (the un-expanded threshold, near-duplicate collapse)."""
        limit = max(_MIN_CANDIDATES, _CANDIDATE_FACTOR * (offset + k))
        candidates = self.store.search(
            searched, limit=limit, where=where, score_threshold=None if expanded else threshold
        )
        if not candidates:
            return [], 0
        vectors = self.stored_vectors([p.id for p in candidates])
        keep = np.ones(len(candidates), bool)
        if expanded and threshold is not None:
            keep &= vectors @ query >= threshold
        kept: list[int] = []
        collapsed = 0
        for index in np.flatnonzero(keep):
            if (
                collapse is not None
                and kept
                and float(np.max(vectors[kept] @ vectors[index])) >= (collapse)
            ):
                collapsed += 1
                continue
            kept.append(int(index))
        return [candidates[i] for i in kept[offset : offset + k]], collapsed

    # -- single-kind shortcuts -----------------------------------------------------------------

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
        """Zero-shot search: images that match a description."""
        return self.query([QueryPart("text", text)], **options).hits

    def search_image(self, image: ImageInput, **options: Any) -> list[Hit]:
        """One-shot search: images that look like an example."""
        return self.query([QueryPart("image", image)], **options).hits

    def search_name(self, name: str, **options: Any) -> list[Hit]:
        """Search by a name (concept, description or prompt templates)."""
        return self.query([QueryPart("name", name)], **options).hits

    def search_similar(self, point_id: int, **options: Any) -> list[Hit]:
        """ "More like this": images near an indexed image, by its id."""
        return self.query([QueryPart("id", point_id)], **options).hits


def is_frame(point: ScoredPoint) -> bool:
    """True when a point is a frame of a video (payload ``kind: "video"``)."""
    return point.payload.get("kind") == "video"


def group_video_hits(
    fetch: Callable[[int, int], tuple[list[ScoredPoint], int]], *, k: int, offset: int
) -> tuple[list[Hit], int]:
    """One hit per video: its best frame, with the others among the candidates as moments.

    Searches the best ``offset + k`` points first; only when they hold frames are more candidates
    fetched (4x, up to :data:`_GROUP_MAX_CANDIDATES`) until the grouped page is full, so a
    collection of images alone answers exactly as before.

    Args:
        fetch: ``fetch(limit, offset)``: the best points and how many duplicates were dropped.
        k: Hits in the page.
        offset: Grouped hits to skip.

    Returns:
        The page of hits, and the count of dropped near-duplicates.
    """
    found, collapsed = fetch(k, offset) if offset == 0 else fetch(offset + k, 0)
    if not any(is_frame(p) for p in found):
        page = found[offset:]
        return [Hit(p.id, str(p.payload.get("uri", "")), p.score, p.payload) for p in page], (
            collapsed
        )
    limit = max(_MIN_CANDIDATES, _CANDIDATE_FACTOR * (offset + k))
    while True:
        found, collapsed = fetch(limit, 0)
        hits = _grouped(found)
        if len(hits) >= offset + k or len(found) < limit or limit >= _GROUP_MAX_CANDIDATES:
            return hits[offset : offset + k], collapsed
        limit = min(_GROUP_MAX_CANDIDATES, limit * _CANDIDATE_FACTOR)


def _grouped(found: list[ScoredPoint]) -> list[Hit]:
    hits: list[Hit] = []
    videos: dict[str, Hit] = {}
    for point in found:
        uri = str(point.payload.get("uri", ""))
        if not is_frame(point):
            hits.append(Hit(point.id, uri, point.score, point.payload))
            continue
        best = videos.get(uri)
        if best is None:
            videos[uri] = best = Hit(point.id, uri, point.score, point.payload, [])
            hits.append(best)
        elif (
            best.moments is not None
            and len(best.moments) < _MAX_MOMENTS
            and point.score >= best.score - MOMENT_MARGIN
        ):
            t = point.payload.get("t")
            if isinstance(t, int | float):
                best.moments.append({"t": float(t), "score": round(point.score, 6)})
    return hits
