"""The image and video files anyshot can decode, by extension: one registry for discovery and
for queries.

A folder walk takes these files as images, and a query token ending in one of them is an
example image. The list is what this installation decodes:

- what every supported Pillow decodes (JPEG, PNG, WebP, GIF, BMP, TIFF);
- AVIF where Pillow has its AVIF plugin (the wheels of Pillow 11.3 and later);
- HEIC/HEIF where ``pillow-heif`` is installed (a dependency of anyshot);
- camera RAW files (:data:`RAW_EXTENSIONS`) where ``rawpy`` (LibRaw) is installed (a dependency
  of anyshot): the embedded preview JPEG is read when it is large enough, else the sensor data
  is developed at half size (:mod:`indexer.camera_raw`).

Nothing here imports Pillow or the plugins: discovery stays cheap to import. The plugins are
registered where images are decoded (:mod:`indexer.decode`), in every process that decodes.
"""

from __future__ import annotations

from importlib.util import find_spec

ALWAYS_DECODED = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""Extensions that every supported Pillow decodes."""

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
"""HEIF files (iPhones' photos): decoded by ``pillow-heif``'s Pillow plugin."""

RAW_EXTENSIONS: dict[str, str] = {
    ".cr2": "CR2",  # Canon (TIFF based)
    ".cr3": "CR3",  # Canon (ISO media based)
    ".nef": "NEF",  # Nikon
    ".arw": "ARW",  # Sony
    ".dng": "DNG",  # Adobe's open format (phones, Leica, Pentax, Ricoh, converters)
    ".raf": "RAF",  # Fujifilm
    ".orf": "ORF",  # Olympus / OM System
    ".rw2": "RW2",  # Panasonic
}
"""Camera RAW extensions and the format name stored for them (the payload's ``format``)."""


def heif_available() -> bool:
    """True when ``pillow-heif`` is installed (HEIC/HEIF files decode)."""
    return find_spec("pillow_heif") is not None


def raw_available() -> bool:
    """True when ``rawpy`` (LibRaw) is installed (camera RAW files decode)."""
    return find_spec("rawpy") is not None


def _plugin_extensions() -> frozenset[str]:
    # find_spec imports the light PIL package, not PIL.Image: discovery stays cheap to import.
    found: set[str] = set()
    if find_spec("PIL._avif") is not None:
        found.add(".avif")
    if heif_available():
        found |= HEIF_EXTENSIONS
    if raw_available():
        found |= set(RAW_EXTENSIONS)
    return frozenset(found)


IMAGE_EXTENSIONS = ALWAYS_DECODED | _plugin_extensions()
"""File extensions of images anyshot decodes, lower case, matched case-insensitively."""


VIDEO_EXTENSIONS: dict[str, str] = {
    ".mp4": "MP4",  # H.264 / H.265 / AV1
    ".m4v": "MP4",
    ".mov": "MOV",
    ".webm": "WEBM",  # VP8 / VP9 / AV1
    ".mkv": "MKV",
    ".avi": "AVI",
    ".mpg": "MPEG",
    ".mpeg": "MPEG",
    ".m2ts": "MPEG-TS",
    ".mts": "MPEG-TS",
    ".ts": "MPEG-TS",
    ".3gp": "3GP",
    ".wmv": "WMV",
    ".ogv": "OGV",
}
"""Video extensions and the container name stored for them (the payload's ``format``).

Videos are indexed as moments (:mod:`indexer.video`) where PyAV (``av``, whose wheels carry
FFmpeg) is installed. Animated GIF and WebP stay images (:data:`ALWAYS_DECODED`)."""


def video_available() -> bool:
    """True when PyAV is installed (videos decode)."""
    return find_spec("av") is not None


INDEXED_VIDEO_EXTENSIONS = frozenset(VIDEO_EXTENSIONS) if video_available() else frozenset()
"""Video extensions this installation indexes (none without PyAV)."""


def is_video_name(name: str) -> bool:
    """Tell whether a file name (or path) ends in one of the indexed video extensions."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in INDEXED_VIDEO_EXTENSIONS


def video_format_of_name(name: str) -> str:
    """The container a video's name claims (``"MP4"`` for ``x.MOV``... ``"MOV"``), or ``""``."""
    dot = name.rfind(".")
    return VIDEO_EXTENSIONS.get(name[dot:].lower(), "") if dot > 0 else ""


def is_indexed_name(name: str) -> bool:
    """Tell whether a folder walk takes this file: an image or a video."""
    dot = name.rfind(".")
    if dot <= 0:
        return False
    ext = name[dot:].lower()
    return ext in IMAGE_EXTENSIONS or ext in INDEXED_VIDEO_EXTENSIONS


def is_image_name(name: str) -> bool:
    """Tell whether a file name (or path) ends in one of :data:`IMAGE_EXTENSIONS`, any case."""
    dot = name.rfind(".")  # os.path.splitext, minus its cost: this runs for every file
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def raw_format_of_name(name: str) -> str | None:
    """The RAW format a file name claims (``"DNG"`` for ``x.DNG``), or None."""
    dot = name.rfind(".")
    return RAW_EXTENSIONS.get(name[dot:].lower()) if dot > 0 else None
