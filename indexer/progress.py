"""Progress callbacks: one shape for every long operation."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)``: how many units are done so far, of ``total``.

The unit is the operation's own: images for indexing, tagging and duplicates, points for an
export, shards for a load. ``total`` may grow while an operation learns more."""
