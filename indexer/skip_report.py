"""The report of files an index run could not use, kept between runs.

``skipped.csv`` in the run's state folder lists each skipped file with its size, mtime and
reason. The next run skips a listed file without reading it while its size and mtime are the
same, and retries it once it changes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from indexer.errors import AnyshotError
from indexer.prepare import SkippedImage
from indexer.schema import ImageRecord

REPORT_FILE = "skipped.csv"
COLUMNS = ("uri", "size", "mtime", "reason")
_MTIME_TOLERANCE = 1e-6


class SkipReport:
    """Files skipped by earlier runs, read from and written to ``state_dir/skipped.csv``.

    Args:
        state_dir: The run's state folder; created when the report is saved.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / REPORT_FILE
        self.entries: dict[str, SkippedImage] = {}
        if self.path.is_file():
            try:
                with self.path.open(newline="", encoding="utf-8") as fh:
                    for row in csv.DictReader(fh):
                        self.entries[row["uri"]] = SkippedImage(
                            row["uri"], row["reason"], int(row["size"]), float(row["mtime"])
                        )
            except (OSError, KeyError, ValueError) as exc:
                raise AnyshotError(
                    f"{self.path}: unreadable report of skipped files: {exc}"
                ) from exc

    def unchanged_entry(self, record: ImageRecord) -> SkippedImage | None:
        """The earlier skip of this file, if the file has not changed since."""
        entry = self.entries.get(record.uri)
        if entry is None or entry.size != record.size:
            return None
        return entry if abs(entry.mtime - record.mtime) <= _MTIME_TOLERANCE else None

    def save(self, skipped: Iterable[SkippedImage], covered_ids: Collection[int]) -> None:
        """Record this run's skipped files (atomically).

        Args:
            skipped: The files this run skipped.
            covered_ids: Point ids of every file this run looked at; earlier entries for
                them are replaced, entries for other files (other sources) are kept.
        """
        kept = {
            uri: entry
            for uri, entry in self.entries.items()
            if ImageRecord(uri).id not in covered_ids
        }
        self.entries = kept | {entry.uri: entry for entry in skipped}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for entry in sorted(self.entries.values(), key=lambda e: e.uri):
                writer.writerow([entry.uri, entry.size, repr(entry.mtime), entry.reason])
        os.replace(tmp, self.path)
