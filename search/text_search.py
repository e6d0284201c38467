"""Searches by the text inside images (``ocr``): alone, or beside a description, an image and
filters.

The images searched are those whose payload holds ``text`` (read by an index run with OCR
on, :mod:`indexer.ocr`) and that pass the request's filters; each is matched word by word
(:func:`indexer.ocr.match_words`: case-insensitive, a word inside a longer one, one wrong
character in words of five letters or more).

**Score.** A hit's ``score`` is the fraction of the query's words its text holds (1.0: all of
them); images holding none are not hits. Equal fractions are ordered by the semantic score
when the request also has a query (a description, an image, a name, an id: only images that
it ranks are then hits, so its ``threshold`` applies), else by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from indexer.ocr import match_words, query_words
from indexer.stores.interface import PayloadFilter, VectorStore
from search.results import Hit, SearchResult

MAX_SEMANTIC_CANDIDATES = 10_000
"""The most text-matching images a semantic query ranks (those with the best fractions)."""

SemanticSearch = Callable[[PayloadFilter, int], list[Hit]]
"""Ranks the images a filter lets through by the request's query: ``(where, k) -> hits``."""


def text_matches(
    store: VectorStore, words: list[str], where: PayloadFilter | None
) -> list[tuple[float, int, dict[str, Any]]]:
    """The images whose text holds at least one of ``words``: ``(fraction, id, payload)``,
    best fraction first, then by id."""
    base = where or PayloadFilter()
    scope = replace(base, present=tuple(dict.fromkeys((*base.present, "text"))))
    found = []
    for point in store.scroll(where=scope):
        text = point.payload.get("text")
        if not isinstance(text, str):
            continue
        fraction = match_words(words, text)
        if fraction > 0:
            found.append((fraction, point.id, point.payload))
    found.sort(key=lambda match: (-match[0], match[1]))
    return found


def search_text_inside(
    store: VectorStore,
    ocr: str,
    *,
    where: PayloadFilter | None,
    k: int,
    offset: int = 0,
    semantic: SemanticSearch | None = None,
) -> SearchResult:
    """The images whose text holds the words of ``ocr``, best first (see the module's score).

    Args:
        store: The collection.
        ocr: The words to find.
        where: The request's filters.
        k: How many hits.
        offset: How many of the best to skip.
        semantic: The request's other query, when it has one.

    Raises:
        QueryError: No word in ``ocr``, too many, or one too long.
    """
    words = query_words(ocr)
    store.require_model()
    matches = text_matches(store, words, where)
    explain: dict[str, Any] = {"ocr": words, "text_matches": len(matches)}
    if semantic is None or not matches:
        window = matches[offset : offset + k]
        hits = [Hit(pid, str(p.get("uri", "")), fraction, p) for fraction, pid, p in window]
        return SearchResult(hits, explain)
    candidates = matches[:MAX_SEMANTIC_CANDIDATES]
    fractions = {pid: fraction for fraction, pid, _ in candidates}
    ids = tuple(fractions)
    if where is not None and where.ids:
        allowed = set(where.ids)
        ids = tuple(i for i in ids if i in allowed)
    if not ids:  # an empty id filter would let every image through
        return SearchResult([], explain)
    ranked = semantic(replace(where or PayloadFilter(), ids=ids), len(ids))
    ranked.sort(key=lambda hit: (-fractions.get(hit.id, 0.0), -hit.score))
    hits = [
        Hit(hit.id, hit.uri, fractions.get(hit.id, 0.0), hit.payload)
        for hit in ranked[offset : offset + k]
    ]
    explain["semantic_scores"] = {hit.id: round(hit.score, 6) for hit in hits}
    return SearchResult(hits, explain)
