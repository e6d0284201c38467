"""int8 towers and the automatic precision: which CPU gets which, and what int8 keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexer.config import ModelSettings
from indexer.cpu import (
    FLAGS_OVERRIDE_ENV,
    cpu_flags,
    has_fast_bf16,
    has_int8_kernels,
    resolve_cpu_precision,
    text_tower_int8,
)
from indexer.embed import Embedder, choose_runtime
from indexer.errors import ModelError

AVX2_EPYC = "fpu sse2 avx avx2 fma f16c"  # an AVX2-only AMD EPYC: int8 is the lever
SAPPHIRE_RAPIDS = "avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16"
OLD_CPU = "fpu sse sse2"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (AVX2_EPYC, "int8"),
        (SAPPHIRE_RAPIDS, "bf16"),
        ("avx2 avx512_bf16", "bf16"),
        (OLD_CPU, "fp32"),
    ],
)
def test_auto_precision_follows_the_cpu(monkeypatch, flags: str, expected: str) -> None:
    monkeypatch.setenv(FLAGS_OVERRIDE_ENV, flags)
    assert resolve_cpu_precision("auto") == expected
    assert choose_runtime("cpu", "auto").precision == expected
    assert resolve_cpu_precision("fp32") == "fp32"  # an explicit choice is kept


def test_the_machine_flags_are_read_without_torch(monkeypatch) -> None:
    monkeypatch.delenv(FLAGS_OVERRIDE_ENV, raising=False)
    flags = cpu_flags()
    assert has_fast_bf16(flags) == bool(flags & {"amx_tile", "amx_bf16", "avx512_bf16"})
    assert has_int8_kernels(frozenset({"avx2"})) or not has_int8_kernels(flags)
    assert not has_int8_kernels(frozenset())


def test_text_tower_follows_the_precision_unless_told(monkeypatch) -> None:
    monkeypatch.setenv(FLAGS_OVERRIDE_ENV, AVX2_EPYC)
    assert text_tower_int8(ModelSettings())  # auto -> int8 here
    assert not text_tower_int8(ModelSettings(precision="fp32"))
    assert text_tower_int8(ModelSettings(precision="fp32", text_int8=True))
    assert not text_tower_int8(ModelSettings(precision="int8", text_int8=False))
    assert not text_tower_int8(ModelSettings(device="cuda", precision="fp16"))
    monkeypatch.setenv(FLAGS_OVERRIDE_ENV, SAPPHIRE_RAPIDS)
    assert not text_tower_int8(ModelSettings())  # bf16 here


def test_int8_is_refused_on_cuda_and_unknown_precisions_name_int8() -> None:
    with pytest.raises(ModelError, match="int8"):
        choose_runtime("cpu", "int4")
    if torch.cuda.is_available():
        with pytest.raises(ModelError, match="CPU only"):
            choose_runtime("cuda", "int8")


@pytest.fixture(scope="module")
def fp32_and_int8() -> tuple[Embedder, Embedder]:
    exact = Embedder(ModelSettings(name="anyshot-tiny", precision="fp32"))
    int8 = Embedder(ModelSettings(name="anyshot-tiny", precision="int8"))
    return exact, int8


def test_int8_quantizes_every_linear_layer_of_both_towers(fp32_and_int8) -> None:
    from indexer.int8 import Int8SelfAttention

    exact, int8 = fp32_and_int8
    int8.ready_text_tower()  # the text tower is quantized on its first text
    assert (int8.image_precision, int8.text_precision) == ("int8", "int8")
    assert (exact.image_precision, exact.text_precision) == ("fp32", "fp32")
    for tower, reference in (
        (int8.model.visual.transformer, exact.model.visual.transformer),
        (int8.model.transformer, exact.model.transformer),
    ):
        modules = list(tower.modules())
        assert not any(type(m) is torch.nn.Linear for m in modules)
        assert sum(isinstance(m, Int8SelfAttention) for m in modules) == len(reference.resblocks)


def test_int8_image_vectors_stay_close_to_fp32(fp32_and_int8, tmp_path) -> None:
    from tests.shape_collection import write_shape_images

    exact, int8 = fp32_and_int8
    paths = write_shape_images(tmp_path, 24)
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    a, b = exact.embed_images(images), int8.embed_images(images)
    assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.995
    texts = ["a red circle", "a blue ring", "a black star", "a cyan heart"]
    t_exact, t_int8 = exact.embed_texts(texts), int8.embed_texts(texts)
    assert (t_exact * t_int8).sum(axis=1).min() > 0.99
