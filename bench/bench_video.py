"""Videos: indexing speed (video seconds per wall second) and where the moment is found.

Run from the repository root (not in CI)::

    python bench/bench_video.py                      # speed table + retrieval, ~5 min on 2 cores
    python bench/bench_video.py --long               # adds a 30-minute 480p video
    python bench/bench_video.py --retrieval 48       # more generated videos for the hit rate
    python bench/bench_video.py --split --no-speed --retrieval 0   # one long video cut in parts

**Speed.** For each (codec, size, length) a video of the synthetic domain's shapes is made with
the encoders in PyAV's wheel (24 fps; a new scene every 4-8 s, the shape drifting), then indexed
alone into a fresh in-memory store by :func:`indexer.indexing.index_source` with the model
given (anyshot-tiny by default: the embedding is then cheap and the numbers show the decoding).
Prints video seconds indexed per wall second, frames kept per minute of video, and the share of
the run's time spent decoding (:attr:`IndexReport.video_decode_seconds`) and embedding.

**Retrieval.** ``--retrieval N`` videos (5-20 s, 320x180, codecs in turn, random backgrounds,
other shapes before and after) each show "a red circle" in a random 2-second window; all are
indexed into one store, and ``a red circle`` is searched within each video (grouped: the
video's best moment). A hit is a best moment inside the window; the error is the distance from
the best moment to the window (0 inside it).

**Split.** ``--split`` indexes one long video (5 minutes of 480p H.264 by default) with the CLI
in fresh processes: inline, then with the Dask runner (2 local workers) uncut and cut into 2
and 4 stretches (``ANYSHOT_INDEX__VIDEO_PART_SECONDS``). Wall times include each process's
start (and for Dask its cluster and temporary Prefect server), so the ratio that matters is
between the Dask rows; where the red circle's best moment lands is checked in each store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from video_files import CODECS, Segment, make_video

from indexer.config import build_settings
from indexer.shapes.synthetic import COLOURS, SHAPES
from indexer.stores.interface import PayloadFilter
from search.client import ImageSearch

SPEED_CASES = [
    # codec, width, height, seconds
    ("h264", 854, 480, 5),
    ("h264", 854, 480, 60),
    ("h264", 1280, 720, 60),
    ("h264", 1920, 1080, 60),
    ("hevc", 1920, 1080, 30),
    ("vp9", 1280, 720, 30),
    ("av1", 1280, 720, 30),
    ("mpeg4", 1280, 720, 30),
    ("h264", 3840, 2160, 10),
]
LONG_CASE = ("h264", 854, 480, 1800)
BACKGROUNDS = ["white", "yellow", "green", "grey"]


def cpu_line() -> str:
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name.startswith("unknown"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extras = ", ".join(f for f in ("amx_tile", "avx512_bf16", "avx2") if f in flags) or "none"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{name}; {os.cpu_count()} CPUs; flags: {extras}; load {load:.1f}"


def story(seconds: float, rng: random.Random) -> list[Segment]:
    """Scenes of 4-8 s, nothing red (no red circle, no red look-alike)."""
    segments, start = [], 0.0
    while start < seconds:
        end = min(seconds, start + rng.uniform(4, 8))
        background = rng.choice(BACKGROUNDS)
        shape, colour = rng.choice(
            [(s, c) for s in SHAPES for c in COLOURS if c not in ("red", background)]
        )
        segments.append(Segment(start, end, shape, colour, background))
        start = end
    return segments


def with_red_circle(rng: random.Random) -> tuple[list[Segment], tuple[float, float]]:
    length = rng.uniform(5, 20)
    start = rng.uniform(0.5, length - 2.5)
    window = (round(start, 2), round(start + 2, 2))
    background = rng.choice(BACKGROUNDS)
    before = story(window[0], rng)
    after = [Segment(s.start + window[1], s.end + window[1], s.shape, s.colour, s.background)
             for s in story(length - window[1], rng)]  # fmt: skip
    circle = Segment(window[0], window[1], "circle", "red", background)
    return [*before, circle, *after], window


def settings_for(store: str, model: str, pretrained: str | None):
    return build_settings(store=store, model=model, pretrained=pretrained, workers=0)


def warm_model(args: argparse.Namespace, work: Path):
    """The model, loaded and its batch calibrated by a first run: the timed runs leave out
    start-up (imports, model load: seconds, the same for images and videos)."""
    folder = work / "warm"
    if not folder.exists():
        make_video(folder / "warm.mp4", story(3, random.Random(0)), size=(320, 180), fps=12)
    with ImageSearch(settings_for(":memory:", args.model, args.pretrained)) as client:
        client.index(folder)
        return client.engine.embedder


def speed(args: argparse.Namespace, work: Path) -> None:
    cases = SPEED_CASES + ([LONG_CASE] if args.long else [])
    rng = random.Random(1)
    print(f"\n## Speed ({args.model}; {cpu_line()})\n")
    print("| codec | size | length | file MB | wall s | video s / wall s | video s / decode s "
          "| frames/min | decode | embed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    embedder = warm_model(args, work)
    for codec, width, height, seconds in cases:
        folder = work / f"speed-{codec}-{height}p-{seconds}s"
        path = folder / f"v{CODECS[codec][1]}"
        if not path.exists():
            made = time.perf_counter()
            part = path.with_name(f"part-{path.name}")  # a killed run leaves no half video
            make_video(part, story(seconds, rng), size=(width, height), fps=24, codec=codec)
            part.rename(path)
            print(f"<!-- made {path.name} {width}x{height} {seconds}s in "
                  f"{time.perf_counter() - made:.0f} s -->", file=sys.stderr)  # fmt: skip
        settings = settings_for(":memory:", args.model, args.pretrained)
        with ImageSearch(settings, embedder=embedder) as client:
            started = time.perf_counter()
            report = client.index(folder)
            wall = time.perf_counter() - started
        assert report.videos == 1, report.to_dict()
        decode, embed = report.video_decode_seconds, report.video_embed_seconds
        print(
            f"| {codec} | {height}p | {seconds} s | {path.stat().st_size / 1e6:.1f} | "
            f"{wall:.1f} | {seconds / wall:.1f} | {seconds / max(decode, 1e-6):.1f} | "
            f"{report.frames / seconds * 60:.0f} | "
            f"{decode / wall:.0%} | {embed / wall:.0%} |",
            flush=True,
        )


def retrieval(args: argparse.Namespace, work: Path) -> None:
    rng = random.Random(7)
    folder = work / f"retrieval-{args.retrieval}"
    codecs = list(CODECS)
    windows: dict[str, tuple[float, float]] = {}
    for index in range(args.retrieval):
        segments, window = with_red_circle(rng)
        codec = codecs[index % len(codecs)]
        path = folder / f"r{index:03d}{CODECS[codec][1]}"
        if not path.exists():
            make_video(path, segments, size=(320, 180), fps=12, codec=codec)
        windows[str(path)] = window
    embedder = warm_model(args, work)
    settings = settings_for(":memory:", args.model, args.pretrained)
    with ImageSearch(settings, embedder=embedder) as client:
        started = time.perf_counter()
        report = client.index(folder)
        wall = time.perf_counter() - started
        hits, errors, offsets = 0, [], []
        for uri, (start, end) in windows.items():
            top = client.search("a red circle", k=1, where=PayloadFilter(uri_prefix=uri))[0]
            t = top.t if top.t is not None else -1.0
            inside = start <= t <= end
            hits += inside
            errors.append(0.0 if inside else min(abs(t - start), abs(t - end)))
            offsets.append(t - start)
    count = len(windows)
    errors.sort()
    print(f"\n## Retrieval ({args.model}; {count} videos, {report.frames} frames, "
          f"indexed in {wall:.1f} s)\n")  # fmt: skip
    print("| videos | top moment inside [start, start+2] s | mean error s | max error s "
          "| mean t - start s |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(
        f"| {count} | {hits}/{count} ({hits / count:.0%}) | {sum(errors) / count:.2f} | "
        f"{errors[-1]:.2f} | {sum(offsets) / count:.2f} |"
    )


SPLIT_CASE = ("h264", 854, 480, 300)


def split(args: argparse.Namespace, work: Path) -> None:
    codec, width, height, seconds = SPLIT_CASE
    folder = work / f"split-{codec}-{height}p-{seconds}s"
    path = folder / f"v{CODECS[codec][1]}"
    rng = random.Random(3)
    window = (seconds * 0.7, seconds * 0.7 + 3)
    after = [
        Segment(s.start + window[1], s.end + window[1], s.shape, s.colour, s.background)
        for s in story(seconds - window[1], rng)
    ]
    segments = [*story(window[0], rng), Segment(*window, "circle", "red", "white"), *after]
    if not path.exists():
        part = path.with_name(f"part-{path.name}")
        make_video(part, segments, size=(width, height), fps=24, codec=codec)
        part.rename(path)
    print(f"\n## One long video in stretches ({args.model}; {codec} {height}p {seconds} s; "
          f"{cpu_line()})\n")  # fmt: skip
    print("| runner | stretches | wall s | frames | decode s | red circle's best moment |")
    print("|---|---|---|---|---|---|")
    anyshot = str(Path(sys.executable).with_name("anyshot"))
    runs = [("inline", 0.0), ("dask", 0.0), ("dask", seconds / 2 + 1), ("dask", seconds / 4 + 1)]
    for runner, part_seconds in runs:
        store = work / f"split-store-{runner}-{int(part_seconds)}"
        subprocess.run(["rm", "-rf", str(store)], check=True)
        env = {**os.environ, "ANYSHOT_INDEX__VIDEO_PART_SECONDS": str(part_seconds)}
        command = [anyshot, "index", str(folder), "--store", str(store),
                   "--model", args.model, "--runner", runner, "--json"]  # fmt: skip
        if runner == "dask":
            command += ["--dask-workers", "2"]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        found = subprocess.run(
            [anyshot, "search", "a red circle", "--store", str(store),
             "-k", "1", "--json"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        t = json.loads(found.stdout.strip().splitlines()[0]).get("t")
        inside = t is not None and window[0] <= t <= window[1]
        stretches = 1 if part_seconds <= 0 else -(-seconds // int(part_seconds))
        print(
            f"| {runner} | {stretches if runner == 'dask' else '-'} | {wall:.1f} | "
            f"{summary['frames']} | {summary['video_decode_seconds']:.1f} | "
            f"{t} s ({'inside' if inside else 'outside'} [{window[0]:.0f}, {window[1]:.0f}]) |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="anyshot-tiny")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/anyshot-bench-video"))
    parser.add_argument("--long", action="store_true", help="add a 30-minute 480p video")
    parser.add_argument("--retrieval", type=int, default=30, help="videos for the hit rate")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--split", action="store_true", help="one long video cut in stretches")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.no_speed:
        speed(args, args.work)
    if args.retrieval:
        retrieval(args, args.work)
    if args.split:
        split(args, args.work)


if __name__ == "__main__":
    main()
