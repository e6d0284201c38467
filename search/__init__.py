"""anyshot's search layer: the query engine and the Python client (the CLI and API wrap it).

``connect(location)`` opens a collection wherever it is (a store folder, ``:memory:``, a Qdrant
server, or a running ``anyshot serve``) and returns a client with one face
(:class:`CollectionClient`). Public names are imported lazily, so the CLI's ``--help`` does not
load torch.
"""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "ImageSearch": "search.client",
    "CollectionClient": "search.face",
    "RemoteImageSearch": "search.remote_client",
    "connect": "search.connection",
    "create_app": "search.api",
    "Concept": "search.concepts",
    "DuplicateGroup": "search.results",
    "ExampleInput": "search.query",
    "Hit": "search.results",
    "ImageInput": "search.query",
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
    "read_labels": "search.labels",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
