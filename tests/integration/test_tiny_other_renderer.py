"""anyshot-tiny recognises shapes drawn by code it never trained on (bench/other_renderer.py:
numpy signed-distance shapes, its own palette, sizes, strokes, edges and backgrounds)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.config import ModelSettings
from indexer.embed import Embedder
from indexer.shapes.synthetic import COLOURS, SHAPES, object_phrase

RENDERER = Path(__file__).resolve().parents[2] / "bench" / "other_renderer.py"


@pytest.fixture(scope="module")
def other_renderer():
    spec = importlib.util.spec_from_file_location("other_renderer", RENDERER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_renderer"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def embedded(other_renderer):
    """Two one-shape images of every pair (240), embedded through the production embedder."""
    scenes = other_renderer.collection(2, 0, seed=15)
    images = [other_renderer.draw(items, seed) for items, seed in scenes]
    embedder = Embedder(ModelSettings(name="anyshot-tiny"))
    pairs = [(items[0].shape, items[0].colour) for items, _ in scenes]
    return embedder, embedder.embed_images(images), pairs


def accuracy(embedder, feats, prompts: list[str], truth: list[str], names: list[str]) -> float:
    predicted = (feats @ embedder.embed_texts(prompts).T).argmax(axis=1)
    return float(np.mean([names[k] == t for k, t in zip(predicted, truth, strict=True)]))


def test_colour_holds_on_images_drawn_by_other_code(embedded) -> None:
    embedder, feats, pairs = embedded
    prompts = [f"a photo of {object_phrase(c)} shape" for c in COLOURS]
    colours = accuracy(embedder, feats, prompts, [c for _, c in pairs], list(COLOURS))
    assert colours >= 0.85  # chance 1/12; measured 0.95 (bench/eval_other_renderer.py: 0.98)


def test_shape_is_recognised_above_chance_on_images_drawn_by_other_code(embedded) -> None:
    """Issue 15 asks for 0.6: measured 0.60 here (bf16) and 0.59–0.65 on three collections in
    bench/eval_other_renderer.py (the patch-16 weights before: 0.26; see the model card). The
    floor leaves room for other precisions and CPUs."""
    embedder, feats, pairs = embedded
    prompts = [f"a photo of {object_phrase(s)}" for s in SHAPES]
    shapes = accuracy(embedder, feats, prompts, [s for s, _ in pairs], list(SHAPES))
    assert shapes >= 0.45  # chance 0.1
