"""The contract of issue 16 through the shells: `anyshot index --json` counts videos and frames,
`anyshot search --json` answers a video with its `t` and `moments`, the table prints
`path @ 0:00:04`; over HTTP, frame thumbnails, `/videos/{id}` with Range requests (indexed videos
under trusted folders only), and clip-back's `/knn-service` with the video URL at the moment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import json_lines, run
from fastapi.testclient import TestClient
from shape_collection import write_shape_images
from video_files import RED_CIRCLE_STORY, make_video

from indexer.config import build_settings
from indexer.stores.opening import open_store
from search.api import create_app


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(folder, store, summary): eight shape images, one video, one broken video."""
    root = tmp_path_factory.mktemp("video-shells")
    folder = root / "media"
    write_shape_images(folder, 8)
    make_video(folder / "story.mp4", RED_CIRCLE_STORY)
    (folder / "broken.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x00" * 100)
    store = root / "store"
    code, out, _ = run(
        "index", str(folder), "--store", str(store), "--model", "anyshot-tiny", "--json"
    )
    assert code == 0
    return folder, store, json.loads(out.strip().splitlines()[-1])


def test_the_index_summary_counts_videos_and_frames(indexed: tuple[Path, Path, dict]) -> None:
    folder, _, summary = indexed
    assert summary["videos"] == 1 and summary["frames"] >= 4
    assert summary["indexed"] == 9 and summary["skipped"] == 1
    assert summary["skipped_images"][0]["uri"] == str(folder / "broken.mov")
    for key in ("unchanged", "removed", "seconds", "images_per_second", "problems"):
        assert key in summary


def test_an_images_only_summary_says_zero(tmp_path: Path) -> None:
    write_shape_images(tmp_path / "photos", 3)
    code, out, _ = run(
        "index", str(tmp_path / "photos"), "--store", str(tmp_path / "s"), "--model",
        "anyshot-tiny", "--json",
    )  # fmt: skip
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and (summary["videos"], summary["frames"], summary["indexed"]) == (0, 0, 3)


def test_search_answers_the_moment(indexed: tuple[Path, Path, dict]) -> None:
    folder, store, _ = indexed
    code, out, _ = run("search", "a red circle", "--store", str(store), "-k", "3", "--json")
    assert code == 0
    lines = json_lines(out)
    video = [line for line in lines if line["uri"] == str(folder / "story.mp4")]
    assert len(video) == 1  # grouped
    hit = video[0]
    assert {"id", "uri", "score", "t", "moments"} <= set(hit)
    assert 3.0 <= hit["t"] < 5.0
    assert all(set(m) == {"t", "score"} and m["score"] <= hit["score"] for m in hit["moments"])
    assert all("t" not in line for line in lines if line is not hit)

    code, out, _ = run("search", "a red circle", "--store", str(store), "-k", "3")
    assert code == 0 and f"{folder / 'story.mp4'} @ 0:00:0{int(hit['t'])}" in out

    code, out, _ = run(
        "search", "a red circle", "--store", str(store), "-k", "12", "--no-group", "--json"
    )
    frames = [line for line in json_lines(out) if "t" in line]
    assert len(frames) > 1 and all(line["moments"] == [] for line in frames)

    code, out, _ = run("search", "--id", str(hit["id"]), "--store", str(store), "-k", "1", "--json")
    assert code == 0 and json_lines(out)[0]["t"] == hit["t"]


def test_http_serves_frames_and_videos(indexed: tuple[Path, Path, dict]) -> None:
    folder, store, _ = indexed
    video_file = folder / "story.mp4"
    size = video_file.stat().st_size
    with TestClient(create_app(build_settings(store=str(store)))) as http:
        reply = http.get("/search", params={"q": "a red circle", "k": 3})
        assert reply.status_code == 200
        hit = next(h for h in reply.json()["hits"] if "t" in h)
        frame, image = hit["id"], next(h for h in reply.json()["hits"] if "t" not in h)
        assert "moments" not in image  # an image hit keeps its old shape
        assert hit["image_url"] == f"/videos/{frame}#t={hit['t']:g}"
        assert hit["thumbnail_url"] == f"/thumbs/{frame}"
        assert isinstance(hit["moments"], list)

        thumb = http.get(f"/thumbs/{frame}", params={"size": 64})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

        whole = http.get(f"/videos/{frame}")
        assert whole.status_code == 200 and whole.content == video_file.read_bytes()
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        part = http.get(f"/videos/{frame}", headers={"Range": "bytes=10-29"})
        assert part.status_code == 206 and part.content == video_file.read_bytes()[10:30]
        assert part.headers["content-range"] == f"bytes 10-29/{size}"
        tail = http.get(f"/videos/{frame}", headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == video_file.read_bytes()[-5:]
        past = http.get(f"/videos/{frame}", headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        assert http.get(f"/videos/{image['id']}").status_code == 404  # an image is no video
        assert http.get("/videos/12345").status_code == 404
        assert http.get("/videos/-1").status_code == 422

        knn = http.post(
            "/knn-service", json={"text": "a red circle", "num_images": 3, "modality": "image"}
        )
        assert knn.status_code == 200
        entry = next(e for e in knn.json() if "t" in e)
        assert entry["url"].endswith(f"/videos/{frame}#t={hit['t']:g}")
        assert entry["image"] and entry["image_path"] == str(video_file)


def test_a_frame_whose_uri_was_rewritten_is_not_served(
    indexed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    """A payload proves nothing: a frame pointing outside the trusted folders answers 404."""
    folder, store, _ = indexed
    copy = tmp_path / "store"
    import shutil

    shutil.copytree(store, copy)
    outside = make_video(tmp_path / "outside.mp4", RED_CIRCLE_STORY)
    settings = build_settings(store=str(copy))
    with open_store(settings.store) as opened:
        frame = next(
            p.id for p in opened.scroll() if p.payload.get("uri") == str(folder / "story.mp4")
        )
        opened.set_payload([frame], {"uri": str(outside)})
        opened.flush()
    with TestClient(create_app(settings)) as http:
        assert http.get(f"/videos/{frame}").status_code == 404
        assert http.get(f"/thumbs/{frame}").status_code == 404
        assert http.get(f"/images/{frame}").status_code == 404
