"""Video hits: grouping frames per video, their JSON, and the table's clock."""

from __future__ import annotations

from indexer.stores.interface import ScoredPoint
from search.cli.common import clock
from search.engine import group_video_hits
from search.results import Hit


def frame(point_id: int, uri: str, t: float, score: float) -> ScoredPoint:
    return ScoredPoint(point_id, score, {"uri": uri, "kind": "video", "t": t})


def image(point_id: int, uri: str, score: float) -> ScoredPoint:
    return ScoredPoint(point_id, score, {"uri": uri})


RANKED = [
    frame(1, "/v/a.mp4", 4.0, 0.90),
    frame(2, "/v/a.mp4", 3.0, 0.88),
    image(3, "/p/x.jpg", 0.85),
    frame(4, "/v/b.webm", 12.0, 0.80),
    frame(5, "/v/a.mp4", 60.0, 0.70),  # more than 0.1 below a.mp4's best: not a moment
    image(6, "/p/y.jpg", 0.60),
]


def fetch_from(points: list[ScoredPoint], calls: list[tuple[int, int]]):
    def fetch(limit: int, offset: int) -> tuple[list[ScoredPoint], int]:
        calls.append((limit, offset))
        return points[offset : offset + limit], 0

    return fetch


def test_frames_are_grouped_per_video() -> None:
    calls: list[tuple[int, int]] = []
    hits, collapsed = group_video_hits(fetch_from(RANKED, calls), k=3, offset=0)
    assert [(h.id, h.uri, h.t) for h in hits] == [
        (1, "/v/a.mp4", 4.0),
        (3, "/p/x.jpg", None),
        (4, "/v/b.webm", 12.0),
    ]
    assert hits[0].moments == [{"t": 3.0, "score": 0.88}] and hits[1].moments is None
    assert collapsed == 0 and calls[0] == (3, 0) and calls[1][0] >= 50  # widened once
    page, _ = group_video_hits(fetch_from(RANKED, []), k=2, offset=2)
    assert [h.id for h in page] == [4, 6]


def test_images_alone_are_answered_as_before() -> None:
    images = [image(i, f"/p/{i}.jpg", 1 - i / 10) for i in range(5)]
    calls: list[tuple[int, int]] = []
    hits, _ = group_video_hits(fetch_from(images, calls), k=2, offset=0)
    assert [h.id for h in hits] == [0, 1] and calls == [(2, 0)]
    hits, _ = group_video_hits(fetch_from(images, []), k=2, offset=2)
    assert [h.id for h in hits] == [2, 3]


def test_hit_json_round_trip() -> None:
    payload = {"uri": "/v/a.mp4", "kind": "video", "t": 83.5}
    hit = Hit(7, "/v/a.mp4", 0.5, payload, [{"t": 84.0, "score": 0.4}])
    data = hit.to_dict()
    assert data["t"] == 83.5 and data["moments"] == [{"t": 84.0, "score": 0.4}]
    assert Hit.from_dict(data) == hit
    assert Hit.from_dict(Hit(7, "/v/a.mp4", 0.5, payload).to_dict()).moments is None
    plain = Hit(8, "/p/x.jpg", 0.5, {"uri": "/p/x.jpg", "t": 3}).to_dict()
    assert "t" not in plain and "moments" not in plain  # only video frames carry them


def test_clock() -> None:
    assert [clock(s) for s in (0, 83.4, 3599.9, 3600, 36_000)] == [
        "0:00:00",
        "0:01:23",
        "0:59:59",
        "1:00:00",
        "10:00:00",
    ]
