"""Export a loaded model's image tower to ONNX (the torch half of :mod:`indexer.image_onnx`).

The graph takes the decoding workers' pixels, uint8 (batch, size, size, 3) with the batch
dynamic, and returns unit float32 vectors: the scaling, the model's mean/std normalisation
and the final L2 norm are part of the graph, so the runtime only feeds and reads arrays.
Any open_clip image tower that traces is accepted, but only after its export agrees with the
torch model on probe images (cosine ≥ :data:`FP32_AGREEMENT`): a tower the tracer gets wrong
keeps the torch path. int8 exports are ONNX Runtime's dynamic quantization of the weights,
with the weight type that suits this CPU (:func:`indexer.cpu.int8_weight_type`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from indexer.errors import ModelError
from indexer.image_onnx import (
    METADATA_KEY,
    ImagePrecision,
    ImageTowerInfo,
    image_tower_key,
    image_tower_path,
)
from indexer.onnx_export import (
    OPSET,
    holds_only_fp32_cpu,
    load_fp32_copy,
    quantize_weights,
    write_with_metadata,
)
from indexer.prepare import ResizeCrop

if TYPE_CHECKING:
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

logger = logging.getLogger(__name__)

FP32_AGREEMENT = 0.9999
"""Lowest cosine of the fp32 export's vectors to torch's on the probe images."""

INT8_AGREEMENT = 0.98
"""Lowest cosine of the int8 export's vectors to fp32's: below it the quantization broke the
tower (healthy exports measure ≥ 0.999 on ViT-B-32), and the export is refused."""


class ImageTowerUnsupported(ModelError):
    """A model whose image tower is not exported (its preprocessing or graph)."""


class _ImageTowerGraph(nn.Module):
    """uint8 NHWC pixels → unit image vectors, through an open_clip image tower."""

    def __init__(self, visual: nn.Module, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.visual = visual
        shape = (1, 3, 1, 1)
        self.register_buffer("offset", torch.tensor(mean).view(shape) * 255.0, persistent=False)
        self.register_buffer("scale", torch.tensor(std).view(shape) * 255.0, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() - self.offset) / self.scale
        features = self.visual(x)
        return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def probe_pixels(image_size: int) -> np.ndarray:
    """Three probe images: noise, a smooth gradient, and flat grey."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, image_size, dtype=np.float32)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), -1)
    grey = np.full((image_size, image_size, 3), 128, dtype=np.uint8)
    return np.stack([noise, gradient.astype(np.uint8), grey])


def export_image_tower(
    embedder: Embedder, settings: ModelSettings, precision: ImagePrecision
) -> Path:
    """Export the embedder's image tower into the cache (see :mod:`indexer.image_onnx`).

    Args:
        embedder: The loaded model (any precision: a bf16 or int8 one is loaded again in fp32).
        settings: The model settings the export is keyed by (name, pretrained, cache folder).
        precision: ``fp32``, or ``int8``.

    Returns:
        The cached file.

    Raises:
        ModelError: No local weights file to check the export against later, or the model
            cannot be loaded again in fp32.
        ImageTowerUnsupported: Preprocessing the workers do not reproduce, a graph the tracer
            cannot export, or an export that disagrees with torch.
        OSError: The cache folder cannot be written.
    """
    weights = embedder.source.weights_file
    fingerprint = embedder.identity.fingerprint
    if weights is None or fingerprint is None:
        raise ModelError(f"{embedder.identity.label} has no local weights file to export from")
    steps = embedder.pixel_pipeline(max_pixels=1).pil_steps
    if not isinstance(steps, ResizeCrop):
        raise ImageTowerUnsupported(f"{embedder.source.name}: preprocessing of another kind")
    normalize = embedder.preprocess.transforms[-1]
    started = time.perf_counter()
    key = image_tower_key(settings, precision)
    model = embedder.model
    if not holds_only_fp32_cpu([model.visual]):
        model = load_fp32_copy(embedder)  # a bf16 or int8 tower would export its rounding
    graph = _ImageTowerGraph(model.visual, tuple(normalize.mean), tuple(normalize.std)).eval()
    probes = probe_pixels(embedder.image_size)
    with torch.inference_mode():
        expected = graph(torch.from_numpy(probes)).numpy()
    target = image_tower_path(settings, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        exported = Path(scratch) / "fp32.onnx"
        _export_graph(graph, exported, embedder.image_size)
        agreement = _lowest_cosine(exported, probes, expected)
        if agreement < FP32_AGREEMENT:
            raise ImageTowerUnsupported(
                f"{embedder.source.name}: the exported image tower disagrees with torch "
                f"(cosine {agreement:.4f})"
            )
        if precision == "int8":
            exported = quantize_weights(exported, Path(scratch) / "int8.onnx", key.weight_type)
            agreement = _lowest_cosine(exported, probes, expected)
            if agreement < INT8_AGREEMENT:
                raise ImageTowerUnsupported(
                    f"{embedder.source.name}: int8 ({key.weight_type}) moves image vectors too "
                    f"far from fp32 (cosine {agreement:.4f})"
                )
        info = ImageTowerInfo(
            key=key,
            pretrained=embedder.identity.pretrained,
            dim=embedder.dim,
            fingerprint=fingerprint,
            weights_file=str(Path(weights).resolve()),
            image_size=embedder.image_size,
            resize_mode=steps.mode,
            interpolation=steps.interpolation,
            cosine_to_fp32=round(agreement, 6),
        )
        final = Path(scratch) / "final.onnx"
        write_with_metadata(exported, final, METADATA_KEY, info.to_json())
        os.replace(final, target)
    logger.info(
        "exported the %s image tower of %s in %.1f s (cosine to fp32 %.4f): %s",
        precision,
        embedder.identity.label,
        time.perf_counter() - started,
        agreement,
        target,
    )
    return target


def _export_graph(graph: nn.Module, path: Path, image_size: int) -> None:
    pixels = torch.zeros((2, image_size, image_size, 3), dtype=torch.uint8)
    try:
        # Not under no_grad: there, nn.MultiheadAttention takes its fused inference path,
        # whose operator has no ONNX export.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                graph,
                (pixels,),
                str(path),
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # the tracer raises RuntimeError, TypeError, its own errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageTowerUnsupported(f"the image tower does not export: {first}") from exc


def _lowest_cosine(path: Path, probes: np.ndarray, expected: np.ndarray) -> float:
    """The lowest cosine between the export's vectors and ``expected``, run one probe alone and
    the rest as a batch (a batch size baked into the graph shows up here)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    try:
        single = session.run(None, {name: probes[:1]})[0]
        rest = session.run(None, {name: probes[1:]})[0]
    except Exception as exc:  # ORT's own errors: a shape the tracer fixed
        raise ImageTowerUnsupported(f"the exported image tower does not run: {exc}") from exc
    got = np.concatenate([single, rest]).astype(np.float64)
    want = expected.astype(np.float64)
    cosines = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return float(np.nan_to_num(cosines, nan=-1.0).min())
