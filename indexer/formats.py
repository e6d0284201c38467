"""The image files anyshot can decode, by extension: one list for discovery and for queries.

A folder walk takes these files as images, and a query token ending in one of them is an
example image. The list is what this installation's Pillow decodes: AVIF only where Pillow has
its AVIF plugin (the wheels of Pillow 11.3 and later). HEIC and camera RAW files are not
decoded (no plugin ships with Pillow), so they are neither indexed nor taken as query images.
"""

from __future__ import annotations

from importlib.util import find_spec

ALWAYS_DECODED = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""Extensions that every supported Pillow decodes."""


def _plugin_extensions() -> frozenset[str]:
    # find_spec imports the light PIL package, not PIL.Image: discovery stays cheap to import.
    return frozenset({".avif"}) if find_spec("PIL._avif") is not None else frozenset()


IMAGE_EXTENSIONS = ALWAYS_DECODED | _plugin_extensions()
"""File extensions of images anyshot decodes, lower case, matched case-insensitively."""


def is_image_name(name: str) -> bool:
    """Tell whether a file name (or path) ends in one of :data:`IMAGE_EXTENSIONS`, any case."""
    dot = name.rfind(".")  # os.path.splitext, minus its cost: this runs for every file
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS
