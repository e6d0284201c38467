"""The Prefect flow indexes videos as the inline run does: one ``index-video`` task each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from shape_collection import write_shape_images
from video_files import RED_CIRCLE_STORY, make_video

from indexer.config import StoreSettings
from indexer.stores.opening import open_store
from search.cli import main

pytestmark = pytest.mark.slow


def index(*args: str) -> dict:
    result = CliRunner().invoke(main, ["index", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def points(location: Path) -> dict[int, tuple[dict, np.ndarray]]:
    with open_store(StoreSettings(location=str(location))) as store:
        return {p.id: (p.payload, p.vector) for p in store.scroll(with_vectors=True)}


def test_the_flow_indexes_videos_like_the_inline_run(prefect_env, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    write_shape_images(folder, 3)
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    (folder / "empty.webm").write_bytes(b"")
    runs = {}
    for runner in ("inline", "prefect"):
        runs[runner] = index(
            str(folder), "--model", "anyshot-tiny", "--store", str(tmp_path / runner),
            "--runner", runner,
        )  # fmt: skip
    keys = ("indexed", "videos", "frames", "skipped")
    assert [runs["prefect"][k] for k in keys] == [runs["inline"][k] for k in keys]
    assert runs["prefect"]["videos"] == 1 and runs["prefect"]["frames"] >= 4
    inline, flow = points(tmp_path / "inline"), points(tmp_path / "prefect")
    assert sorted(inline) == sorted(flow)
    for point_id, (payload, vector) in inline.items():
        assert flow[point_id][0] == payload
        np.testing.assert_allclose(flow[point_id][1], vector, atol=1e-5)


def test_dask_workers_read_a_long_video_in_stretches(
    prefect_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stretches of 3 s: the 8 s story is read as three tasks; the store holds one complete
    video that a later inline run finds unchanged, and "a red circle" finds its moment."""
    folder = tmp_path / "media"
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    (folder / "empty.webm").write_bytes(b"")
    monkeypatch.setenv("ANYSHOT_INDEX__VIDEO_PART_SECONDS", "3")
    store = str(tmp_path / "store")
    summary = index(
        str(folder), "--model", "anyshot-tiny", "--store", store,
        "--runner", "dask", "--dask-workers", "2",
    )  # fmt: skip
    assert summary["videos"] == 1 and summary["frames"] >= 6 and summary["skipped"] == 1
    assert summary["partial_videos"] == []
    stored = points(tmp_path / "store")
    times = sorted(payload["t"] for payload, _ in stored.values())
    assert times[0] == 0.0 and max(np.diff(times)) <= 3.0 and times[-1] >= 6.0
    assert min(np.diff(times)) >= 1.0 - 1e-6  # min_gap holds across stretch edges
    assert {payload["frames"] for payload, _ in stored.values()} == {len(stored)}
    again = index(str(folder), "--model", "anyshot-tiny", "--store", store, "--runner", "inline")
    assert again["videos"] == 0 and again["unchanged"] == 1
    result = CliRunner().invoke(
        main, ["search", "a red circle", "--store", store, "-k", "1", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    hit = json.loads(result.stdout.strip().splitlines()[0])
    assert hit["uri"].endswith("story.mp4") and 3.0 <= hit["t"] < 5.0
