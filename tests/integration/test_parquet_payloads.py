"""Parquet shards keep every payload key an index run stores: a photo's metadata and place
(``taken``, ``lat``, ``place``, ``keywords``, ...) and a video frame's ``t``, ``kind`` and
``duration``; ``anyshot load`` rebuilds a store that filters and finds moments like the first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from photo_files import write_trip
from video_files import RED_CIRCLE_STORY, make_video

from indexer.config import StoreSettings
from indexer.stores.opening import open_store
from search.cli import main


def run(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = CliRunner(env=env).invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.strip().splitlines()]


def points(location: Path) -> dict[int, tuple[dict, np.ndarray]]:
    with open_store(StoreSettings(location=str(location))) as store:
        return {p.id: (p.payload, p.vector) for p in store.scroll(with_vectors=True)}


def test_shards_carry_metadata_and_video_moments_through_load(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    write_trip(folder)
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    shards = tmp_path / "parquet"
    first, again = tmp_path / "first", tmp_path / "again"
    env = {"ANYSHOT_INDEX__PARQUET_DIR": str(shards)}
    summary = run("index", str(folder), "--model", "anyshot-tiny", "--store", str(first), env=env)
    assert summary[-1]["videos"] == 1 and summary[-1]["indexed"] == 5
    loaded = run("load", str(shards), "--store", str(again))[-1]
    assert loaded["rejected"] == 0 and loaded["loaded"] == loaded["points"]
    before, after = points(first), points(again)
    assert sorted(before) == sorted(after)
    for point_id, (payload, vector) in before.items():
        assert after[point_id][0] == payload
        np.testing.assert_allclose(after[point_id][1], vector, atol=1e-6)
    kinds = [payload.get("kind") for payload, _ in after.values()]
    assert kinds.count("video") == summary[-1]["frames"] >= 4
    lisbon = next(p for p, _ in after.values() if p["uri"].endswith("lisbon.jpg"))
    assert (lisbon["country"], lisbon["keywords"]) == ("PT", ["Holiday", "beach"])
    # The rebuilt store answers filters and moments as the first does.
    listed = run("search", "--filter", "country=PT", "--store", str(again))
    assert sorted(hit["uri"].rsplit("/", 1)[-1] for hit in listed) == ["lisbon.jpg", "porto.jpg"]
    hit = run("search", "a red circle", "--store", str(again), "-k", "1")[0]
    assert hit["uri"].endswith("story.mp4") and 3.0 <= hit["t"] < 5.0
