"""Where the exported towers (:mod:`indexer.text_onnx`, :mod:`indexer.image_onnx`) are cached,
and how their files are named."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.config import default_cache_dir

if TYPE_CHECKING:
    from indexer.config import ModelSettings


def export_cache_dir(settings: ModelSettings, folder: str) -> Path:
    """``CACHE_DIR/anyshot/FOLDER`` when the model settings name a cache folder, else
    ``$XDG_CACHE_HOME/anyshot/FOLDER`` (``~/.cache``)."""
    if settings.cache_dir is not None:
        return Path(settings.cache_dir).expanduser() / "anyshot" / folder
    return default_cache_dir() / folder


def export_file_name(model: str, precision: str, key: dict[str, Any]) -> str:
    """``<readable model name>-<precision>-<digest of the whole key>.onnx``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model.rsplit("/", 1)[-1])[:40]
    return f"{readable or 'model'}-{precision}-{digest}.onnx"


def failure_note(path: Path) -> Path:
    """Where a failed export of ``path`` says why (``NAME.onnx.failed``): a model whose tower
    cannot be exported is not tried again after every query or run."""
    return path.with_name(path.name + ".failed")
