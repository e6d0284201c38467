"""The generator flow: train the collection's generator of visual features under Prefect.

One task wraps :func:`indexer.generator_train.train_store_generator`; schedule it after an index
run so that ``search --generate`` follows the collection as new captioned images arrive.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from indexer.config import Settings, model_for_collection
from indexer.generator_train import TrainOptions, train_store_generator
from indexer.stores.opening import open_store


@task(name="train-generator", cache_policy=NO_CACHE)
def train_generator_task(
    settings: Settings, captions: str | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Train and keep the generator of the collection at ``settings.store``.

    Returns:
        The report (``pairs``, ``seconds``, ``epochs``, ``loss``, ``file``, ...).
    """
    from indexer.embed import Embedder

    with open_store(settings.store, hold=True) as store:
        stored = store.require_model()
        embedder = Embedder(model_for_collection(settings.model, stored.name, stored.pretrained))
        options = TrainOptions(epochs=epochs or TrainOptions.epochs, threads=settings.model.threads)
        report = train_store_generator(
            store, embedder.embed_texts, embedder.identity, captions_file=captions, options=options
        )
    return report.to_dict()


@flow(name="train-generator", persist_result=False, log_prints=False)
def train_generator(
    settings: Settings | None = None, captions: str | None = None, epochs: int | None = None
) -> dict[str, Any]:
    """Train the collection's generator (``anyshot generator train`` as a flow)."""
    return train_generator_task(settings or Settings(), captions, epochs)
