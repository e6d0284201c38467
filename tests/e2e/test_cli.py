"""The walking skeleton end to end: `anyshot index` then `anyshot search`, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import json_lines, run
from PIL import Image


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def test_index_then_search_by_image_returns_it_first(image_folder, random_model_name, store):
    code, out, _ = run(
        "index",
        str(image_folder["red"].parent),
        "--model",
        random_model_name,
        "--store",
        store,
        "--json",
    )
    assert code == 0
    summary = last_json(out)
    assert {k: summary[k] for k in ("indexed", "unchanged", "removed", "skipped")} == {
        "indexed": 6,
        "unchanged": 0,
        "removed": 0,
        "skipped": 0,
    }
    assert isinstance(summary["seconds"], float)

    for name in ("red", "blue", "yellow"):
        code, out, _ = run(
            "search", "--image", str(image_folder[name]), "--store", store, "-k", "3", "--json"
        )
        assert code == 0
        hits = json_lines(out)
        assert len(hits) == 3
        assert hits[0]["uri"] == str(image_folder[name])
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
        assert all({"id", "uri", "score"} <= hit.keys() for hit in hits)
        assert isinstance(hits[0]["id"], int)


def test_search_by_text_and_by_id(image_folder, random_model_name, store):
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", store)
    code, out, _ = run("search", "a red square", "--store", store, "-k", "6", "--json")
    assert code == 0
    hits = json_lines(out)
    assert sorted(h["uri"] for h in hits) == sorted(str(p) for p in image_folder.values())
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    code, out, _ = run("search", "--id", str(hits[2]["id"]), "--store", store, "--json")
    assert json_lines(out)[0]["id"] == hits[2]["id"]
    code, out, _ = run("search", "a red square", "--store", store, "-k", "2")
    assert code == 0
    assert "score" in out.splitlines()[0] and len(out.strip().splitlines()) == 3


def test_reindex_is_incremental(image_folder, random_model_name, store):
    folder = str(image_folder["red"].parent)
    run("index", folder, "--model", random_model_name, "--store", store)
    code, out, _ = run("index", folder, "--store", store, "--json")
    assert code == 0
    assert last_json(out)["indexed"] == 0 and last_json(out)["unchanged"] == 6

    image_folder["green"].unlink()  # vanished: removed
    shutil.copy(image_folder["red"], Path(folder) / "red-copy.jpg")  # new
    os.utime(image_folder["blue"], (1e9, 1e9))  # touched, same content: not re-embedded
    Image.new("RGB", (50, 50), "orange").save(image_folder["purple"])  # new content
    code, out, _ = run("index", folder, "--store", store, "--json")
    summary = last_json(out)
    assert (summary["indexed"], summary["unchanged"], summary["removed"]) == (2, 4, 1)
    code, out, _ = run("info", "--store", store, "--json")
    assert last_json(out)["points"] == 6
    code, out, _ = run("index", folder, "--store", store, "--json")
    assert (last_json(out)["indexed"], last_json(out)["unchanged"]) == (0, 6)
    code, out, _ = run(
        "search", "--image", str(image_folder["purple"]), "--store", store, "-k", "1", "--json"
    )
    assert json_lines(out)[0]["payload"]["width"] == 50


def test_bad_files_are_skipped_and_counted(image_folder, random_model_name, store):
    folder = image_folder["red"].parent
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not an image")
    truncated = image_folder["red"].read_bytes()
    (folder / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    code, out, _ = run(
        "index", str(folder), "--model", random_model_name, "--store", store, "--json"
    )
    assert code == 0
    summary = last_json(out)
    assert (summary["indexed"], summary["skipped"]) == (6, 3)
    reasons = {Path(s["uri"]).name: s["reason"] for s in summary["skipped_images"]}
    assert reasons["empty.jpg"] == "empty file"
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    report = (Path(store) / "state" / "skipped.csv").read_text().splitlines()
    assert report[0] == "uri,size,mtime,reason" and len(report) == 4

    # known bad files are not read again until they change; then they are retried
    code, out, _ = run("index", str(folder), "--store", store, "--json")
    summary = last_json(out)
    assert (summary["indexed"], summary["unchanged"], summary["skipped"]) == (0, 6, 3)
    image_folder["red"].with_name("notes.jpg").write_bytes(image_folder["red"].read_bytes())
    code, out, _ = run("index", str(folder), "--store", store, "--json")
    summary = last_json(out)
    assert (summary["indexed"], summary["unchanged"], summary["skipped"]) == (1, 6, 2)


def test_a_single_image_and_a_list_file_are_sources(
    image_folder, random_model_name, store, tmp_path
):
    code, out, _ = run(
        "index", str(image_folder["red"]), "--model", random_model_name, "--store", store, "--json"
    )
    assert last_json(out)["indexed"] == 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two images\n{image_folder['blue']}\n{image_folder['green']}\n")
    code, out, _ = run("index", str(listing), "--store", store, "--json")
    assert code == 0 and last_json(out)["indexed"] == 2
    code, out, _ = run("info", "--store", store, "--json")
    assert last_json(out)["points"] == 3


def test_memory_store_works_in_one_process(image_folder, random_model_name):
    code, out, _ = run(
        "index",
        str(image_folder["red"].parent),
        "--model",
        random_model_name,
        "--store",
        ":memory:",
        "--json",
    )
    assert code == 0 and last_json(out)["indexed"] == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/no/such/folder"], "no such file or folder"),
        (["search", "   "], "empty text query"),
        (["search"], "give exactly one query"),
        (["search", "x", "--image", "/no/such.jpg"], "give exactly one query"),
        (["search", "--image", "/no/such.jpg"], "cannot use the example image"),
        (["search", "--id", "12345"], "no image with id 12345"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(image_folder, random_model_name, store, args, message):
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", store)
    code, _out, err = run(*args, "--store", store)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_search_before_index_and_model_mismatch(
    image_folder, random_model_name, other_model_dir, store
):
    code, _, err = run("search", "x", "--store", store)
    assert code == 1 and "no collection at" in err
    run("index", str(image_folder["red"].parent), "--model", random_model_name, "--store", store)
    for command in (["search", "a cat"], ["index", str(image_folder["red"].parent)]):
        code, _, err = run(*command, "--store", store, "--model", f"local-dir:{other_model_dir}")
        assert code == 1
        assert "this collection was built with model" in err


def test_pretrained_model_offline_is_a_clear_error(image_folder, store):
    code, _, err = run(
        "index", str(image_folder["red"].parent), "--store", store, "--model", "ViT-B-32"
    )
    assert code == 1
    assert "is not cached" in err and "--pretrained" in err


def test_console_script_runs(image_folder, random_model_name, store):
    script = Path(sys.executable).parent / "anyshot"
    result = subprocess.run(
        [
            str(script),
            "index",
            str(image_folder["red"].parent),
            "--model",
            random_model_name,
            "--store",
            store,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["indexed"] == 6
    help_text = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "index" in help_text and "search" in help_text
