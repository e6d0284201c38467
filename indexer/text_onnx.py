"""A model's text tower exported to ONNX, cached, and run by ONNX Runtime without torch.

A text query from a new process used to pay for importing torch and loading the whole model
(seconds) to run a dozen tokens through the text tower (milliseconds). The text tower is
exported once per model and weights (:mod:`indexer.text_onnx_export`, which needs torch) into
a cache folder; a later query tokenizes with :class:`~indexer.clip_tokenizer.ClipTokenizer`
and runs the exported graph with ONNX Runtime, importing neither torch nor open_clip.

One file per export, ``TEXT_TOWERS/<model>-<digest>.onnx``, keyed by :class:`TextTowerKey`
(model name, pretrained tag, weights fingerprint, precision, export format). What the
export is for travels inside the file (ONNX metadata, :class:`TextTowerInfo`), so a file is
either whole and self-describing or unusable: unusable files are treated as missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from indexer.errors import ModelError, QueryError
from indexer.export_cache import export_cache_dir, export_file_name
from indexer.onnx_session import open_tower
from indexer.schema import ModelIdentity
from indexer.weights import (
    LOCAL_DIR_PREFIX,
    SHIPPED_MODELS,
    SHIPPED_MODELS_DIR,
    find_weights_in_dir,
    fingerprint_file,
    looks_like_path,
)

if TYPE_CHECKING:
    from indexer.clip_tokenizer import ClipTokenizer
    from indexer.config import ModelSettings

logger = logging.getLogger(__name__)

TEXT_TOWER_FORMAT = 1
"""The export format: bump it when the graph's inputs, outputs or metadata change."""

METADATA_KEY = "anyshot.text_tower"
"""The ONNX metadata entry that holds a :class:`TextTowerInfo` as JSON."""

TOKENIZER_CLIP_BPE = "clip-bpe"

TextPrecision = Literal["fp32", "int8"]


@dataclass(frozen=True)
class TextTowerKey:
    """What an exported text tower is for: a model, its weights, and a precision.

    Attributes:
        name: The model name (as in :class:`~indexer.schema.ModelIdentity`).
        pretrained: The pretrained tag or checkpoint file name, if any.
        fingerprint: The weights file's fingerprint (:func:`~indexer.weights.fingerprint_file`).
        precision: ``fp32``, or ``int8`` (dynamically quantized weights).
    """

    name: str
    pretrained: str | None
    fingerprint: str
    precision: TextPrecision

    @classmethod
    def for_identity(cls, identity: ModelIdentity, precision: TextPrecision) -> TextTowerKey:
        """The key of a model identity's tower.

        Raises:
            ModelError: The identity has no weights fingerprint (nothing to key the cache by).
        """
        if identity.fingerprint is None:
            raise ModelError(
                f"{identity.label} has no local weights file to fingerprint: its text tower "
                "is not exported (text queries use torch)"
            )
        return cls(identity.name, identity.pretrained, identity.fingerprint, precision)

    def file_name(self) -> str:
        """``<readable model name>-<precision>-<digest of the whole key>.onnx``."""
        fields = {**asdict(self), "format": TEXT_TOWER_FORMAT}
        return export_file_name(self.name, self.precision, fields)


