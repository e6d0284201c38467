"""The shipped anyshot-tiny model: loaded offline by its name, with real zero-shot behaviour."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from indexer.config import ModelSettings, build_settings
from indexer.embed import Embedder
from indexer.shapes.synthetic import (
    COLOURS,
    HELD_OUT_PAIRS,
    SHAPES,
    ObjectSpec,
    SceneSpec,
    render_scene,
)
from search.client import ImageSearch

TARGETS = [("circle", "red"), ("heart", "cyan"), ("ring", "blue"), ("star", "black")]


def scene(shape: str, colour: str, seed: int, rng: random.Random) -> SceneSpec:
    background = rng.choice([c for c in COLOURS if c != colour])
    return SceneSpec(
        objects=(ObjectSpec(shape, colour, "large", "centre"),),
        background="plain",
        background_colour=background,
        seed=seed,
    )


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images of each target pair among 30 random single shapes, named shape-colour-n."""
    folder = tmp_path_factory.mktemp("shapes")
    rng = random.Random(3)
    specs = [scene(s, c, i, rng) for s, c in TARGETS for i in range(3)]
    specs += [scene(rng.choice(SHAPES), rng.choice(list(COLOURS)), 100 + i, rng) for i in range(30)]
    for index, spec in enumerate(specs):
        item = spec.objects[0]
        render_scene(spec, 96).save(folder / f"{item.shape}-{item.colour}-{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def client(collection: Path) -> ImageSearch:
    with ImageSearch(build_settings(store=":memory:", model="anyshot-tiny")) as opened:
        assert opened.index(collection).indexed == 42
        yield opened


def attributes(uri: str) -> tuple[str, str]:
    shape, colour, _ = Path(uri).stem.split("-")
    return shape, colour


def test_loads_offline_by_name_through_the_production_loader() -> None:
    embedder = Embedder(ModelSettings(name="anyshot-tiny"))
    assert embedder.identity.name == "anyshot-tiny"
    assert embedder.identity.dim == 128
    assert embedder.source.open_clip_name.startswith("local-dir:")


@pytest.mark.parametrize(("shape", "colour"), TARGETS)
def test_a_description_ranks_its_images_first(client: ImageSearch, shape: str, colour: str):
    hits = client.search(f"a {colour} {shape}", k=3)
    assert [attributes(h.uri) for h in hits] == [(shape, colour)] * 3


def test_held_out_combinations_are_found_zero_shot(client: ImageSearch) -> None:
    held = [pair for pair in TARGETS if pair in HELD_OUT_PAIRS]
    assert len(held) >= 2  # red circle, cyan heart: never seen in training
    for shape, colour in held:
        hits = client.search(f"a {colour} {shape}", k=3)
        assert [attributes(h.uri) for h in hits] == [(shape, colour)] * 3


def test_an_example_image_finds_its_kind(client: ImageSearch, collection: Path) -> None:
    example = sorted(collection.glob("ring-blue-*.png"))[0]
    hits = client.search(image=example, k=3)
    assert hits[0].uri == str(example)
    assert [attributes(h.uri) for h in hits] == [("ring", "blue")] * 3


def test_a_name_finds_its_shape(client: ImageSearch) -> None:
    hits = client.search(name="heart", k=3)
    assert [attributes(h.uri)[0] for h in hits] == ["heart"] * 3
