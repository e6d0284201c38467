"""anyshot's Prefect flows: they orchestrate the steps that live in :mod:`indexer`."""

__all__: list[str] = []
