"""A model's image tower exported to ONNX, cached, and run by ONNX Runtime without torch.

An index run on the CPU used to spend seconds before its first image on importing torch,
torchvision and open_clip and building the model (about 3.5 s of a 300-photo run on 2 cores).
After the first run on torch, the image tower is exported once per model, weights, precision
and int8 weight type (:mod:`indexer.image_onnx_export`, which needs torch) into a cache
folder; later runs embed with :class:`OnnxImageModel`, importing neither torch nor open_clip.
The exported graph takes the decoding workers' uint8 pixels as they are and returns unit
vectors (scaling, normalisation and the final L2 norm are inside the graph).

One file per export, ``IMAGE_TOWERS/<model>-<precision>-<digest>.onnx``, keyed by
:class:`ImageTowerKey`, which is computed from the model settings alone (no model is loaded to
find the file). What the export is for travels inside it (:class:`ImageTowerInfo`), including
the weights file it was made from: a file whose weights changed since is unusable, and
unusable files are treated as missing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from indexer.batch_calibration import (
    CALIBRATE_FROM,
    UNCALIBRATED_BATCH,
    calibrated_batch,
    machine_key,
)
from indexer.cpu import int8_weight_type, resolve_cpu_precision
from indexer.errors import ModelError
from indexer.export_cache import export_cache_dir, export_file_name
from indexer.onnx_session import open_tower
from indexer.prepare import PixelPipeline, ResizeCrop
from indexer.schema import ModelIdentity
from indexer.weights import LOCAL_DIR_PREFIX, fingerprint_file, looks_like_path

if TYPE_CHECKING:
    from indexer.access import AccessPolicy
    from indexer.config import ModelSettings

logger = logging.getLogger(__name__)

IMAGE_TOWER_FORMAT = 1
"""The export format: bump it when the graph's inputs, outputs or metadata change."""

METADATA_KEY = "anyshot.image_tower"
"""The ONNX metadata entry that holds an :class:`ImageTowerInfo` as JSON."""

FLOAT_WEIGHTS = "float"

ImagePrecision = Literal["fp32", "int8"]


@dataclass(frozen=True)
class ImageTowerKey:
    """What an exported image tower is for, as the model settings say it.

    Attributes:
        model: The model name, with a ``local-dir:`` folder made absolute.
        pretrained: The pretrained tag, or an absolute checkpoint path, or None.
        cache_dir: The weights cache folder the settings name, if any.
        precision: ``fp32``, or ``int8`` (dynamically quantized weights).
        weight_type: ``float``, or ONNX Runtime's int8 weight type (``QInt8``, ``QUInt8``):
            which is faster and exact enough depends on the CPU.
    """

    model: str
    pretrained: str | None
    cache_dir: str | None
    precision: ImagePrecision
    weight_type: str

    def file_name(self) -> str:
        """``<readable model name>-<precision>-<digest of the whole key>.onnx``."""
        fields = {**asdict(self), "format": IMAGE_TOWER_FORMAT}
        return export_file_name(self.model, self.precision, fields)


