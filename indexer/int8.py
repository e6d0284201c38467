"""int8 towers for CPUs without fast bf16 (``precision=int8``, ``ModelSettings.text_int8``).

Every linear layer of a tower's transformer becomes a dynamically quantized one (int8 weights,
activation scales computed per call, fbgemm kernels), including the attention projections,
which ``nn.MultiheadAttention`` keeps as raw parameters and which :class:`Int8SelfAttention`
therefore re-wraps as linear layers. The patch embedding, layer norms and final projections
stay in fp32. On AVX2 cores the image tower runs ~1.7x faster than fp32 with embeddings within
cosine 0.999 of fp32; a text query, which runs a dozen tokens and so mostly reads weights,
~3x faster.

Only :func:`indexer.embed.trimmed_text_encoder` may run a quantized text tower: open_clip's own
``encode_text`` reads its dtype from a linear layer's weight, which quantized layers lack.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def _quantized(layer: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        # In place: no second fp32 copy of the tower while it is converted.
        return torch.ao.quantization.quantize_dynamic(
            layer, {nn.Linear}, dtype=torch.qint8, inplace=True
        )


class Int8SelfAttention(nn.Module):
    """Self-attention of a batch-first ``nn.MultiheadAttention``, projections in int8.

    Called like the module it replaces (``attn(q, k, v, need_weights=False, attn_mask=...)``,
    returning ``(output, None)``); ``k`` and ``v`` are ignored: it serves self-attention only.
    """

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        width = attention.embed_dim
        self.heads = attention.num_heads
        qkv = nn.Linear(width, 3 * width, bias=attention.in_proj_bias is not None)
        qkv.weight = attention.in_proj_weight
        if attention.in_proj_bias is not None:
            qkv.bias = attention.in_proj_bias
        out = nn.Linear(width, width, bias=attention.out_proj.bias is not None)
        out.weight = attention.out_proj.weight
        if attention.out_proj.bias is not None:
            out.bias = attention.out_proj.bias
        self.qkv = _quantized(nn.Sequential(qkv))
        self.out = _quantized(nn.Sequential(out))

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        batch, length, width = query.shape
        qkv = self.qkv(query).view(batch, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        mixed = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(mixed.transpose(1, 2).reshape(batch, length, width)), None


def can_quantize_attention(attention: nn.Module) -> bool:
    """True for the attention modules :class:`Int8SelfAttention` can stand in for."""
    return (
        type(attention) is nn.MultiheadAttention
        and attention.batch_first
        and attention._qkv_same_embed_dim
        and attention.dropout == 0.0
        and attention.bias_k is None
    )


def quantize_transformer(transformer: nn.Module) -> nn.Module:
    """An open_clip ``Transformer`` with every linear layer in int8 (blocks changed in place)."""
    for block in getattr(transformer, "resblocks", ()):
        if can_quantize_attention(getattr(block, "attn", None)):
            block.attn = Int8SelfAttention(block.attn)
    return _quantized(transformer)


def quantize_text_tower(model: nn.Module) -> None:
    """Make ``model.transformer`` (an open_clip CLIP's text tower) int8, in place."""
    model.transformer = quantize_transformer(model.transformer)


def quantize_image_tower(model: nn.Module) -> bool:
    """Make the transformer of ``model.visual`` int8, in place.

    Returns:
        False when the image tower has no open_clip transformer (a ConvNeXt, a timm trunk):
        it then stays in fp32.
    """
    visual = getattr(model, "visual", None)
    transformer = getattr(visual, "transformer", None)
    if transformer is None or not hasattr(transformer, "resblocks"):
        return False
    visual.transformer = quantize_transformer(transformer)
    return True
