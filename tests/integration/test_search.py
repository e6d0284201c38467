"""The search layer on a real embedded store with the shipped anyshot-tiny model.

One collection per module: 240 generated one-object scenes (64 px), named
``shape-colour-NNN.png``, with four large centred images of each target pair, plus planted
near-duplicates (the same scene saved again as a JPEG). Assertions are robust to retraining
the model: "a red circle" ranks red circles first, not an exact ranking.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from indexer.config import build_settings
from indexer.errors import QueryError
from indexer.shapes.synthetic import COLOURS, SHAPES, ObjectSpec, SceneSpec, render_scene
from search.client import ImageSearch
from search.knowledge import KnowledgeBase, KnowledgeEntry
from search.query import QueryPart, parse_query

TARGETS = [("circle", "red"), ("heart", "cyan"), ("ring", "blue"), ("star", "yellow")]
DUPLICATES = 3


def scene(shape: str, colour: str, seed: int, rng: random.Random, *, large: bool) -> SceneSpec:
    background = rng.choice([c for c in COLOURS if c != colour])
    size = "large" if large else rng.choice(["small", "large"])
    position = "centre" if large else rng.choice(["centre", "left", "right", "top", "bottom"])
    return SceneSpec((ObjectSpec(shape, colour, size, position),), "plain", background, seed)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("search-shapes")
    rng = random.Random(5)
    specs = [scene(s, c, i, rng, large=True) for s, c in TARGETS for i in range(4)]
    specs += [
        scene(rng.choice(SHAPES), rng.choice(list(COLOURS)), 100 + i, rng, large=False)
        for i in range(240 - len(specs))
    ]
    for index, spec in enumerate(specs):
        item = spec.objects[0]
        image = render_scene(spec, 64)
        image.save(folder / f"{item.shape}-{item.colour}-{index:03d}.png")
        if 20 <= index < 20 + DUPLICATES:  # planted near-duplicates: the same scene as JPEG
            # Full-resolution colour (4:4:4): at 64 px, 4:2:0's halved chroma moves the
            # patch-8 model's vectors to 0.992-0.996 of the original, 4:4:4 keeps them ≥ 0.999.
            path = folder / f"{item.shape}-{item.colour}-{index:03d}.jpg"
            image.save(path, quality=90, subsampling=0)
    return folder


@pytest.fixture(scope="module")
def client(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageSearch:
    store = tmp_path_factory.mktemp("search-store") / "store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    # The quality thresholds below (3 of 4 hits) were set in fp32; int8's quality is measured
    # in tests/e2e/test_precision.py and bench/eval_search.py.
    settings.model.precision = "fp32"
    knowledge = KnowledgeBase(
        [KnowledgeEntry("zorblax", ("the zorb",), ("a cyan heart", "a cyan shape"), "test")]
    )
    with ImageSearch(settings, knowledge=knowledge) as opened:
        assert opened.index(collection).indexed == 240 + DUPLICATES
        yield opened


def attributes(uri: str) -> tuple[str, str]:
    shape, colour, _ = Path(uri).stem.split("-")
    return shape, colour


def share(hits, shape: str | None = None, colour: str | None = None) -> float:
    """The share of hits with that shape and/or colour."""
    return sum(
        (shape is None or attributes(h.uri)[0] == shape)
        and (colour is None or attributes(h.uri)[1] == colour)
        for h in hits
    ) / len(hits)


def test_a_description_ranks_its_images_first(client: ImageSearch) -> None:
    result = client.query("a red circle", k=4)
    assert share(result.hits, "circle", "red") >= 0.75
    assert share(result.hits, colour="red") == 1
    assert result.explain["score_scale"] == "text-image"
    assert result.explain["parts"] == [{"kind": "text", "value": "a red circle", "weight": 1.0}]
    assert result.to_dict()["hits"][0]["uri"] == result.hits[0].uri


def test_pages_follow_one_another(client: ImageSearch) -> None:
    first = client.search("a blue ring", k=6)
    second = client.search("a blue ring", k=3, offset=3)
    assert [h.id for h in second] == [h.id for h in first[3:]]


def test_a_plain_name_goes_through_prompt_templates(client: ImageSearch) -> None:
    result = client.query(name="heart", k=4)
    assert result.explain["names"] == [
        {"name": "heart", "resolved_as": "templates", "templates": 9}
    ]
    assert share(result.hits, "heart") >= 0.75


def test_a_known_name_goes_through_its_descriptions(client: ImageSearch) -> None:
    result = client.query(name="The Zorb", k=4)  # an alias, any case
    (resolution,) = result.explain["names"]
    assert resolution["resolved_as"] == "description"
    assert resolution["entry"] == "zorblax"
    assert share(result.hits, "heart", "cyan") >= 0.75


def test_unknown_names_are_refused_when_templates_are_off(collection: Path, client: ImageSearch):
    client.settings.search.name_templates = False
    client._engine = None
    try:
        with pytest.raises(QueryError, match="unknown name 'glorp'"):
            client.search(name="glorp")
        assert client.query(name="zorblax").explain["names"][0]["resolved_as"] == "description"
    finally:
        client.settings.search.name_templates = True
        client._engine = None


def test_a_concept_is_found_by_its_examples_and_wins_over_knowledge(
    client: ImageSearch, collection: Path
) -> None:
    examples = sorted(collection.glob("ring-blue-*.png"))[:2]
    concept = client.add_concept("zorblax", examples)
    try:
        assert concept.examples == [str(p) for p in examples]
        assert [c.name for c in client.concepts()] == ["zorblax"]
        result = client.query(name="ZORBLAX", k=4)
        assert result.explain["names"][0]["resolved_as"] == "concept"
        assert result.explain["score_scale"] == "image-image"
        assert share(result.hits, "ring", "blue") >= 0.75
    finally:
        client.remove_concept("zorblax")
    assert client.concepts() == []
    assert client.query(name="zorblax").explain["names"][0]["resolved_as"] == "description"
    with pytest.raises(QueryError, match="no concept named 'zorblax'"):
        client.remove_concept("zorblax")


def test_concept_examples_may_be_indexed_ids_bytes_or_pil_images(
    client: ImageSearch, collection: Path
) -> None:
    from PIL import Image

    stars = sorted(collection.glob("star-yellow-*.png"))
    hit = client.search(image=stars[0], k=1)[0]
    concept = client.add_concept(
        "sunny", [hit.id, f"id:{hit.id}", stars[1].read_bytes(), Image.open(stars[2])]
    )
    try:
        assert concept.examples == [f"id:{hit.id}", f"id:{hit.id}", "<bytes>", "<PngImageFile>"]
        hits = client.search(name="sunny", k=4)
        assert share(hits, "star", "yellow") >= 0.75
    finally:
        client.remove_concept("sunny")


def test_bad_concepts_are_refused(client: ImageSearch, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(QueryError, match="cannot use the example image"):
        client.add_concept("broken", [broken])
    with pytest.raises(QueryError, match="no image with id 1 "):
        client.add_concept("ghost", [1])
    with pytest.raises(QueryError, match="at least one example"):
        client.add_concept("empty", [])
    with pytest.raises(QueryError, match="needs a name"):
        client.add_concept("  ", [broken])
    assert client.concepts() == []


def test_concepts_persist_with_an_embedded_store(
    client: ImageSearch, collection: Path, tmp_path: Path
) -> None:
    settings = build_settings(store=str(tmp_path / "store"), model="anyshot-tiny", workers=0)
    example = sorted(collection.glob("circle-red-*.png"))[0]
    with ImageSearch(settings, embedder=client.embedder) as first:
        first.index(example)
        first.add_concept("dot", [example])
    with ImageSearch(settings, embedder=client.embedder) as second:
        (concept,) = second.concepts()
        assert (concept.name, concept.examples) == ("dot", [str(example)])
        assert second.search(name="dot", k=1)[0].uri == str(example)


def test_concepts_live_in_collection_metadata_in_memory(
    client: ImageSearch, collection: Path
) -> None:
    settings = build_settings(store=":memory:", model="anyshot-tiny", workers=0)
    examples = sorted(collection.glob("heart-cyan-*.png"))
    with ImageSearch(settings, embedder=client.embedder) as memory:
        memory.index(examples[0])
        memory.index(examples[1])
        memory.add_concept("love", examples[2:4])
        memory.add_concept("dot", [examples[0]])
        assert [c.to_dict()["name"] for c in memory.concepts()] == ["dot", "love"]
        assert memory.query(name="love").explain["names"][0]["resolved_as"] == "concept"
        memory.remove_concept("love")
        assert [c.name for c in memory.concepts()] == ["dot"]
        memory.remove_concept("dot")
        assert memory.concepts() == []


def test_tags_and_duplicates_on_the_server_code_path(client: ImageSearch, collection: Path) -> None:
    settings = build_settings(store=":memory:", model="anyshot-tiny", workers=0)
    jpeg = sorted(collection.glob("*.jpg"))[0]
    with ImageSearch(settings, embedder=client.embedder) as memory:
        for path in (jpeg, jpeg.with_suffix(".png"), *sorted(collection.glob("ring-*.png"))[:3]):
            memory.index(path)
        (group,) = memory.duplicates(threshold=0.995)
        assert sorted(group.uris) == [str(jpeg), str(jpeg.with_suffix(".png"))]
        report = memory.tag(["ring", "star"], top=1)
        assert report.images == report.tagged == memory.info().points
        assert memory.tag_counts() == {k: v for k, v in report.counts.items() if v}
        assert len(memory.search("a shape", where=["tag=ring"], k=50)) == report.counts["ring"]


def test_a_negative_part_pushes_results_away(client: ImageSearch) -> None:
    plain = client.search("a circle", k=10)
    colours = [attributes(h.uri)[1] for h in plain]
    common = max(set(colours), key=colours.count)
    pushed = client.query("a circle", negatives=[f"a {common} shape"], k=10)
    assert share(pushed.hits, colour=common) < share(plain, colour=common)
    assert share(pushed.hits, "circle") >= 0.2  # still about circles
    bare = client.search("a circle", negatives=f"a {common} shape", k=10)
    assert [h.id for h in bare] == [h.id for h in pushed.hits]
    assert pushed.explain["parts"][1] == {
        "kind": "text",
        "value": f"a {common} shape",
        "weight": -1.0,
    }


def test_a_combined_query_mixes_text_and_an_image(client: ImageSearch, collection: Path) -> None:
    ring = sorted(collection.glob("ring-blue-*.png"))[0]
    result = client.query(parts=parse_query(f'+"a blue shape" +{ring}'), k=4)
    assert result.explain["score_scale"] == "mixed"
    assert share(result.hits, "ring", "blue") >= 0.75
    weighted = client.query(
        parts=[QueryPart("text", "a blue ring"), QueryPart("text", "a red circle", -0.5)], k=3
    )
    assert share(weighted.hits, "ring", "blue") >= 0.75


def test_expansion_is_explained_and_keeps_the_text_threshold(client: ImageSearch) -> None:
    result = client.query("a yellow star", k=5, expand=True)
    expansion = result.explain["expansion"]
    assert expansion["applied"] is True and len(expansion["from"]) == 5
    assert share(result.hits, colour="yellow") >= 0.6
    assert client.query("a yellow star", k=5).explain["expansion"]["applied"] is False

    query = client.engine.embed_texts(["a yellow star"])[0]
    plain = client.search("a yellow star", k=300)
    threshold = (plain[7].score + plain[8].score) / 2  # eight images reach it (text scale)
    thresholded = client.search("a yellow star", k=50, threshold=threshold, expand=True)
    vectors = client.engine.stored_vectors([h.id for h in thresholded])
    assert 0 < len(thresholded) <= 8
    assert np.all(vectors @ query >= threshold - 1e-6)


def test_expansion_does_not_apply_to_image_queries(client: ImageSearch, collection: Path) -> None:
    image = sorted(collection.glob("*.png"))[0]
    result = client.query(image=image, expand=True)
    assert result.explain["expansion"] == {
        "applied": False,
        "reason": "only for text and name queries",
    }
    assert result.explain["score_scale"] == "image-image"
    assert result.hits[0].uri == str(image)


def test_a_threshold_cuts_the_list(client: ImageSearch) -> None:
    scores = [h.score for h in client.search("a red circle", k=20)]
    threshold = (scores[4] + scores[5]) / 2
    hits = client.search("a red circle", k=20, threshold=threshold)
    assert len(hits) == 5
    assert all(h.score >= threshold for h in hits)


def test_filters_as_expressions(client: ImageSearch, collection: Path) -> None:
    jpegs = client.search("a shape", k=50, where=["format=JPG"])
    assert len(jpegs) == DUPLICATES
    assert all(h.uri.endswith(".jpg") for h in jpegs)
    assert client.search("a shape", where=[f"folder={collection / 'nowhere'}"]) == []
    small = client.search("a shape", k=500, where=["size<1KB"])
    assert all(h.payload["size"] < 1000 for h in small)
    hit = client.search("a red circle", k=1)[0]
    assert [h.id for h in client.search("a shape", where=[f"id={hit.id}"])] == [hit.id]


def test_near_duplicates_collapse_in_results(client: ImageSearch, collection: Path) -> None:
    png = sorted(collection.glob("*.jpg"))[0].with_suffix(".png")
    plain = client.search(image=png, k=5)
    assert {Path(h.uri).suffix for h in plain[:2]} == {".png", ".jpg"}
    result = client.query(image=png, k=5, collapse_duplicates=0.995)
    assert result.hits[0].uri == str(png)
    assert png.with_suffix(".jpg").as_posix() not in [h.uri for h in result.hits]
    assert result.explain["collapsed"] >= 1
    assert len(result.hits) == 5


def test_duplicates_are_found_through_the_index(client: ImageSearch, collection: Path) -> None:
    groups = client.duplicates(threshold=0.995)
    planted = {
        tuple(sorted([str(p), str(p.with_suffix(".png"))])) for p in collection.glob("*.jpg")
    }
    found = {tuple(sorted(g.uris)) for g in groups}
    assert planted <= found
    assert all(len(g.ids) == len(g.uris) >= 2 and g.score >= 0.995 for g in groups)
    assert groups[0].to_dict()["score"] == round(groups[0].score, 6)
    with pytest.raises(QueryError, match="duplicate threshold"):
        client.duplicates(threshold=1.5)


def test_tagging_writes_filterable_tags_with_counts(client: ImageSearch) -> None:
    labels = ["circle", "heart", "ring", "star", "square"]
    seen: list[tuple[int, int]] = []
    report = client.tag(labels, progress=lambda done, total: seen.append((done, total)))
    total = 240 + DUPLICATES
    assert (report.images, report.tagged) == (total, total)
    assert seen[-1] == (total, total)
    assert sum(report.counts.values()) == total
    assert set(report.counts) == set(labels)
    assert client.tag_counts() == {k: v for k, v in report.counts.items() if v}
    circles = client.search("a red circle", k=3, where=["tag=circle"])
    assert all(h.payload["tags"] == ["circle"] for h in circles)
    assert share(circles, "circle", "red") >= 0.6
    tagged = client.search("a shape", k=500, where=["tag=heart"])
    assert len(tagged) == report.counts["heart"]
    assert all(h.payload["tags"] == ["heart"] for h in tagged)
    assert 0 < tagged[0].payload["tag_scores"]["heart"] <= 1

    strict = client.tag(labels, top=2, min_score=0.99)
    assert strict.tagged < total
    assert all(len(h.payload["tags"]) <= 1 for h in client.search("a shape", k=500))
    assert client.search("a blue ring", k=1)  # the index still answers after rewriting


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.search("   "), "empty text query"),
        (lambda c: c.search(), "give exactly one query"),
        (lambda c: c.search("a", name="b"), "give exactly one query"),
        (lambda c: c.search(name=" "), "empty name"),
        (lambda c: c.search(similar_to=12345), "no image with id 12345"),
        (lambda c: c.search(image=b"garbage"), "cannot use the example image"),
        (lambda c: c.search(parts=[QueryPart("text", "x", -1)]), "at least one positive"),
        (lambda c: c.search("a", negatives=["a"]), "cancel out"),
        (lambda c: c.search("a", k=0), "k must be at least 1"),
        (lambda c: c.search("a", where=["colour=red"]), "unknown filter key"),
        (lambda c: c.search("a", collapse_duplicates=2.0), "duplicate threshold"),
        (lambda c: c.tag([]), "no labels"),
        (lambda c: c.tag(["a"], min_score=2), "min_score"),
    ],
)
def test_clear_errors(client: ImageSearch, call, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        call(client)
