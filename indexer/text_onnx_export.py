"""Export a loaded model's text tower to ONNX (the torch half of :mod:`indexer.text_onnx`).

The exported graph takes token ids ``(batch, length)`` with both dimensions dynamic, so a
query runs over its own dozen tokens rather than the whole context (the trimming of
:func:`indexer.embed.trimmed_text_encoder`), and returns the raw text features (the runtime
normalises them). Attention is written out with plain matrix products: torch's legacy
exporter bakes ``nn.MultiheadAttention``'s batch and length into its reshapes.

Only open_clip ``CLIP`` models with a causal, argmax-pooled text transformer of standard
residual attention blocks and open_clip's own CLIP BPE tokenizer are exported; anything else
keeps the torch path (:class:`TextTowerUnsupported`). The file is written to a temporary name
in the cache folder and renamed into place, so readers see a whole file or none.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional

from indexer.clip_tokenizer import ClipTokenizer
from indexer.errors import ModelError
from indexer.onnx_export import (
    OPSET,
    holds_only_fp32_cpu,
    load_fp32_copy,
    quantize_weights,
    write_with_metadata,
)
from indexer.text_onnx import (
    METADATA_KEY,
    TextPrecision,
    TextTowerInfo,
    TextTowerKey,
    text_tower_path,
)

if TYPE_CHECKING:
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

logger = logging.getLogger(__name__)

INT8_WEIGHTS = "QUInt8"
"""ONNX Runtime's weight type for int8 towers: unsigned weights kept cosine ≥ 0.9998 to fp32 on
ViT-B-32's image tower where signed ones lost more (0.988, AVX2 without VNNI saturates); see
bench/README.md for the text tower's figures."""

_TOKENIZER_PROBES = (
    "a red circle",
    "Héllo wörld! naïve café &amp; friends",
    "🐶 2024-01-01 it's <b>bold</b>",
)


class TextTowerUnsupported(ModelError):
    """A model whose text tower or tokenizer this exporter does not reproduce."""


