"""anyshot's search layer: the query engine and the Python client (the CLI and API wrap it).

Public names are imported lazily, so the CLI's ``--help`` does not load torch.
"""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "ImageSearch": "search.client",
    "create_app": "search.api",
    "Concept": "search.concepts",
    "DuplicateGroup": "search.results",
    "ExampleInput": "search.engine",
    "Hit": "search.results",
    "ImageInput": "search.engine",
    "PROMPT_TEMPLATES": "search.engine",
    "SearchEngine": "search.engine",
    "SearchResult": "search.results",
    "parse_filters": "search.filters",
    "KnowledgeBase": "search.knowledge",
    "KnowledgeEntry": "search.knowledge",
    "load_knowledge_base": "search.knowledge",
    "QueryPart": "search.query",
    "parse_query": "search.query",
    "TagReport": "search.results",
    "read_labels": "search.tagging",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
