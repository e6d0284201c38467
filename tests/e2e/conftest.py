"""Fixtures of the end-to-end tests: a collection indexed with anyshot-tiny, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from shape_collection import write_shape_images


@pytest.fixture(scope="session")
def tiny_store_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """120 shape images indexed with anyshot-tiny into a folder store, built once.

    Returns:
        (images folder, store folder); copy the store before opening it in a test that writes.
    """
    from indexer.config import build_settings
    from search.client import ImageSearch

    root = tmp_path_factory.mktemp("tiny-collection")
    images = root / "images"
    write_shape_images(images, 120)
    store = root / "store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == 120
    return images, store
