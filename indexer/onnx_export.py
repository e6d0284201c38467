"""What exporting a tower to ONNX takes, whichever tower: a float32 copy of the model to
trace, ONNX Runtime's dynamic int8 quantization, and the metadata entry that makes a cached
file self-describing (used by :mod:`indexer.text_onnx_export` and
:mod:`indexer.image_onnx_export`; needs torch and onnx)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from indexer.errors import ModelError

if TYPE_CHECKING:
    from indexer.embed import Embedder

OPSET = 17
"""ONNX opset of the exports (LayerNormalization is a single op from 17 on)."""


def holds_only_fp32_cpu(parts: list[nn.Module], extra: list[torch.Tensor] | None = None) -> bool:
    """True when the modules (and extra tensors) are plain float32 on the CPU, with no
    quantized module: exportable as they are (a bf16 or int8 copy would export its rounding)."""
    tensors = [t for part in parts for t in part.state_dict().values()] + list(extra or [])
    plain = all(
        isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
        for t in tensors
    )
    quantized = any("quantized" in type(m).__module__ for part in parts for m in part.modules())
    return plain and not quantized


def load_fp32_copy(embedder: Embedder) -> nn.Module:
    """The embedder's weights loaded again, in float32 on the CPU, in eval mode.

    Raises:
        ModelError: The model cannot be loaded again.
    """
    import open_clip

    source = embedder.source
    cache_dir = embedder.settings.cache_dir
    try:
        fresh = open_clip.create_model(
            source.open_clip_name,
            pretrained=source.open_clip_pretrained,
            cache_dir=str(cache_dir) if cache_dir else None,
            **{f"image_{key}": value for key, value in source.preprocess.items()},
        )
    except Exception as exc:  # open_clip raises RuntimeError, ValueError, OSError, ...
        raise ModelError(f"cannot load {source.name} again in fp32 to export: {exc}") from exc
    return fresh.eval()


def quantize_weights(source: Path, target: Path, weight_type: str) -> Path:
    """ONNX Runtime's dynamic int8 quantization of ``source``'s weights into ``target``.

    Args:
        weight_type: ``QUInt8`` or ``QInt8`` (see :func:`indexer.cpu.int8_weight_type`).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Its advice to pre-process the graph first (for static quantization) is noise here.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(source, target, weight_type=getattr(QuantType, weight_type))
    finally:
        logging.disable(logging.NOTSET)
    return target


def write_with_metadata(source: Path, target: Path, key: str, value: str) -> None:
    """Copy an ONNX file with one metadata entry (every other entry dropped)."""
    import onnx

    model = onnx.load(str(source))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
    onnx.save(model, str(target))
