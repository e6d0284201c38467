"""Decoding speed per file format: JPEG, HEIC, AVIF, DNG (preview read) and DNG (developed).

Run from the repository root (not in CI)::

    python bench/bench_formats.py --width 4032 --height 3024 --seconds 3

Makes one photo-sized file per format (a picture with sensor-like noise, so that it compresses
about as a photo does; HEIC as a grid of 512-pixel tiles with and without the 320-pixel
thumbnail iPhones embed; the DNG once with a full-size embedded preview JPEG, as cameras write
it, and once without one), then times
:func:`indexer.decode.decode_image` on each in this process, as an index worker calls it
(``target_size=224``: JPEG draft; a HEIC thumbnail or RAW preview is taken when its short side
is at least that).
Prints images/s and ms per image; one process, so on N free cores an index run decodes about N
times as many.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# The file writers live with the tests, which make the same files.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from format_files import make_avif, make_dng, make_heic, make_jpeg

from indexer.decode import decode_image


def rate(data: bytes, name: str, seconds: float) -> tuple[float, str]:
    decoded = decode_image(data, uri=name, target_size=224)  # warm up; also the output size
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        decode_image(data, uri=name, target_size=224)
        count += 1
    elapsed = time.perf_counter() - start
    return count / elapsed, f"{decoded.image.size[0]}x{decoded.image.size[1]}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per format")
    args = parser.parse_args()
    w, h = args.width, args.height
    texture = 4.0  # sensor-like noise: files about the size a phone writes
    files = {
        "JPEG": ("photo.jpg", make_jpeg(w, h, texture=texture)),
        "HEIC, as iPhones write it (512-px tiles, 320 thumbnail)": (
            "photo.heic",
            make_heic(w, h, tile=512, thumbnail=320, texture=texture),
        ),
        "HEIC without a thumbnail (512-px tiles)": (
            "plain.heic",
            make_heic(w, h, tile=512, texture=texture),
        ),
        "AVIF": ("photo.avif", make_avif(w, h, texture=texture)),
        "DNG, full-size preview read": (
            "photo.dng",
            make_dng(w, h, preview=(w, h), texture=texture),
        ),
        "DNG, developed (no preview)": ("raw.dng", make_dng(w, h, preview=None, texture=texture)),
    }
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; {w}x{h} pictures, target_size 224, 1 process")
    print("| format | file size | decoded to | images/s | ms/image |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, (name, data) in files.items():
        per_second, size = rate(data, name, args.seconds)
        print(
            f"| {label} | {len(data) / 1e6:.1f} MB | {size} | {per_second:.1f} "
            f"| {1000 / per_second:.0f} |"
        )


if __name__ == "__main__":
    main()
