"""Benchmark: discovery of a large folder tree, beside a bare os.walk + stat of the same tree.

python bench/bench_discover.py [--files 100000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from indexer.discover import discover


def make_tree(root: Path, files: int, per_folder: int = 1000) -> None:
    for folder in range(max(1, files // per_folder)):
        path = root / f"f{folder:04d}"
        path.mkdir()
        for index in range(per_folder):
            os.close(os.open(path / f"{index:04d}.jpg", os.O_CREAT | os.O_WRONLY))
        (path / "notes.txt").touch()


def bare_walk(root: Path) -> int:
    count = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".jpg"):
                os.stat(os.path.join(folder, name))
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anyshot-bench-") as name:
        root = Path(name)
        make_tree(root, args.files)
        rows = []
        for label, run in (
            ("os.walk + stat", lambda: bare_walk(root)),
            ("indexer.discover", lambda: sum(1 for _ in discover(root))),
        ):
            started = time.perf_counter()
            count = run()
            rows.append((label, count, time.perf_counter() - started))
    print(f"{'method':<18} {'files':>8} {'seconds':>8} {'files/s':>10}")
    for label, count, seconds in rows:
        print(f"{label:<18} {count:>8} {seconds:>8.2f} {count / seconds:>10.0f}")


if __name__ == "__main__":
    main()
