"""The varied training renderer: deterministic, the right size, honest about its background;
and the training script's caption rule for images whose background was replaced."""

from __future__ import annotations

import random

import numpy as np
import pytest

from indexer.shapes import synthetic, varied
from indexer.shapes.synthetic import ObjectSpec, SceneSpec, sample_scenes

train = pytest.importorskip("indexer.shapes.train")


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others() -> None:
    spec = sample_scenes(1, seed=4, split="train")[0]
    one, kept_one = varied.render_varied(spec, seed=7)
    two, kept_two = varied.render_varied(spec, seed=7)
    three, _ = varied.render_varied(spec, seed=8)
    assert one.size == (64, 64) and one.mode == "RGB"
    assert np.array_equal(np.asarray(one), np.asarray(two)) and kept_one == kept_two
    assert not np.array_equal(np.asarray(one), np.asarray(three))


def test_arrays_do_not_depend_on_the_worker_count() -> None:
    specs = sample_scenes(300, seed=5, split="train")
    alone, kept_alone = varied.render_varied_array(specs, seed=3, size=32, workers=1)
    pooled, kept_pooled = varied.render_varied_array(specs, seed=3, size=32, workers=2)
    assert alone.shape == (300, 32, 32, 3) and alone.dtype == np.uint8
    assert np.array_equal(alone, pooled) and np.array_equal(kept_alone, kept_pooled)
    # Some backgrounds are kept (captions may name them), some replaced.
    assert 0.3 < kept_alone.mean() < 0.9
    empty, kept = varied.render_varied_array([], seed=3)
    assert empty.shape == (0, 64, 64, 3) and kept.shape == (0,)


def test_the_object_keeps_its_colour() -> None:
    """A filled large red circle on plain white stays visibly red through every variation."""
    spec = SceneSpec((ObjectSpec("circle", "red", "large", "centre"),), "plain", "white", 0)
    for seed in range(20):
        image, _ = varied.render_varied(spec, seed=seed)
        pixels = np.asarray(image, float).reshape(-1, 3)
        red = np.abs(pixels - synthetic.COLOURS["red"]).sum(axis=1) < 120
        assert red.mean() > 0.03, seed


def test_captions_leave_out_a_replaced_background() -> None:
    spec = SceneSpec((ObjectSpec("star", "blue", "small", "left"),), "stripes", "yellow", 0)
    rng = random.Random(0)
    texts = [train.caption(spec, rng, set(), background=False) for _ in range(200)]
    assert not any("background" in t for t in texts)
    assert any("star" in t for t in texts)
    kept = [train.caption(spec, rng, set()) for _ in range(200)]
    assert any("background" in t for t in kept)


def test_scrambled_colours_keep_the_pixels_layout_and_change_the_colours() -> None:
    specs = sample_scenes(8, seed=6, split="train")
    images = train.render(specs, 64, workers=1)
    once = train.scramble_colours(images, step=3)
    assert once.shape == images.shape and once.dtype == images.dtype
    assert torch_equal(once, train.scramble_colours(images, step=3))
    for original, scrambled in zip(images, once, strict=True):
        assert not torch_equal(original, scrambled)
        # The same pixels, moved between channels (or greyed): the sorted values per image are
        # a permutation's, or every channel is the same.
        same_multiset = sorted(original.flatten().tolist()) == sorted(scrambled.flatten().tolist())
        grey = bool((scrambled[0] == scrambled[1]).all() and (scrambled[1] == scrambled[2]).all())
        assert same_multiset or grey


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_every_shape_is_drawn_many_ways_within_its_radius() -> None:
    """shape_parts varies the drawing (a star's inner radius, rounded corners, hearts of two
    kinds, ...) but every drawing stays about the unit radius and stays the named shape's."""
    rng = np.random.default_rng(0)
    for shape in synthetic.SHAPES:
        drawings = [varied.shape_parts(shape, rng) for _ in range(30)]
        for parts in drawings:
            assert parts and all(p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3 for p in parts)
            assert max(np.abs(p).max() for p in parts) <= 1.2, shape
        if shape not in ("circle", "ring", "hexagon"):  # these have one drawing (or two phases)
            outlines = {np.concatenate(parts).round(3).tobytes() for parts in drawings}
            assert len(outlines) > 5, shape
    hearts = [len(varied.shape_parts("heart", rng)) for _ in range(40)]
    assert set(hearts) == {1, 3}  # a curve, or two discs and a wedge
    stars = [varied.shape_parts("star", rng)[0] for _ in range(40)]
    inner = [np.linalg.norm(star[1::2], axis=1).mean() for star in stars]
    assert min(inner) < 0.4 < 0.55 < max(inner)  # thin and fat stars


def test_some_backgrounds_are_in_unnamed_colours_kept_clear_of_the_object() -> None:
    spec = SceneSpec((ObjectSpec("star", "blue", "large", "centre"),), "plain", "white", 0)
    rng = np.random.default_rng(1)
    corners = []
    for _ in range(60):
        canvas = varied._free_background(spec, 64, rng)
        corner = np.asarray(canvas, float)[0, 0]
        assert np.abs(corner - synthetic.COLOURS["blue"]).sum() > 150
        corners.append(tuple(corner.astype(int)))
    assert len(set(corners)) > 50  # not the named palette
