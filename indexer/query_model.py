"""The model a query needs, loaded no further than the query goes.

A text query needs the text tower only: :class:`QueryModel` answers texts through the ONNX
export of the collection's model (:mod:`indexer.text_onnx`, no torch) and loads the whole
model (:class:`~indexer.embed.Embedder`, torch) the first time an image must be embedded.
It has the face of an ``Embedder`` that the query engine uses: ``identity``, ``image_size``,
``dim``, ``embed_texts``, ``embed_images``, ``embed_pixels`` and ``model``, and the model's
``logit_scale`` (for zero-shot tagging, which then needs no torch either).

Which path answers text queries is ``ModelSettings.text_runtime``: ``torch``; ``onnx``;
``auto``: ONNX when an export for the collection's model and weights is cached and the model
runs on the CPU (:func:`onnx_text_wanted`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.schema import ModelIdentity
from indexer.text_onnx import (
    OnnxTextTower,
    TextTowerKey,
    TextTowerUnusable,
    load_text_tower,
    tower_key_for_collection,
)

if TYPE_CHECKING:
    from PIL import Image

    from indexer.config import ModelSettings
    from indexer.embed import Embedder

logger = logging.getLogger(__name__)

NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def cuda_may_be_present() -> bool:
    """True when this machine may run ``device=auto`` models on CUDA (an NVIDIA driver is
    loaded and CUDA_VISIBLE_DEVICES hides no device), read without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in {"", "-1"}:
        return False
    return NVIDIA_DRIVER.exists()


def onnx_text_wanted(settings: ModelSettings) -> bool:
    """Whether text queries should go through an ONNX export (when one can be had)."""
    if settings.text_runtime == "onnx":
        return True
    if settings.text_runtime == "torch":
        return False
    return settings.device == "cpu" or (settings.device == "auto" and not cuda_may_be_present())


class QueryModel:
    """Texts through an exported text tower; images through the model, loaded on first need.

    Args:
        tower: The collection's exported text tower.
        load_model: Loads the whole model (called at most once, on the first image).
        batch_size: Texts per forward pass.
    """

    def __init__(
        self, tower: OnnxTextTower, load_model: Callable[[], Embedder], *, batch_size: int = 64
    ) -> None:
        key = tower.info.key
        self.tower = tower
        self.identity = ModelIdentity(key.name, key.pretrained, tower.info.dim, key.fingerprint)
        self.dim = tower.info.dim
        self.image_size = tower.info.image_size
        self.logit_scale = tower.info.logit_scale
        self._load_model = load_model
        self._batch_size = batch_size
        self._model: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        """The whole model (torch), loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = self._load_model()
            return self._model

    @property
    def model(self) -> Any:
        """The open_clip model (loads it)."""
        return self.embedder.model

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts through the exported tower (float32 unit rows)."""
        return self.tower.embed_texts(texts, batch_size=self._batch_size)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed images with the whole model (loads it)."""
        return self.embedder.embed_images(images)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed prepared pixels with the whole model (loads it)."""
        return self.embedder.embed_pixels(pixels)

    def __repr__(self) -> str:
        return f"QueryModel({self.identity.label}, text tower {self.tower.path.name})"


def find_text_tower(
    settings: ModelSettings, collection: ModelIdentity
) -> tuple[TextTowerKey | None, OnnxTextTower | None]:
    """The cached export that answers text queries on a collection, if there is one.

    Returns:
        ``(key, tower)``: the key is None when no export can serve these settings (no
        weights fingerprint, other weights or another model than the collection's); the
        tower is None when none is cached or the cached file is unusable (logged).
    """
    key = tower_key_for_collection(settings, collection)
    if key is None:
        return None, None
    try:
        return key, load_text_tower(settings, key, threads=settings.threads)
    except TextTowerUnusable as exc:
        logger.warning("%s; text queries use torch, and the tower is exported again", exc)
        return key, None
