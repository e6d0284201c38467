"""The synthetic domain: deterministic, honest captions, a held-out split that holds."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from indexer.shapes import synthetic
from indexer.shapes.synthetic import (
    COLOURS,
    HELD_OUT_PAIRS,
    SEEN_PAIRS,
    SHAPES,
    ObjectSpec,
    SceneSpec,
    caption_scene,
    generate_collection,
    render_array,
    render_scene,
    sample_scene,
    sample_scenes,
)


def test_held_out_pairs_are_a_fifth_and_leave_every_attribute_seen() -> None:
    all_pairs = {(s, c) for s in SHAPES for c in COLOURS}
    assert all_pairs > HELD_OUT_PAIRS
    assert len(HELD_OUT_PAIRS) == 24
    assert len(HELD_OUT_PAIRS) / len(all_pairs) == pytest.approx(0.2)
    assert all_pairs == HELD_OUT_PAIRS | SEEN_PAIRS
    assert not HELD_OUT_PAIRS & SEEN_PAIRS
    assert {s for s, _ in SEEN_PAIRS} == set(SHAPES)
    assert {c for _, c in SEEN_PAIRS} == set(COLOURS)


def test_sampling_is_deterministic_from_the_seed() -> None:
    assert sample_scenes(50, seed=7) == sample_scenes(50, seed=7)
    assert sample_scenes(50, seed=7) != sample_scenes(50, seed=8)
    spec = sample_scenes(1, seed=3)[0]
    assert np.array_equal(np.asarray(render_scene(spec)), np.asarray(render_scene(spec)))


def test_train_split_never_holds_a_held_out_pair() -> None:
    specs = sample_scenes(3000, seed=0, split="train")
    seen = set().union(*(spec.pairs for spec in specs))
    assert not seen & HELD_OUT_PAIRS
    assert seen == SEEN_PAIRS


def test_test_split_holds_only_held_out_pairs() -> None:
    specs = sample_scenes(500, seed=0, split="test")
    assert set().union(*(spec.pairs for spec in specs)) == HELD_OUT_PAIRS


def test_allowed_pairs_are_respected() -> None:
    rng = random.Random(0)
    for _ in range(200):
        spec = sample_scene(rng, allowed_pairs=[("star", "red")])
        assert spec.pairs == {("star", "red")}
        assert spec.background_colour != "red"
    with pytest.raises(ValueError):
        sample_scene(rng, allowed_pairs=[])


def test_captions_mention_the_attributes() -> None:
    specs = sample_scenes(300, seed=1)
    rng = random.Random(0)
    words = set(SHAPES) | set(COLOURS) | {"shape", "shapes", "object", "background"}
    for spec in specs:
        for _ in range(3):
            caption = caption_scene(spec, rng)
            mentioned = {w for w in words if w in caption.split()} | {
                s for s in SHAPES if synthetic._plural(s) in caption.split()
            }
            assert mentioned, caption
            # Every shape or colour named is one of the scene's objects (or its background).
            named_colours = {c for c in COLOURS if c in caption.split()}
            assert named_colours <= {o.colour for o in spec.objects} | {spec.background_colour}
            named_shapes = {s for s in SHAPES if s in mentioned}
            assert named_shapes <= {o.shape for o in spec.objects}


def test_caption_phrasings() -> None:
    red_circle = SceneSpec(
        (ObjectSpec("circle", "red", "large", "centre"),), "stripes", "blue", seed=1
    )
    green_stars = SceneSpec(
        (
            ObjectSpec("star", "green", "small", "left"),
            ObjectSpec("star", "green", "small", "right"),
        ),
        "plain",
        "white",
        seed=2,
    )
    rng = random.Random(0)
    circle_captions = {caption_scene(red_circle, rng) for _ in range(400)}
    star_captions = {caption_scene(green_stars, rng) for _ in range(400)}
    assert "a large red circle on a striped blue background" in circle_captions
    assert "a red circle" in circle_captions
    assert "a photo of a red circle" in circle_captions
    assert "a red shape" in circle_captions
    assert "a circle" in circle_captions
    assert "two small green stars" in star_captions
    assert "an orange ellipse" in {
        caption_scene(
            SceneSpec((ObjectSpec("ellipse", "orange", "small", "top"),), "dots", "red"), rng
        )
        for _ in range(100)
    }


def test_no_two_images_are_pixel_identical() -> None:
    specs = sample_scenes(40, seed=5)
    same_attributes = [SceneSpec(specs[0].objects, "plain", "white", seed=s) for s in range(10)]
    images = render_array(specs + same_attributes, 64)
    flat = images.reshape(len(images), -1)
    assert len({row.tobytes() for row in flat}) == len(images)


def test_render_size_and_array() -> None:
    spec = sample_scenes(1, seed=2)[0]
    assert render_scene(spec, 96).size == (96, 96)
    array = render_array(sample_scenes(3, seed=2), 64)
    assert array.shape == (3, 64, 64, 3)
    assert array.dtype == np.uint8
    assert np.array_equal(array[0], np.asarray(render_scene(spec, 64)))


def test_generate_collection_writes_files_and_labels(tmp_path) -> None:
    items = generate_collection(tmp_path / "c", 12, seed=4, split="test", image_size=80)
    labels = [
        json.loads(line) for line in (tmp_path / "c" / "labels.jsonl").read_text().splitlines()
    ]
    assert len(items) == len(labels) == 12
    for (path, spec), label in zip(items, labels, strict=True):
        assert path.parent == tmp_path / "c"
        assert label["path"] == path.name
        assert SceneSpec.from_dict(label["attributes"]) == spec
        assert spec.pairs <= HELD_OUT_PAIRS
        assert isinstance(label["caption"], str) and label["caption"]
        with Image.open(path) as image:
            assert image.size == (80, 80)
            assert np.array_equal(
                np.asarray(image.convert("RGB")), np.asarray(render_scene(spec, 80))
            )

    again = generate_collection(tmp_path / "d", 12, seed=4, split="test", image_size=80)
    assert [s for _, s in again] == [s for _, s in items]
    assert (tmp_path / "d" / "labels.jsonl").read_text() == (
        tmp_path / "c" / "labels.jsonl"
    ).read_text()


def test_generate_collection_jpeg(tmp_path) -> None:
    items = generate_collection(tmp_path, 3, seed=0, image_format="jpeg", image_size=64)
    assert all(path.suffix == ".jpg" and path.is_file() for path, _ in items)


def test_unknown_split() -> None:
    with pytest.raises(ValueError):
        sample_scenes(1, seed=0, split="validation")  # type: ignore[arg-type]