@dataclass(frozen=True)
class TextTowerInfo:
    """What an export holds, stored in the file's ONNX metadata.

    Attributes:
        key: What it was exported for.
        dim: The embedding dimension.
        image_size: The model's image side (queries with images need it before they load it).
        context_length: Tokens per text, start and end included.
        logit_scale: The model's learned temperature, ``exp(logit_scale)`` (zero-shot tagging
            turns similarities into probabilities with it).
        tokenizer: How texts become tokens (``clip-bpe``: :class:`ClipTokenizer`).
        format: :data:`TEXT_TOWER_FORMAT` of the exporter.
    """

    key: TextTowerKey
    dim: int
    image_size: int
    context_length: int
    logit_scale: float = 100.0
    tokenizer: str = TOKENIZER_CLIP_BPE
    format: int = TEXT_TOWER_FORMAT

    def to_json(self) -> str:
        """The info as one JSON object."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TextTowerInfo:
        """Parse :meth:`to_json`'s output.

        Raises:
            ValueError: Not such an object.
        """
        data: dict[str, Any] = json.loads(text)
        key = TextTowerKey(**data.pop("key"))
        return cls(key=key, **data)


def text_tower_path(settings: ModelSettings, key: TextTowerKey) -> Path:
    """The cache file of a key."""
    return export_cache_dir(settings, "text-towers") / key.file_name()


def text_precision(settings: ModelSettings) -> TextPrecision:
    """The precision of the ONNX text tower: int8 exactly when the CPU text tower runs int8
    (:func:`indexer.cpu.text_tower_int8`), else fp32."""
    from indexer.cpu import text_tower_int8

    return "int8" if text_tower_int8(settings) else "fp32"


def local_weights(settings: ModelSettings) -> Path | None:
    """The weights file a model's settings name, when it is known without open_clip: a shipped
    model, a ``local-dir:`` folder, or a checkpoint file given as ``pretrained``; None for
    pretrained tags and hub models (open_clip's registry says where those are)."""
    if settings.name in SHIPPED_MODELS:
        return find_weights_in_dir(SHIPPED_MODELS_DIR / settings.name)
    if settings.name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(settings.name[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve()
        return find_weights_in_dir(folder) if folder.is_dir() else None
    pretrained = settings.pretrained
    if pretrained and (looks_like_path(pretrained) or Path(pretrained).is_file()):
        path = Path(pretrained).expanduser().resolve()
        return path if path.is_file() else None
    return None


def settings_tag(settings: ModelSettings) -> str | None:
    """The pretrained label the settings give (a checkpoint's file name, as the identity
    records it); None when they leave it to the architecture's default."""
    if not settings.pretrained:
        return None
    if looks_like_path(settings.pretrained):
        return Path(settings.pretrained).name
    return settings.pretrained


def tower_key_for_collection(
    settings: ModelSettings, collection: ModelIdentity
) -> TextTowerKey | None:
    """The key of the export that can answer text queries on a collection with these model
    settings, or None when no export can (the torch path then decides, and errs if the model
    does not fit the collection).

    The settings must name the collection's model; when they point at a local weights file,
    its fingerprint must be the collection's.
    """
    if collection.fingerprint is None or settings.name != collection.name:
        return None
    tag = settings_tag(settings)
    if tag is not None and tag != collection.pretrained:
        return None
    weights = local_weights(settings)
    if weights is not None:
        try:
            if fingerprint_file(weights) != collection.fingerprint:
                return None
        except OSError:
            return None
    return TextTowerKey.for_identity(collection, text_precision(settings))


class TextTowerUnusable(ModelError):
    """A cached export that cannot be used (damaged, or not what its name says)."""


class OnnxTextTower:
    """An exported text tower run by ONNX Runtime: texts → unit float32 rows.

    Args:
        path: The exported file.
        threads: ONNX Runtime's intra-op threads; None: its default (one per core).

    Raises:
        TextTowerUnusable: The file cannot be loaded, or holds no anyshot metadata.
    """

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self._session, self.info = open_tower(
            path,
            METADATA_KEY,
            TextTowerInfo.from_json,
            what="text tower",
            unusable=TextTowerUnusable,
            threads=threads,
        )
        if self.info.format != TEXT_TOWER_FORMAT or self.info.tokenizer != TOKENIZER_CLIP_BPE:
            raise TextTowerUnusable(f"{path}: export format {self.info.format} is not this one's")
        self.path = path
        self._input = self._session.get_inputs()[0].name
        self._tokenizer: ClipTokenizer | None = None

    @property
    def tokenizer(self) -> ClipTokenizer:
        """The CLIP tokenizer, built on first use."""
        if self._tokenizer is None:
            from indexer.clip_tokenizer import ClipTokenizer

            self._tokenizer = ClipTokenizer(context_length=self.info.context_length)
        return self._tokenizer

    def embed_texts(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts as :meth:`indexer.embed.Embedder.embed_texts` does.

        Each batch runs over the tokens up to its longest text's end token (the tower is
        causal and pools at the end token, so the padding after it changes nothing).

        Returns:
            A float32 array of shape (N, dim) with unit rows.

        Raises:
            QueryError: A text is empty or only whitespace.
        """
        if any(not text.strip() for text in texts):
            raise QueryError("empty text query")
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts))
        chunks = []
        for start in range(0, len(tokens), batch_size):
            batch = tokens[start : start + batch_size]
            length = int(batch.argmax(axis=1).max()) + 1  # the end token has the top id
            (features,) = self._session.run(None, {self._input: batch[:, :length]})
            features = np.asarray(features, dtype=np.float32)
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            chunks.append(features / np.maximum(norms, 1e-12))
        return np.concatenate(chunks).astype(np.float32, copy=False)


def load_text_tower(
    settings: ModelSettings, key: TextTowerKey, *, threads: int | None = None
) -> OnnxTextTower | None:
    """The cached export of a key; None when there is none.

    Raises:
        TextTowerUnusable: A file is there but cannot be used (damaged, or made for another
            key): the caller treats it as missing and may export again over it.
    """
    path = text_tower_path(settings, key)
    if not path.is_file():
        return None
    tower = OnnxTextTower(path, threads=threads)
    if tower.info.key != key:
        raise TextTowerUnusable(f"{path} was exported for {tower.info.key}, not for {key}")
    return tower
