"""Videos indexed beside images with anyshot-tiny, in a real embedded store: the moment that
matches, incremental and resumable runs, and bad videos skipped without losing indexed data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from shape_collection import write_shape_images
from video_files import RED_CIRCLE_STORY, Segment, make_video

from indexer.config import build_settings
from indexer.video import frame_id, read_frame_at
from indexer.video_indexing import stored_frames
from search.client import ImageSearch

LATE_CIRCLE = [
    Segment(0, 4, "ring", "black"),
    Segment(4, 6, "circle", "red"),
    Segment(6, 9, "star", "blue"),
]
"""9 s: a red circle from 4 s to 6 s."""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    write_shape_images(folder / "photos", 12)
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    make_video(folder / "clips" / "late.webm", LATE_CIRCLE, codec="vp9")
    return folder


@pytest.fixture
def client(tmp_path: Path):
    settings = build_settings(store=str(tmp_path / "store"), model="anyshot-tiny", workers=0)
    with ImageSearch(settings) as opened:
        yield opened


def frames_of(client: ImageSearch, path: Path) -> list[dict]:
    return sorted((p.payload for p in stored_frames(client.store, str(path))), key=lambda p: p["t"])


def test_videos_are_indexed_as_moments(client: ImageSearch, library: Path) -> None:
    report = client.index(library)
    assert (report.indexed, report.videos, report.skipped) == (14, 2, 0)
    story = frames_of(client, library / "story.mp4")
    late = frames_of(client, library / "clips" / "late.webm")
    assert report.frames == len(story) + len(late) and len(story) >= 4
    first = story[0]
    assert first["kind"] == "video" and first["t"] == 0.0 and first["format"] == "MP4"
    assert first["frames"] == len(story) and abs(first["duration"] - 8.0) < 0.2
    assert first["size"] == (library / "story.mp4").stat().st_size
    summary = report.to_dict()
    assert summary["videos"] == 2 and summary["frames"] == report.frames
    assert {"indexed", "unchanged", "removed", "skipped", "problems"} <= set(summary)

    hits = client.search("a red circle", k=4)
    videos = [hit for hit in hits if hit.t is not None]
    assert {hit.uri for hit in videos} == {
        str(library / "story.mp4"),
        str(library / "clips/late.webm"),
    }
    assert len(videos) == 2  # grouped: one hit per video
    windows = {str(library / "story.mp4"): (3.0, 5.0), str(library / "clips/late.webm"): (4.0, 6.0)}
    for hit in videos:
        start, end = windows[hit.uri]
        assert start <= hit.t < end, hit
        assert hit.id == frame_id(hit.uri, hit.t)
        assert all(m["score"] <= hit.score for m in hit.moments)
        data = hit.to_dict()
        assert data["t"] == hit.t and data["moments"] == hit.moments
    assert "t" not in next(hit for hit in hits if hit.t is None).to_dict()  # images unchanged

    raw = client.search("a red circle", k=6, group=False)
    assert len({hit.uri for hit in raw if hit.t is not None}) < len([h for h in raw if h.t])
    assert all(hit.moments is None for hit in raw)

    best = videos[0]
    similar = client.search(similar_to=best.id, k=1)  # "more like this" from a frame
    assert similar[0].uri == best.uri and similar[0].t == best.t
    frame = read_frame_at(str(library / "story.mp4"), 4.0)
    by_image = client.search(image=frame, k=3)
    assert any(hit.uri == str(library / "story.mp4") and 3 <= hit.t < 5 for hit in by_image)


def test_runs_are_incremental(client: ImageSearch, library: Path) -> None:
    client.index(library)
    story = library / "story.mp4"
    again = client.index(library)
    assert (again.indexed, again.videos, again.frames, again.unchanged) == (0, 0, 0, 14)

    os.utime(story, (1_700_000_000, 1_700_000_000))  # touched, same content
    touched = client.index(library)
    assert (touched.videos, touched.unchanged) == (0, 14)
    assert {p["mtime"] for p in frames_of(client, story)} == {1_700_000_000.0}

    old_ids = {p.id for p in stored_frames(client.store, str(story))}
    make_video(story, [Segment(0, 12, "heart", "cyan")], fps=5)  # changed: other frames
    changed = client.index(library)
    assert (changed.videos, changed.indexed) == (1, 1)
    frames = frames_of(client, story)
    assert len(frames) == changed.frames == frames[0]["frames"]
    assert {p["size"] for p in frames} == {story.stat().st_size}
    assert max(p["t"] for p in frames) > 8.0
    ids = {p.id for p in stored_frames(client.store, str(story))}
    assert not (old_ids - ids) - {frame_id(str(story), p["t"]) for p in frames}

    late = library / "clips" / "late.webm"
    late.unlink()
    gone = client.index(library)
    assert gone.removed == 1 and frames_of(client, late) == []
    assert client.store.count() == 12 + len(frames)


def test_a_run_killed_mid_video_resumes_without_duplicates(
    client: ImageSearch, library: Path
) -> None:
    client.index(library)
    story = library / "story.mp4"
    stored = stored_frames(client.store, str(story))
    count = len(stored)
    client.store.delete([p.id for p in stored[: count // 2]])  # killed while writing them
    stale = dict(stored[-1].payload, t=99.0, size=1)  # an old frame a killed run left behind
    vector = client.store.retrieve([stored[-1].id], with_vectors=True)[0].vector
    client.store.upsert([frame_id(str(story), 99.0)], vector[None, :], [stale])
    resumed = client.index(library)
    assert (resumed.videos, resumed.frames) == (1, count)
    frames = frames_of(client, story)
    assert len(frames) == count and len({p["t"] for p in frames}) == count
    assert 99.0 not in {p["t"] for p in frames}


def test_bad_videos_are_skipped_and_a_broken_change_keeps_the_frames(
    client: ImageSearch, library: Path
) -> None:
    (library / "empty.mp4").write_bytes(b"")
    (library / "notes.mkv").write_bytes(b"not a video at all\n" * 50)
    report = client.index(library)
    reasons = {Path(s.uri).name: s.reason for s in report.skipped_images}
    assert set(reasons) == {"empty.mp4", "notes.mkv"} and report.videos == 2
    assert all(reason.startswith("cannot open video") for reason in reasons.values())

    story = library / "story.mp4"
    before = frames_of(client, story)
    story.write_bytes(b"\x00" * 5000)  # changed, and no longer a video
    broken = client.index(library)
    assert str(story) in {s.uri for s in broken.skipped_images}
    assert frames_of(client, story) == before  # never loses indexed data
    summary = broken.to_dict()
    assert any(p["path"] == str(story) for p in summary["problems"])


def test_a_video_is_no_duplicate_of_itself(client: ImageSearch, tmp_path: Path) -> None:
    folder = tmp_path / "still"
    make_video(folder / "still.mp4", [Segment(0, 25, "star", "blue")], fps=5)
    (folder / "copy.mp4").write_bytes((folder / "still.mp4").read_bytes())
    report = client.index(folder)
    assert report.videos == 2 and report.frames >= 6
    groups = client.duplicates(threshold=0.98)
    assert groups  # the copy's frames are the original's
    for group in groups:
        assert len(set(group.uris)) == len(group.uris) or set(group.uris) == {
            str(folder / "still.mp4"),
            str(folder / "copy.mp4"),
        }
    assert all(len(set(group.uris)) > 1 for group in groups)  # never one video alone


def test_a_generated_search_groups_frames_per_video(client: ImageSearch, tmp_path: Path) -> None:
    """--generate answers one hit per video too (the best frame, the others as moments)."""
    folder = tmp_path / "captioned"
    for path in write_shape_images(folder, 24):
        shape, colour, _ = path.stem.split("-")
        path.with_suffix(".txt").write_text(f"a {colour} {shape}")
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    client.index(folder)
    assert client.train_generator()["pairs"] >= 20
    grouped = client.search("a red circle", k=6, generate=True)
    uris = [hit.uri for hit in grouped]
    assert len(uris) == len(set(uris)) and str(folder / "story.mp4") in uris
    story = next(hit for hit in grouped if hit.uri.endswith("story.mp4"))
    assert story.t is not None and story.moments is not None
    raw = client.search("a red circle", k=30, generate=True, group=False)
    assert sum(hit.uri.endswith("story.mp4") for hit in raw) > 1  # frames one by one
