"""The offline demo: a generated collection of coloured shapes, indexed with ``anyshot-tiny``.

It needs no network: the images come from :mod:`indexer.shapes.synthetic` and the model ships with
anyshot. Each example search is scored against the attributes the images were drawn from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from indexer.config import Settings, build_settings, default_data_dir
from indexer.indexing import IndexReport
from indexer.progress import ProgressCallback
from indexer.shapes.synthetic import HELD_OUT_PAIRS, SceneSpec, generate_collection
from search.client import ImageSearch
from search.engine import Hit

DEMO_MODEL = "anyshot-tiny"
LABELS_FILE = "labels.jsonl"


def default_demo_dir() -> Path:
    """Where the demo writes unless told otherwise: ``$XDG_DATA_HOME/anyshot/demo``."""
    return default_data_dir() / "demo"


@dataclass
class DemoSearch:
    """One example search and how many of its results match what was asked."""

    kind: str
    query: str
    wanted: str
    hits: list[Hit]
    matches: list[bool]

    @property
    def precision(self) -> float:
        """Share of the results that match."""
        return sum(self.matches) / len(self.matches) if self.matches else 0.0

    @property
    def summary(self) -> str:
        """How many results match, in words: ``"4 of 5 results are red circles"``."""
        verb = "is" if len(self.matches) == 1 else "are"
        return f"{sum(self.matches)} of {len(self.matches)} results {verb} {plural(self.wanted)}"


def plural(wanted: str) -> str:
    """``"red circle"`` → ``"red circles"``, ``"cross"`` → ``"crosses"``."""
    return wanted + ("es" if wanted.endswith(("s", "x")) else "s")


@dataclass
class DemoResult:
    """What the demo did."""

    images_dir: Path
    store: Path
    report: IndexReport
    generated: bool = True
    searches: list[DemoSearch] = field(default_factory=list)


def load_labels(images_dir: Path) -> dict[str, SceneSpec]:
    """Read the generator's labels: absolute image path → its scene."""
    labels: dict[str, SceneSpec] = {}
    with (images_dir / LABELS_FILE).open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            labels[str((images_dir / row["path"]).absolute())] = SceneSpec.from_dict(
                row["attributes"]
            )
    return labels


def has_collection(images_dir: Path, count: int) -> bool:
    """True when ``images_dir`` already holds a demo collection of ``count`` images."""
    labels = images_dir / LABELS_FILE
    if not labels.is_file():
        return False
    with labels.open(encoding="utf-8") as fh:
        return sum(1 for _ in fh) == count


def ensure_collection(images_dir: Path, count: int, seed: int) -> bool:
    """Generate the demo images unless the same collection is already there.

    Returns:
        True when images were generated, False when the ones there were reused.
    """
    if has_collection(images_dir, count):
        return False
    generate_collection(
        images_dir, count, seed=seed, split="all", image_size=96, image_format="jpeg", workers=2
    )
    return True


def run_demo(
    folder: Path,
    *,
    images: int = 2000,
    seed: int = 7,
    k: int = 5,
    progress: ProgressCallback | None = None,
) -> DemoResult:
    """Generate, index and search a demo collection in ``folder``.

    Args:
        folder: Holds ``images/`` and ``store/``; re-running reuses both.
        images: How many images to generate.
        seed: Seed of the generator.
        k: Results per example search.
        progress: Index progress callback ``(done, total)``.
    """
    images_dir, store_dir = folder / "images", folder / "store"
    generated = ensure_collection(images_dir, images, seed)
    labels = load_labels(images_dir)
    settings: Settings = build_settings(store=str(store_dir), model=DEMO_MODEL)
    with ImageSearch(settings) as client:
        report = client.index(images_dir, runner="inline", progress=progress)
        result = DemoResult(images_dir, store_dir, report, generated)
        held_shape, held_colour = sorted(HELD_OUT_PAIRS)[0]
        example = next(path for path, spec in sorted(labels.items()) if len(spec.objects) == 1)
        example_object = labels[example].objects[0]
        asks = [
            ("text", "a red circle", ("circle", "red")),
            ("text", f"a {held_colour} {held_shape}", (held_shape, held_colour)),
            ("image", example, (example_object.shape, example_object.colour)),
            ("name", "heart", ("heart", None)),
        ]
        for kind, query, (shape, colour) in asks:
            hits = client.search(**{"text" if kind == "text" else kind: query}, k=k)
            wanted = f"{colour} {shape}" if colour else shape
            result.searches.append(
                DemoSearch(
                    kind=kind,
                    query=query,
                    wanted=wanted,
                    hits=hits,
                    matches=[_shows(labels.get(hit.uri), shape, colour) for hit in hits],
                )
            )
    return result


def _shows(spec: SceneSpec | None, shape: str, colour: str | None) -> bool:
    return spec is not None and any(
        o.shape == shape and (colour is None or o.colour == colour) for o in spec.objects
    )