def image_tower_key(settings: ModelSettings, precision: ImagePrecision) -> ImageTowerKey:
    """The key of the export that embeds images for these settings in ``precision``."""
    name = settings.name
    if name.startswith(LOCAL_DIR_PREFIX):
        name = LOCAL_DIR_PREFIX + str(Path(name[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve())
    pretrained = settings.pretrained or None
    if pretrained is not None and (looks_like_path(pretrained) or Path(pretrained).is_file()):
        pretrained = str(Path(pretrained).expanduser().resolve())
    cache_dir = str(Path(settings.cache_dir).expanduser().resolve()) if settings.cache_dir else None
    weight_type = int8_weight_type() if precision == "int8" else FLOAT_WEIGHTS
    return ImageTowerKey(name, pretrained, cache_dir, precision, weight_type)


@dataclass(frozen=True)
class ImageTowerInfo:
    """What an export holds, stored in the file's ONNX metadata.

    Attributes:
        key: What it was exported for.
        pretrained: The identity's pretrained label (tag or checkpoint file name).
        dim: The embedding dimension.
        fingerprint: The weights file's fingerprint when exported.
        weights_file: The weights file it was exported from (checked again on every load).
        image_size: The model's image side: the graph's input is (N, size, size, 3) uint8.
        resize_mode: How the decoding workers resize (:class:`~indexer.prepare.ResizeCrop`).
        interpolation: Their resampling filter.
        cosine_to_fp32: The lowest cosine of this export's vectors to the fp32 model's on the
            exporter's probe images (1.0 for fp32 exports up to rounding).
        format: :data:`IMAGE_TOWER_FORMAT` of the exporter.
    """

    key: ImageTowerKey
    pretrained: str | None
    dim: int
    fingerprint: str
    weights_file: str
    image_size: int
    resize_mode: str
    interpolation: str
    cosine_to_fp32: float
    format: int = IMAGE_TOWER_FORMAT

    def to_json(self) -> str:
        """The info as one JSON object."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ImageTowerInfo:
        """Parse :meth:`to_json`'s output.

        Raises:
            ValueError, TypeError, KeyError: Not such an object.
        """
        data: dict[str, Any] = json.loads(text)
        key = ImageTowerKey(**data.pop("key"))
        return cls(key=key, **data)


def image_tower_path(settings: ModelSettings, key: ImageTowerKey) -> Path:
    """The cache file of a key."""
    return export_cache_dir(settings, "image-towers") / key.file_name()


def onnx_image_precision(settings: ModelSettings) -> ImagePrecision | None:
    """The precision an ONNX image tower would run these settings in; None when images
    must go through torch (``image_runtime=torch``, CUDA, bf16 or fp16)."""
    from indexer.query_model import cuda_may_be_present

    if settings.image_runtime == "torch":
        return None
    if settings.device != "cpu" and not (settings.device == "auto" and not cuda_may_be_present()):
        return None
    precision = resolve_cpu_precision(settings.precision)
    return precision if precision in ("fp32", "int8") else None  # type: ignore[return-value]


class ImageTowerUnusable(ModelError):
    """A cached export that cannot be used (damaged, stale, or not what its name says)."""


def usable_threads(settings: ModelSettings) -> int:
    """The intra-op threads of a CPU model: the setting, else the cores this process may use."""
    if settings.threads:
        return settings.threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxImageModel:
    """An exported image tower run by ONNX Runtime: the face of an
    :class:`~indexer.embed.Embedder` that an index run uses (``identity``, ``dim``,
    ``image_size``, ``image_precision``, ``pixel_pipeline``, ``embed_pixels``,
    ``image_batch_size``).

    Args:
        path: The exported file.
        settings: The model settings (name as the collection records it, batch size, threads).

    Raises:
        ImageTowerUnusable: The file cannot be loaded, holds no anyshot metadata of this
            format, or its weights file is gone or changed.
    """

    def __init__(self, path: Path, settings: ModelSettings) -> None:
        self.settings = settings
        self.threads = usable_threads(settings)
        self._session, self.info = open_tower(
            path,
            METADATA_KEY,
            ImageTowerInfo.from_json,
            what="image tower",
            unusable=ImageTowerUnusable,
            threads=self.threads,
            inter_op_threads=1,  # spinning or extra threads take the decoding workers' cores
        )
        if self.info.format != IMAGE_TOWER_FORMAT:
            raise ImageTowerUnusable(f"{path}: export format {self.info.format} is not this one's")
        if not ResizeCrop.supports(self.info.resize_mode, self.info.interpolation):
            raise ImageTowerUnusable(f"{path}: preprocessing {self.info.resize_mode} unknown")
        weights = Path(self.info.weights_file)
        try:
            current = fingerprint_file(weights)
        except OSError as exc:
            raise ImageTowerUnusable(f"{path}: its weights file {weights} is gone") from exc
        if current != self.info.fingerprint:
            raise ImageTowerUnusable(f"{path}: its weights file {weights} changed since")
        self.path = path
        self._input = self._session.get_inputs()[0].name
        self.dim = self.info.dim
        self.image_size = self.info.image_size
        self.image_precision: str = self.info.key.precision
        self.identity = ModelIdentity(
            settings.name, self.info.pretrained, self.info.dim, self.info.fingerprint
        )
        self._image_batch: int | None = None
        self._calibration_read = False
        logger.info(
            "images of %s go through the ONNX export %s (%s, %d threads)",
            self.identity.label,
            path.name,
            self.info.key.precision,
            self.threads,
        )

    def pixel_pipeline(
        self,
        *,
        max_pixels: int,
        access: AccessPolicy | None = None,
        decode_timeout: float | None = None,
    ) -> PixelPipeline:
        """The decoding workers' half, as :meth:`indexer.embed.Embedder.pixel_pipeline`."""
        from indexer.access import AccessPolicy

        return PixelPipeline(
            pil_steps=ResizeCrop(self.image_size, self.info.resize_mode, self.info.interpolation),
            target_size=self.image_size,
            max_pixels=max_pixels,
            access=access if access is not None else AccessPolicy(),
            decode_timeout=decode_timeout,
        )

    def embed_pixels(self, pixels: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Embed uint8 images (N, S, S, 3) made by :meth:`pixel_pipeline`.

        Returns:
            A float32 array of shape (N, dim) with unit rows.
        """
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = batch_size or self.image_batch_size(len(pixels))
        chunks = []
        for start in range(0, len(pixels), size):
            batch = np.ascontiguousarray(pixels[start : start + size], dtype=np.uint8)
            (features,) = self._session.run(None, {self._input: batch})
            chunks.append(np.asarray(features, dtype=np.float32))
        return np.concatenate(chunks)

    def image_batch_size(self, count: int) -> int:
        """The forward batch: the setting, else measured once per machine and export (as
        :meth:`indexer.embed.Embedder.image_batch_size`)."""
        if isinstance(self.settings.batch_size, int):
            return self.settings.batch_size
        if self._image_batch is not None:
            return self._image_batch
        key = (
            f"{machine_key(self.threads)} {self.identity.label} {self.identity.fingerprint} "
            f"{self.image_size}px onnx-{self.info.key.precision}-{self.info.key.weight_type}"
        )
        if not self._calibration_read or count >= CALIBRATE_FROM:  # read once, measure once
            self._calibration_read = True
            self._image_batch = calibrated_batch(
                key,
                count,
                lambda pixels: self.embed_pixels(pixels, batch_size=len(pixels)),
                self.image_size,
            )
        return self._image_batch or UNCALIBRATED_BATCH

    def __repr__(self) -> str:
        return f"OnnxImageModel({self.identity.label}, {self.path.name})"


def load_image_tower(settings: ModelSettings, key: ImageTowerKey) -> OnnxImageModel | None:
    """The cached export of a key; None when there is none.

    Raises:
        ImageTowerUnusable: A file is there but cannot be used: the caller treats it as
            missing and may export again over it.
    """
    path = image_tower_path(settings, key)
    if not path.is_file():
        return None
    model = OnnxImageModel(path, settings)
    if model.info.key != key:
        raise ImageTowerUnusable(f"{path} was exported for {model.info.key}, not for {key}")
    return model


def find_image_tower(settings: ModelSettings, precision: ImagePrecision) -> OnnxImageModel | None:
    """The cached export that embeds images for these settings, if one is usable (an
    unusable one is logged, and exported again after the run)."""
    try:
        return load_image_tower(settings, image_tower_key(settings, precision))
    except ImageTowerUnusable as exc:
        logger.warning("%s; images go through torch, and the tower is exported again", exc)
        return None