class _TextTowerGraph(nn.Module):
    """open_clip CLIP's text tower, trimmed to the tokens given, with explicit attention."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.blocks = model.transformer.resblocks
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.register_buffer("attn_mask", model.attn_mask.float(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        mask = self.attn_mask[:length, :length]
        for block in self.blocks:
            x = x + block.ls_1(_self_attention(block.attn, block.ln_1(x), mask))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]  # the end token has the top id
        projection = self.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection


def _self_attention(attention: nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor):
    heads = attention.num_heads
    head_width = attention.embed_dim // heads
    qkv = functional.linear(x, attention.in_proj_weight, attention.in_proj_bias)
    q, k, v = (part.unflatten(-1, (heads, head_width)).transpose(1, 2) for part in qkv.chunk(3, -1))
    scores = (q * head_width**-0.5) @ k.transpose(-2, -1) + mask
    mixed = (scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(2)
    return attention.out_proj(mixed)


def check_exportable(model: nn.Module) -> None:
    """Refuse a model whose text tower :class:`_TextTowerGraph` would not reproduce.

    Raises:
        TextTowerUnsupported: Not an open_clip CLIP with a causal, argmax-pooled tower of
            standard self-attention blocks.
    """
    import open_clip
    from open_clip.transformer import ResidualAttentionBlock

    name = type(model).__name__
    if type(model) is not open_clip.CLIP or getattr(model, "text_pool_type", None) != "argmax":
        raise TextTowerUnsupported(f"{name}: only open_clip CLIP text towers are exported")
    if getattr(model, "attn_mask", None) is None or not model.transformer.batch_first:
        raise TextTowerUnsupported(f"{name}: the text transformer is not causal and batch-first")
    for block in model.transformer.resblocks:
        attention = getattr(block, "attn", None)
        if (
            type(block) is not ResidualAttentionBlock
            or hasattr(block, "ln_1_kv")
            or type(attention) is not nn.MultiheadAttention
            or not attention.batch_first
            or not attention._qkv_same_embed_dim
        ):
            raise TextTowerUnsupported(f"{name}: a text block of a kind the exporter does not know")


def check_tokenizer(tokenizer: object, context_length: int) -> None:
    """Refuse a tokenizer :class:`ClipTokenizer` does not reproduce exactly.

    Raises:
        TextTowerUnsupported: Not open_clip's CLIP BPE tokenizer with the ``lower`` cleaning,
            or tokens that differ on the probe texts.
    """
    from open_clip.tokenizer import SimpleTokenizer

    if (
        type(tokenizer) is not SimpleTokenizer
        or getattr(tokenizer, "reduction_fn", None) is not None
        or len(getattr(tokenizer, "all_special_ids", ())) != 2
        or getattr(getattr(tokenizer, "clean_fn", None), "__name__", "") != "_clean_lower"
    ):
        raise TextTowerUnsupported(
            f"{type(tokenizer).__name__}: only the CLIP BPE tokenizer is reproduced without torch"
        )
    ours = ClipTokenizer(context_length=context_length)
    theirs = tokenizer(list(_TOKENIZER_PROBES)).numpy()  # type: ignore[operator]
    if ours(_TOKENIZER_PROBES).tolist() != theirs.tolist():
        raise TextTowerUnsupported("the model's tokenizer gives other tokens than CLIP's BPE")


def fp32_text_model(embedder: Embedder) -> nn.Module:
    """The embedder's model when its text tower is float32 on the CPU, else the same weights
    loaded again in float32 (a bf16 or int8 tower would export its rounding)."""
    model = embedder.model
    parts = [model.token_embedding, model.transformer, model.ln_final]
    projection = model.text_projection
    extra = [projection] if isinstance(projection, torch.Tensor) else []
    return model if holds_only_fp32_cpu(parts, extra) else load_fp32_copy(embedder)


def export_text_tower(
    embedder: Embedder, settings: ModelSettings, precision: TextPrecision
) -> Path:
    """Export the embedder's text tower into the cache (see :mod:`indexer.text_onnx`).

    Args:
        embedder: The loaded model (its identity keys the export).
        settings: Model settings (the cache folder).
        precision: ``fp32``, or ``int8`` (ONNX Runtime's dynamic quantization of the weights).

    Returns:
        The cached file.

    Raises:
        ModelError: The model has no weights fingerprint, or cannot be loaded in fp32.
        TextTowerUnsupported: The model or its tokenizer is of a kind not exported.
        OSError: The cache folder cannot be written.
    """
    import open_clip

    key = TextTowerKey.for_identity(embedder.identity, precision)
    model = embedder.model
    if type(model) is not open_clip.CLIP:  # before loading anything again
        raise TextTowerUnsupported(
            f"{type(model).__name__}: only open_clip CLIP text towers are exported"
        )
    context_length = int(model.positional_embedding.shape[0])
    check_tokenizer(embedder._tokenizer, context_length)
    started = time.perf_counter()
    info = TextTowerInfo(
        key=key,
        dim=embedder.dim,
        image_size=embedder.image_size,
        context_length=context_length,
        logit_scale=_logit_scale(model),
    )
    target = text_tower_path(settings, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        exported = Path(scratch) / "fp32.onnx"
        # The tower must not be quantized (a first text query) while the graph is traced.
        with embedder.text_tower_lock:
            fp32_model = fp32_text_model(embedder)  # a bf16 or int8 tower is loaded again
            check_exportable(fp32_model)
            _export_graph(_TextTowerGraph(fp32_model).eval(), exported)
        if precision == "int8":
            exported = quantize_weights(exported, Path(scratch) / "int8.onnx", INT8_WEIGHTS)
        final = Path(scratch) / "final.onnx"
        write_with_metadata(exported, final, METADATA_KEY, info.to_json())
        os.replace(final, target)
    logger.info(
        "exported the %s text tower of %s in %.1f s: %s",
        precision,
        embedder.identity.label,
        time.perf_counter() - started,
        target,
    )
    return target


def _logit_scale(model: nn.Module) -> float:
    scale = getattr(model, "logit_scale", None)
    return float(scale.detach().float().exp()) if isinstance(scale, torch.Tensor) else 100.0


def _export_graph(graph: nn.Module, path: Path) -> None:
    tokens = torch.zeros((2, 5), dtype=torch.long)
    tokens[:, 0], tokens[:, -1] = 49406, 49407
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            graph,
            (tokens,),
            str(path),
            input_names=["tokens"],
            output_names=["features"],
            dynamic_axes={"tokens": {0: "batch", 1: "length"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
