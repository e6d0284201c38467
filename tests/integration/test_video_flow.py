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
