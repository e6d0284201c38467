"""anyshot's Prefect flows: they orchestrate the steps that live in :mod:`indexer`."""

from __future__ import annotations

from indexer.lazy_exports import lazy_exports

_EXPORTS = {
    "index_images": "pipelines.index_flow",
    "run_index_flow": "pipelines.index_flow",
    "train_generator": "pipelines.generator_flow",
    "serve_index_schedule": "pipelines.schedule",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
