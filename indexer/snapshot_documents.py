"""The documents a snapshot carries beside its Parquet shards: the collection's concepts.

``anyshot export`` writes ``documents.json`` next to the shards when the collection has
registered concepts (:mod:`search.concepts`)::

    {"format": 1, "model": {...the collection's model...},
     "documents": {"concepts": {"format": 1, "concepts": [{"name", "examples", "created",
                                                          "vectors"}, ...]}}}

Only the documents named in :data:`CARRIED_DOCUMENTS` travel. The store's trusted roots
(:mod:`indexer.trusted_roots`) never do: a snapshot that names them, or any other document, has
it refused. Like the shards, a snapshot may come from anywhere: each concept must hold one to
:data:`MAX_EXAMPLES` unit vectors of the collection's dimension, finite, with a name and
example labels of sane lengths, else it is refused with a reason and never written.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.access import open_regular_file
from indexer.errors import ImageDecodeError
from indexer.schema import ModelIdentity
from indexer.shard_checks import MAX_URI_CHARS, vector_refusals
from indexer.stores.interface import VectorStore

DOCUMENTS_FILE = "documents.json"
"""The file of a snapshot folder that holds its documents."""
FORMAT_VERSION = 1

CONCEPTS_DOCUMENT = "concepts"
"""The name of the concepts document kept with a collection."""
CONCEPTS_FORMAT = 1
"""The format of the concepts document (``search.concepts`` writes it)."""
CARRIED_DOCUMENTS = (CONCEPTS_DOCUMENT,)
"""The documents a snapshot carries; everything else a store keeps stays with the store."""

MAX_DOCUMENTS_BYTES = 64 * 2**20
MAX_CONCEPTS = 10_000
MAX_EXAMPLES = 1_000
MAX_NAME_CHARS = 1_000


@dataclass
class DocumentsVerdict:
    """What a snapshot's documents file offers and what of it is refused.

    Attributes:
        concepts: Concept entries that passed every check, as stored in the document.
        rejected: ``{document, name, reason}`` for each refused concept or document.
    """

    concepts: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def snapshot_content(store: VectorStore) -> dict[str, Any]:
    """What ``documents.json`` of a snapshot of ``store`` holds: format, model and the carried
    documents (``documents`` is empty when the collection has none to carry).

    Raises:
        StoreNotFoundError: The store holds no collection.
    """
    documents = {
        name: document
        for name in CARRIED_DOCUMENTS
        if (document := store.read_document(name)) is not None
    }
    return {
        "format": FORMAT_VERSION,
        "model": store.require_model().to_dict(),
        "documents": documents,
    }


def write_documents(store: VectorStore, folder: str | os.PathLike[str]) -> list[str]:
    """Write the carried documents of ``store`` into a snapshot folder.

    Returns:
        The names of the documents written (none when the collection has none).
    """
    content = snapshot_content(store)
    documents = content["documents"]
    if not documents:
        return []
    path = Path(folder) / DOCUMENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{DOCUMENTS_FILE}.tmp")
    tmp.write_text(json.dumps(content), encoding="utf-8")
    os.replace(tmp, path)
    return list(documents)


def read_documents(folder: str | os.PathLike[str], model: ModelIdentity | None) -> DocumentsVerdict:
    """Read and check a snapshot's documents file, if it has one.

    Args:
        folder: The snapshot folder.
        model: The store's model after its shards were loaded (None: the store is empty).

    Returns:
        The concepts that may be loaded and the reasons for everything refused.
    """
    verdict = DocumentsVerdict()
    path = Path(folder) / DOCUMENTS_FILE
    if not os.path.lexists(path):
        return verdict
    try:
        content = _read_json(path)
    except ValueError as exc:
        verdict.rejected.append({"document": DOCUMENTS_FILE, "name": None, "reason": str(exc)})
        return verdict
    documents = content.get("documents")
    if content.get("format") != FORMAT_VERSION or not isinstance(documents, dict):
        reason = f"not an anyshot documents file of format {FORMAT_VERSION}"
        verdict.rejected.append({"document": DOCUMENTS_FILE, "name": None, "reason": reason})
        return verdict
    for name in documents:
        if name not in CARRIED_DOCUMENTS:
            reason = "a snapshot may not carry this document: it stays with its store"
            verdict.rejected.append({"document": str(name)[:100], "name": None, "reason": reason})
    concepts = documents.get(CONCEPTS_DOCUMENT)
    if concepts is None:
        return verdict
    refusal = _model_refusal(content.get("model"), model)
    if refusal is None:
        refusal = _concepts_document_refusal(concepts)
    if refusal is not None:
        verdict.rejected.append({"document": CONCEPTS_DOCUMENT, "name": None, "reason": refusal})
        return verdict
    assert model is not None
    for item in concepts["concepts"]:
        reason = concept_refusal(item, model.dim)
        if reason is None:
            verdict.concepts.append(item)
        else:
            name = item.get("name") if isinstance(item, dict) else None
            shown = name[:100] if isinstance(name, str) else None
            refused = {"document": CONCEPTS_DOCUMENT, "name": shown, "reason": reason}
            verdict.rejected.append(refused)
    return verdict


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open_regular_file(str(path)) as (file, info):
            if info.st_size > MAX_DOCUMENTS_BYTES:
                raise ValueError(f"larger than {MAX_DOCUMENTS_BYTES} bytes")
            raw = file.read(MAX_DOCUMENTS_BYTES + 1)
    except ImageDecodeError as exc:
        raise ValueError(exc.reason) from exc
    if len(raw) > MAX_DOCUMENTS_BYTES:
        raise ValueError(f"larger than {MAX_DOCUMENTS_BYTES} bytes")
    try:
        content = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(content, dict):
        raise ValueError("not a JSON object")
    return content


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _model_refusal(stored: Any, model: ModelIdentity | None) -> str | None:
    if model is None:
        return "the store holds no collection to add concepts to"
    try:
        identity = ModelIdentity.from_dict(stored)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "no readable model in the documents file"
    if not identity.is_compatible(model):
        return f"concepts of model {identity.label!r}, but the store holds {model.label!r}"
    return None


def _concepts_document_refusal(document: Any) -> str | None:
    if not isinstance(document, dict) or document.get("format") != CONCEPTS_FORMAT:
        return f"not a concepts document of format {CONCEPTS_FORMAT}"
    items = document.get("concepts")
    if not isinstance(items, list):
        return "no list of concepts"
    if len(items) > MAX_CONCEPTS:
        return f"more than {MAX_CONCEPTS} concepts"
    return None


def concept_refusal(item: Any, dim: int) -> str | None:
    """Why one concept of a snapshot may not be stored, or None if it may.

    Args:
        item: An entry of the concepts document.
        dim: The collection's vector dimension.
    """
    if not isinstance(item, dict):
        return "not a concept (an object with name, examples and vectors)"
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        return f"the name is not a text of 1 to {MAX_NAME_CHARS} characters"
    examples = item.get("examples", [])
    if not isinstance(examples, list) or len(examples) > MAX_EXAMPLES:
        return f"examples is not a list of at most {MAX_EXAMPLES} labels"
    if not all(isinstance(e, str) and len(e) <= MAX_URI_CHARS for e in examples):
        return f"an example is not a text of at most {MAX_URI_CHARS} characters"
    created = item.get("created", 0.0)
    if isinstance(created, bool) or not isinstance(created, int | float):
        return "created is not a time"
    if not math.isfinite(created):
        return "created is not a finite time"
    vectors = item.get("vectors")
    if not isinstance(vectors, list) or not 1 <= len(vectors) <= MAX_EXAMPLES:
        return f"vectors is not a list of 1 to {MAX_EXAMPLES} vectors"
    if not all(isinstance(row, list) and len(row) == dim for row in vectors):
        return f"a vector is not a list of {dim} numbers (the collection's dimension)"
    if not all(
        isinstance(value, int | float) and not isinstance(value, bool)
        for row in vectors
        for value in row
    ):
        return "a vector holds something other than numbers"
    reasons = vector_refusals(np.asarray(vectors, dtype=np.float64), dim)
    return next((reason for reason in reasons if reason is not None), None)


def add_concepts(store: VectorStore, concepts: list[dict[str, Any]]) -> list[str]:
    """Add checked concepts to the store's concepts document; a snapshot's concept replaces
    one of the same name (case and spaces aside), as a snapshot's newer points do.

    Returns:
        The names added, in order.
    """
    if not concepts:
        return []
    current = store.read_document(CONCEPTS_DOCUMENT) or {
        "format": CONCEPTS_FORMAT,
        "concepts": [],
    }
    merged = {_lookup_key(item["name"]): item for item in current.get("concepts", [])}
    for item in concepts:
        merged[_lookup_key(item["name"])] = {
            "name": item["name"],
            "examples": list(item.get("examples", [])),
            "created": float(item.get("created", 0.0)),
            "vectors": item["vectors"],
        }
    ordered = sorted(merged.values(), key=lambda entry: entry["name"])
    store.write_document(CONCEPTS_DOCUMENT, {"format": CONCEPTS_FORMAT, "concepts": ordered})
    return [item["name"] for item in concepts]


def _lookup_key(name: str) -> str:
    # The same key as search.knowledge.normalise_name: concept names match case-insensitively.
    return re.sub(r"\s+", " ", name).strip().casefold()
