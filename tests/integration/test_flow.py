"""The Prefect indexing flow: real flow runs on a real Prefect server, locally and on Dask."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from indexer.config import Settings, StoreSettings
from indexer.errors import StoreLockedError
from indexer.stores.opening import open_store
from indexer.trusted_roots import read_trusted_roots
from search.cli import main

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def store_contents(location: str) -> dict[int, tuple[dict, np.ndarray]]:
    with open_store(StoreSettings(location=location)) as store:
        return {p.id: (p.payload, p.vector) for p in store.scroll(with_vectors=True)}


def assert_same_points(left: str, right: str) -> None:
    a, b = store_contents(left), store_contents(right)
    assert sorted(a) == sorted(b)
    for point_id, (payload, vector) in a.items():
        assert b[point_id][0] == payload
        np.testing.assert_allclose(b[point_id][1], vector, atol=1e-5)


@pytest.mark.parametrize("image_runtime", ["torch", "onnx"])
def test_prefect_flow_indexes_like_the_inline_run(
    prefect_env, image_folder, random_model_name, tmp_path, monkeypatch, caplog, image_runtime
):
    # onnx: the inline run exports the image tower first (fp32: the export runs nowhere else),
    # and the flow embeds with the same export
    caplog.set_level(logging.INFO, logger="indexer.image_onnx")
    monkeypatch.setenv("ANYSHOT_MODEL__IMAGE_RUNTIME", image_runtime)
    monkeypatch.setenv("ANYSHOT_MODEL__PRECISION", "fp32")
    monkeypatch.setenv("ANYSHOT_MODEL__CACHE_DIR", str(tmp_path / "cache"))
    folder = image_folder["red"].parent
    (folder / "broken.jpg").write_text("not an image")
    inline = run_cli(
        "index",
        str(folder),
        "--model",
        random_model_name,
        "--store",
        str(tmp_path / "inline"),
        "--runner",
        "inline",
        "--json",
    )
    flow = run_cli(
        "index",
        str(folder),
        "--model",
        random_model_name,
        "--store",
        str(tmp_path / "flow"),
        "--runner",
        "prefect",
        "--json",
    )
    keys = ("indexed", "unchanged", "removed", "skipped")
    assert [flow[k] for k in keys] == [inline[k] for k in keys] == [6, 0, 0, 1]
    assert (
        flow["problems"]
        == inline["problems"]
        == [{"path": str(folder / "broken.jpg"), "reason": "not an image (cannot identify format)"}]
    )
    assert_same_points(str(tmp_path / "inline"), str(tmp_path / "flow"))
    assert trusted(str(tmp_path / "flow")) == trusted(str(tmp_path / "inline")) == (str(folder),)
    through_onnx = caplog.text.count("go through the ONNX export")
    assert through_onnx == (2 if image_runtime == "onnx" else 0)  # the inline run and the flow

    again = run_cli(
        "index", str(folder), "--store", str(tmp_path / "flow"), "--runner", "auto", "--json"
    )  # auto: PREFECT_API_URL is set
    assert [again[k] for k in keys] == [0, 6, 0, 1]

    from pipelines.index_flow import run_index_flow

    calls: list[tuple[int, int]] = []
    settings = Settings(
        model={"name": random_model_name},
        store={"location": str(tmp_path / "hooked")},
        index={"batch_size": 4},
    )
    run_index_flow(str(folder), settings, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 7), (7, 7)]

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_latest_artifacts()}
    assert artifacts["index-progress"].data == 100.0
    skipped_rows = json.loads(artifacts["skipped-images"].data)
    assert skipped_rows == [
        {"uri": str(folder / "broken.jpg"), "reason": "not an image (cannot identify format)"}
    ]


def test_dask_runner_gets_exactly_the_points_of_the_single_process_run(
    prefect_env, image_folder, random_model_name, tmp_path, monkeypatch
):
    # Exact vectors need a batch-independent precision: int8 (auto on AVX2 CPUs) scales each
    # batch's activations by its own range, and the Dask run batches differently.
    monkeypatch.setenv("ANYSHOT_MODEL__PRECISION", "fp32")
    folder = str(image_folder["red"].parent)
    single = run_cli(
        "index",
        folder,
        "--model",
        random_model_name,
        "--store",
        str(tmp_path / "single"),
        "--runner",
        "inline",
        "--json",
    )
    dask = run_cli(
        "index",
        folder,
        "--model",
        random_model_name,
        "--store",
        str(tmp_path / "dask"),
        "--runner",
        "dask",
        "--dask-workers",
        "2",
        "--batch-size",
        "2",
        "--json",
    )
    assert dask["indexed"] == single["indexed"] == 6
    assert_same_points(str(tmp_path / "single"), str(tmp_path / "dask"))
    assert trusted(str(tmp_path / "dask")) == (folder,)


def trusted(location: str) -> tuple[str, ...]:
    with open_store(StoreSettings(location=location)) as store:
        return read_trusted_roots(store)


def test_the_flow_keeps_what_it_cannot_see_and_refuses_to_empty_a_source(
    prefect_env, image_folder, random_model_name, tmp_path
):
    folder = image_folder["red"].parent
    drive = tmp_path / "drive"
    drive.mkdir()
    Image.new("RGB", (40, 40), "orange").save(drive / "orange.png")
    (folder / "drive").symlink_to(drive, target_is_directory=True)
    store = str(tmp_path / "store")
    common = ("--store", store, "--runner", "prefect", "--workers", "0", "--json")
    first = run_cli("index", str(folder), "--model", random_model_name, *common)
    assert [first[k] for k in ("indexed", "unchanged", "removed", "skipped")] == [7, 0, 0, 0]
    shutil.rmtree(drive)  # an unmounted drive

    kept = run_cli("index", str(folder), *common)

    assert [kept[k] for k in ("indexed", "unchanged", "removed", "skipped")] == [0, 7, 0, 0]
    assert kept["problems"] == [{"path": str(folder / "drive"), "reason": "broken symlink"}]
    result = CliRunner().invoke(main, ["index", str(folder / "nested"), *common])
    assert result.exit_code == 0  # a subfolder: its images are seen, nothing to remove
    shutil.rmtree(folder / "nested")
    (folder / "nested").mkdir()
    result = CliRunner().invoke(main, ["index", str(folder / "nested"), *common])
    assert result.exit_code == 1
    assert "holds no images now, but the store holds 3 images from it" in result.stderr
    assert len(store_contents(store)) == 7


def make_many_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img-{index:04d}.png")


def test_a_killed_run_resumes_without_duplicates_or_reembedding(random_model_name, tmp_path):
    images, store = tmp_path / "many", tmp_path / "store"
    make_many_images(images, 600)
    command = [
        str(Path(sys.executable).parent / "anyshot"),
        "index",
        str(images),
        "--model",
        random_model_name,
        "--store",
        str(store),
        "--runner",
        "inline",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--json",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(list((store / "parquet").glob("part-*.parquet"))) < 5:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL

    stored_before = len(store_contents(str(store)))
    assert 0 < stored_before < 600
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["unchanged"] == stored_before
    assert summary["indexed"] == 600 - stored_before
    contents = store_contents(str(store))
    assert len(contents) == 600
    assert sorted(Path(p["uri"]).name for p, _ in contents.values()) == sorted(
        f"img-{i:04d}.png" for i in range(600)
    )


def wait_for_points(location: str, expected: int, timeout: float) -> int:
    """Poll an embedded store that scheduled runs open and close; return its point count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        try:
            with open_store(StoreSettings(location=location)) as store:
                count = store.count()
        except StoreLockedError:
            count = -1  # a scheduled run holds the store right now
        if count == expected:
            return count
        time.sleep(1)
    return count


def test_schedule_runs_the_flow_and_indexes_new_files(
    prefect_env, image_folder, random_model_name, tmp_path
):
    folder = image_folder["red"].parent
    store = str(tmp_path / "store")
    command = [
        str(Path(sys.executable).parent / "anyshot"),
        "schedule",
        str(folder),
        "--interval",
        "3",
        "--model",
        random_model_name,
        "--store",
        store,
        "--name",
        "test-schedule",
    ]
    serve = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    try:
        assert wait_for_points(store, 6, timeout=240) == 6
        Image.new("RGB", (64, 64), "orange").save(folder / "new-orange.png")
        assert wait_for_points(store, 7, timeout=240) == 7
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)


def test_schedule_without_a_server_is_a_clear_error(image_folder, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(
        main, ["schedule", str(image_folder["red"].parent), "--interval", "60", "--prune"]
    )
    assert result.exit_code == 1
    assert "scheduling needs a Prefect server" in result.stderr
    result = CliRunner().invoke(main, ["schedule", "x", "--cron", "* * * * *", "--interval", "60"])
    assert result.exit_code == 1 and "exactly one schedule" in result.stderr
