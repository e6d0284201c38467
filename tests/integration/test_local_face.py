"""The local face, :class:`search.client.ImageSearch`, over a real anyshot-tiny collection: what it
answers, what it refuses, what it loads (and what it does not), and what a server's client holds."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from indexer.config import build_settings
from indexer.errors import BusyError, ConfigError, QueryError, StoreServedError
from indexer.schema import POINT_ID_MAX, point_id
from indexer.stores.opening import open_store
from search import client as client_module
from search.client import ImageSearch
from search.face import CollectionClient
from search.messages import ConceptRequest, SearchRequest, image_text

EXAMPLE = "ring-blue-006.png"


def settings_for(store: Path | str):
    return build_settings(store=str(store), workers=0)


@pytest.fixture
def store(tiny_store_template, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(tiny_store_template[1], copy)
    return copy


@pytest.fixture
def local(store) -> ImageSearch:
    with ImageSearch(settings_for(store)) as opened:
        yield opened


def test_it_is_the_face() -> None:
    assert issubclass(ImageSearch, CollectionClient)
    assert not ImageSearch.__abstractmethods__


def test_info_concepts_and_tag_counts_load_no_model_nor_torch(store) -> None:
    code = (
        "import json, sys\n"
        "from indexer.config import build_settings\n"
        "from search.client import ImageSearch\n"
        f"with ImageSearch(build_settings(store={str(store)!r})) as client:\n"
        "    info = client.info().model_dump()\n"
        "    assert client.concepts() == [] and client.tag_counts() == {}\n"
        "heavy = ['torch', 'open_clip', 'search.engine', 'indexer.embed', 'prefect', 'fastapi']\n"
        "print(json.dumps({'info': info, 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["loaded"] == []
    info = result["info"]
    assert (info["collection"], info["location"], info["backend"], info["points"]) == (
        "images",
        str(store),
        "qdrant-edge",
        120,
    )
    assert info["model"]["name"] == "anyshot-tiny"


def test_explain_only_when_asked_and_every_image_form_agrees(local, tiny_store_template) -> None:
    path = tiny_store_template[0] / EXAMPLE
    explained = local.query(image=path, k=5)
    assert explained.explain["score_scale"] == "image-image"
    assert Path(explained.hits[0].uri).name == EXAMPLE
    assert local.answer(SearchRequest(image=image_text(path.read_bytes()), k=5)).explain == {}
    ids = [hit.id for hit in explained.hits]
    with Image.open(path) as pil:
        from_pil = local.search(image=pil.copy(), k=5)
    assert [hit.id for hit in local.search(image=path.read_bytes(), k=5)] == ids
    assert [hit.id for hit in local.search(image=str(path), k=5)] == ids
    assert [hit.id for hit in from_pil] == ids


def test_queries_that_cannot_be_answered_say_why(local) -> None:
    with pytest.raises(QueryError, match="give exactly one query"):
        local.answer(SearchRequest(text="a ring", name="ring"))
    with pytest.raises(QueryError, match="give exactly one query"):
        local.answer(SearchRequest())
    with pytest.raises(QueryError, match="cannot use the example image: "):
        local.answer(SearchRequest(image=image_text(b"not an image")))
    with pytest.raises(QueryError, match="an id part needs an integer"):
        local.answer(SearchRequest(parts=[{"kind": "id", "value": "seven"}]))


def test_a_flow_runner_on_memory_refuses_in_one_line(tmp_path) -> None:
    with ImageSearch(settings_for(":memory:")) as memory:
        for runner in ("prefect", "dask"):
            with pytest.raises(ConfigError) as refused:
                memory.index(tmp_path, runner=runner)
            assert str(refused.value) == (
                f"runner {runner!r} cannot index a :memory: store: the flow would index into "
                "an in-memory store of its own, gone when it ends (use runner inline)"
            )


def test_search_by_vector_checks_the_vector(local, tiny_store_template) -> None:
    dim = local.collection_model().dim
    for bad in ([1.0] * (dim - 1), [0.0] * dim, [float("nan")] + [1.0] * (dim - 1)):
        with pytest.raises(QueryError, match=f"must be {dim} finite numbers, not all zero"):
            local.search_vector(bad, k=3)
    example = point_id(str(tiny_store_template[0] / EXAMPLE))
    vector = local.engine.stored_vectors([example])[0] * 7.0  # any length: made unit here
    hits = local.search_vector(vector.tolist(), k=3)
    assert [hit.id for hit in hits] == [hit.id for hit in local.search(similar_to=example, k=3)]


def test_payloads_by_id(local, tiny_store_template) -> None:
    example = point_id(str(tiny_store_template[0] / EXAMPLE))
    assert local.payload(example)["uri"] == str(tiny_store_template[0] / EXAMPLE)
    assert list(local.payloads([12345, example, -1, POINT_ID_MAX + 1])) == [example]
    with pytest.raises(Exception, match="no image with id 12345"):
        local.payload(12345)


def test_export_pages_cover_the_collection_once_in_id_order(local) -> None:
    ids: list[int] = []
    after = None
    while True:
        page = local.export_page(after=after, limit=32)
        assert page.total == 120
        if page.data is None:
            break
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(page.data))
        ids += table.column("id").to_pylist()
        assert page.points == table.num_rows <= 32
        if page.next_after is None:
            break
        after = page.next_after
    assert ids == sorted(set(ids)) and len(ids) == 120
    assert local.export_page(after=ids[-1], limit=10).data is None
    assert local.export_page(after=POINT_ID_MAX, limit=10).data is None
    with pytest.raises(QueryError):
        local.export_page(after=None, limit=0)


def test_concept_names_and_labels_that_a_terminal_would_run_are_refused(
    local, tiny_store_template
) -> None:
    data = image_text((tiny_store_template[0] / EXAMPLE).read_bytes())
    example = {"image": data, "label": "evil\x1b]0;title\x07.png"}
    with pytest.raises(QueryError, match="control characters"):
        local.define_concept("red\x1b[31m", ConceptRequest(examples=[example]))
    concept = local.define_concept("rings", ConceptRequest(examples=[example]))
    assert concept.examples == ["evil?]0;title?.png"]
    with pytest.raises(QueryError, match="control characters"):
        local.tag(["ring", "star\n"])


def test_concepts_stop_where_a_snapshot_could_not_carry_them(
    local, tiny_store_template, monkeypatch
) -> None:
    ids = [point_id(str(path)) for path in sorted(tiny_store_template[0].iterdir())[:4]]
    dim = local.collection_model().dim
    monkeypatch.setattr(client_module, "CONCEPT_FLOATS_LIMIT", 3 * dim)
    local.add_concept("two", ids[:2])
    local.add_concept("two", ids[1:3])  # a redefinition replaces: still two vectors
    with pytest.raises(QueryError, match="more example vectors than a snapshot can carry"):
        local.add_concept("more", ids[2:4])
    assert [concept.name for concept in local.concepts()] == ["two"]


def test_a_second_collection_wide_write_is_busy(local, tiny_store_template, tmp_path) -> None:
    more = tmp_path / "more"
    more.mkdir()
    for path in sorted(tiny_store_template[0].iterdir())[:3]:
        shutil.copy(path, more / f"copy-{path.name}")
    started, release = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        started.set()
        assert release.wait(30)

    run = threading.Thread(target=local.index, args=(more,), kwargs={"progress": progress})
    run.start()
    try:
        assert started.wait(60)
        with pytest.raises(BusyError, match="the collection is being written"):
            local.tag(["ring", "star"])
        with pytest.raises(BusyError):
            local.load(tmp_path)
    finally:
        release.set()
        run.join(60)
    assert local.tag(["ring", "star"]).images == 123


def test_a_servers_client_holds_the_store_and_says_where_it_is(store, tiny_store_template) -> None:
    server = ImageSearch.for_server(settings_for(store), advertise_url="http://127.0.0.1:9")
    try:
        assert json.loads((store / "server.json").read_text())["url"] == "http://127.0.0.1:9"
        with pytest.raises(StoreServedError, match=r"http://127\.0\.0\.1:9"):
            open_store(settings_for(store).store)
        image = image_text((tiny_store_template[0] / EXAMPLE).read_bytes())
        with pytest.raises(ConfigError, match="reads example images only through the server"):
            server.answer(SearchRequest(image=image))
        with pytest.raises(ConfigError, match="needs a client that opened its own store"):
            server.index(tiny_store_template[0], runner="prefect")
        assert server.search("a blue ring", k=1)[0].uri.endswith(".png")  # texts need no reader
    finally:
        server.close()
    assert not (store / "server.json").exists()
    with open_store(settings_for(store).store, hold=True):
        pass  # released
