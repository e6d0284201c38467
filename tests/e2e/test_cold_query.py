"""A text search from a new process, once the text tower is exported, imports no torch and
prints what the torch path prints; ``--image`` still works; ``text_runtime=torch`` forces torch.

Each case runs the command as the console script does, in a fresh interpreter, and reads the
modules it loaded (the speed itself is measured by bench/bench_cold_query.py, not asserted).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fresh_process import run_fresh

HEAVY = {"torch", "open_clip", "torchvision", "prefect", "onnx"}


@pytest.fixture(scope="module")
def store(tiny_store_template, tmp_path_factory) -> Path:
    _, template = tiny_store_template
    copy = tmp_path_factory.mktemp("cold") / "store"
    shutil.copytree(template, copy)
    return copy


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """fp32 everywhere (the torch path's vectors do not depend on the CPU), a cache of its own."""
    return {
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cold-cache")),
        "ANYSHOT_MODEL__PRECISION": "fp32",
    }


@pytest.fixture(scope="module")
def exported(store: Path, env: dict[str, str]) -> Path:
    """The first search exports the tower (here at once, with ``text_runtime=onnx``)."""
    code, _, err, _ = run_fresh(
        "search", "a red circle", "--store", str(store), "--json",
        env=env | {"ANYSHOT_MODEL__TEXT_RUNTIME": "onnx"},
    )  # fmt: skip
    assert (code, err) == (0, "")
    [tower] = Path(env["XDG_CACHE_HOME"]).rglob("*.onnx")
    return tower


def hits(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_text_search_imports_no_torch_and_prints_what_torch_prints(store, env, exported):
    """... and ``text_runtime=torch`` forces the torch path, though the export is there."""
    args = ("search", "a cyan heart on a plain background", "--store", str(store), "-k", "8")
    args += ("--json",)
    code, out, err, modules = run_fresh(*args, env=env)
    assert (code, err) == (0, "")
    assert modules & HEAVY == set()
    code, torch_out, err, torch_modules = run_fresh(
        *args, env=env | {"ANYSHOT_MODEL__TEXT_RUNTIME": "torch"}
    )
    assert (code, err) == (0, "") and "torch" in torch_modules
    onnx_hits, torch_hits = hits(out), hits(torch_out)
    assert [h["id"] for h in onnx_hits] == [h["id"] for h in torch_hits]
    assert [h["uri"] for h in onnx_hits] == [h["uri"] for h in torch_hits]
    assert [h.keys() for h in onnx_hits] == [h.keys() for h in torch_hits]
    for ours, theirs in zip(onnx_hits, torch_hits, strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
        assert ours["payload"] == theirs["payload"]


def test_the_table_needs_no_torch_either(store, env, exported) -> None:
    code, out, err, modules = run_fresh(
        "search", "a red circle", "--store", str(store), "-k", "3", env=env
    )
    assert (code, err) == (0, "") and modules & HEAVY == set()
    header, *rows = out.splitlines()
    assert header.split() == ["#", "score", "path"] and len(rows) == 3


def test_a_name_search_through_templates_needs_no_torch(store, env, exported) -> None:
    code, out, err, modules = run_fresh(
        "search", "--name", "heart", "--store", str(store), "-k", "3", "--json", env=env
    )
    assert (code, err) == (0, "") and modules & HEAVY == set()
    assert len(hits(out)) == 3


def test_an_image_search_still_works(store, env, exported) -> None:
    first = hits(
        run_fresh("search", "a red circle", "--store", str(store), "-k", "1", "--json", env=env)[1]
    )[0]
    code, out, err, modules = run_fresh(
        "search", "--image", first["uri"], "--store", str(store), "-k", "1", "--json", env=env
    )
    assert (code, err) == (0, "")
    assert hits(out)[0]["id"] == first["id"]
    assert "torch" in modules
    assert modules & {"prefect", "indexer.shapes.train", "indexer.indexing", "onnx"} == set()


def test_a_bad_text_runtime_is_one_line(store, env) -> None:
    code, _, err, _ = run_fresh(
        "search", "a red circle", "--store", str(store),
        env=env | {"ANYSHOT_MODEL__TEXT_RUNTIME": "tensorflow"},
    )  # fmt: skip
    assert code == 1
    assert err == (
        "error: ANYSHOT_MODEL__TEXT_RUNTIME: Input should be 'auto', 'torch' or 'onnx' "
        "(got 'tensorflow')"
    )
