"""Zero-shot tagging: give every image of a collection its best labels from a list.

Each label is embedded through the prompt templates; each image's similarities to the labels
become probabilities with the model's own logit scale (a softmax over the labels, as CLIP's
zero-shot classifier does), so scores are comparable across models and label lists and
``min_score`` is a probability. The ``top`` best labels at or above ``min_score`` are written to
the payload key ``tags`` (replacing earlier tags; filterable: ``tag=LABEL``) and their scores to
``tag_scores``. With a single label every image gets it (probability 1): give several labels,
or a catch-all one such as ``"something else"``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.errors import QueryError
from indexer.progress import ProgressCallback
from search.engine import PROMPT_TEMPLATES, SearchEngine, unit
from search.labels import read_labels as read_labels  # its old home, still importable
from search.results import TagReport

TAG_SCORES_KEY = "tag_scores"


def tag_images(
    engine: SearchEngine,
    labels: Sequence[str],
    *,
    top: int = 1,
    min_score: float | None = None,
    batch_size: int = 1024,
    progress: ProgressCallback | None = None,
) -> TagReport:
    """Tag every image of the engine's collection with its best labels.

    Args:
        engine: The engine (store and model).
        labels: The labels (at least one; duplicates and blanks are dropped).
        top: How many best labels an image may get.
        min_score: Minimum probability of a label (0–1); None: no minimum.
        batch_size: Images read and written together.
        progress: Called as ``progress(done, total)``.

    Raises:
        QueryError: No labels, ``top`` < 1 or ``min_score`` outside [0, 1].
    """
    started = time.monotonic()
    labels = list(dict.fromkeys(str(label).strip() for label in labels if str(label).strip()))
    if not labels:
        raise QueryError("no labels to tag with")
    if top < 1:
        raise QueryError(f"top must be at least 1, not {top}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise QueryError(f"min_score is a probability in [0, 1], not {min_score}")
    prompts = [template.format(label) for label in labels for template in PROMPT_TEMPLATES]
    per_prompt = engine.embed_texts(prompts).reshape(len(labels), len(PROMPT_TEMPLATES), -1)
    label_vectors = np.stack([unit(v.mean(axis=0)) for v in per_prompt])
    scale = _logit_scale(engine)
    store = engine.store
    total = store.count()
    counts: Counter[str] = Counter()
    done = tagged = 0
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []

    def write() -> None:
        nonlocal done, tagged
        if not ids:
            return
        logits = scale * (np.stack(vectors) @ label_vectors.T)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        order = np.argsort(-probabilities, axis=1)[:, :top]
        for row, payload in enumerate(payloads):
            chosen = [
                (labels[j], float(probabilities[row, j]))
                for j in order[row]
                if min_score is None or probabilities[row, j] >= min_score
            ]
            payload["tags"] = [label for label, _ in chosen]
            payload[TAG_SCORES_KEY] = {label: round(score, 6) for label, score in chosen}
            counts.update(payload["tags"])
            tagged += bool(chosen)
        # One upsert per batch (vectors unchanged): per-point payloads in one store call.
        store.upsert(ids, np.stack(vectors), payloads)
        done += len(ids)
        ids.clear()
        vectors.clear()
        payloads.clear()
        if progress is not None:
            progress(done, total)

    for point in store.scroll(batch_size=batch_size, with_vectors=True):
        if point.vector is None:
            continue
        ids.append(point.id)
        vectors.append(point.vector)
        payloads.append(dict(point.payload))
        if len(ids) >= batch_size:
            write()
    write()
    store.flush()
    store.optimize()  # rewritten points leave the HNSW index until it is rebuilt
    ranked = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    ranked |= {label: 0 for label in labels if label not in ranked}
    return TagReport(labels, done, tagged, ranked, time.monotonic() - started)


def _logit_scale(engine: SearchEngine) -> float:
    known = getattr(engine.embedder, "logit_scale", None)  # a QueryModel's, from the export
    if isinstance(known, float):
        return known
    scale = getattr(engine.embedder.model, "logit_scale", None)
    try:
        return float(scale.detach().exp()) if scale is not None else 100.0
    except (AttributeError, TypeError):
        return 100.0
