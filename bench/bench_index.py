"""Benchmark: indexing speed end to end beside the model alone, and re-indexing an unchanged tree.

What it measures, in one run:

1. **End-to-end vs model-only** on photo-sized JPEGs (1600x1200, quality 90, ~350 KB) with
   ViT-B-32 (random weights: speed does not depend on their values) at the precision the
   Embedder picks for this machine and the default batch size and decode workers:

   - *decode only*: ``PixelPipeline.prepare`` on every file in this process (one core), i.e.
     what one decode worker delivers;
   - *model only*: ``Embedder.embed_pixels`` on the same images decoded beforehand (untimed),
     in batches of the index batch size, before and after the end-to-end runs (the two rows
     show how steady the machine was);
   - *end-to-end*: ``index_source`` into a fresh Qdrant Edge store folder, timed whole
     (discover, plan, decode in workers, embed, Parquet + store writes, optimize), with the
     default workers and with ``workers=0`` (decoding in the model's process).

   The target is end-to-end >= 0.85x model-only.

2. **Re-index of an unchanged tree** of tiny distinct PNGs (folders of 1000) with a tiny random
   model: the first index into a fresh Edge store, then the re-index in a child process, so
   that its peak RSS is its own.

Both parts time the steps that ``index_source`` calls (``discover_source``, ``plan_index``,
``embed_batch``, ``write_batch``, ``finish_index``) and the store calls inside them, by wrapping
them for the run; what is left is mostly waiting for decoded batches. CPU seconds count this
process and, separately, its decode workers. Another busy process on the machine skews the
rates (torch's threads wait for each other): the load average is printed before and after.

Generated images are cached under ``--data`` (default: ``$TMPDIR/anyshot-bench``), so reruns
skip generation. Models and stores go to a temporary folder removed at the end.

    python bench/bench_index.py [--images 512] [--reindex-files 100000] [--data DIR]
                                [--skip-e2e] [--skip-reindex]

Heavy imports (torch, open_clip, the store) happen inside functions: decode workers are
spawned processes that re-import this script, and a real CLI's workers do not load torch.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PHOTO_SIZE = (1600, 1200)
PHOTO_QUALITY = 90
TINY_SIDE = 16
FILES_PER_FOLDER = 1000
COMPLETE_MARKER = "complete.marker"  # not an image name: discovery ignores it

TINY_CONFIG = {  # as tests/conftest.py
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

# -- generated data --------------------------------------------------------------------------


def make_photo(seed: int) -> Image.Image:
    """A 1600x1200 photo-like image: smooth gradients, blotches at several scales, shapes, grain.

    The smooth part is drawn at 1/8 size and upscaled; the grain keeps JPEG files photo-sized.
    """
    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE[0] // 8, PHOTO_SIZE[1] // 8
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    start, end, shade = rng.uniform(0, 255, (3, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((x * np.cos(angle) + y * np.sin(angle)) / np.hypot(width, height) + 1)[..., None] / 2
    v = (y / height)[..., None] / 2
    small = (start * (1 - t) + end * t) * (1 - v) + shade * v
    for cell, amplitude in ((1, 8.0), (4, 18.0), (16, 30.0)):
        coarse = rng.standard_normal((height // cell + 1, width // cell + 1, 3), dtype=np.float32)
        layers = [
            np.asarray(Image.fromarray(coarse[..., c]).resize((width, height), Image.BICUBIC))
            for c in range(3)
        ]
        small += np.stack(layers, axis=-1) * amplitude
    image = Image.fromarray(small.clip(0, 255).astype(np.uint8)).resize(PHOTO_SIZE, Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 16))):
        left, top = rng.uniform(-200, PHOTO_SIZE[0]), rng.uniform(-200, PHOTO_SIZE[1])
        w, h = rng.uniform(60, 700, 2)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((left, top, left + w, top + h), fill=fill)
    image = image.filter(ImageFilter.BoxBlur(1))
    grain = rng.standard_normal((PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.float32) * 5
    pixels = np.asarray(image, dtype=np.int16) + grain.astype(np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def write_photo(path: Path, seed: int) -> None:
    """Write one photo atomically, so that an interrupted run leaves no half file cached."""
    partial = path.with_suffix(".partial")
    make_photo(seed).save(partial, "JPEG", quality=PHOTO_QUALITY)
    partial.rename(path)


def write_tiny_folder(folder: Path, first: int, count: int) -> None:
    """Write ``count`` distinct 16x16 PNGs named by their index."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(first, first + count):
        pixels = np.zeros((TINY_SIDE, TINY_SIDE, 3), dtype=np.uint8)
        pixels.reshape(-1)[:4] = np.frombuffer(index.to_bytes(4, "big"), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:07d}.png", compress_level=1)


def process_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn"))


def ensure_photos(data: Path, count: int) -> Path:
    """A folder holding exactly ``count`` photos, hard links into a cached pool of photos."""
    pool_dir, view = data / "photos", data / f"photos-{count}"
    pool_dir.mkdir(parents=True, exist_ok=True)
    paths = [pool_dir / f"photo_{seed:05d}.jpg" for seed in range(count)]
    missing = [(path, seed) for seed, path in enumerate(paths) if not path.exists()]
    if missing:
        print(f"generating {len(missing)} photos in {pool_dir} ...", flush=True)
        with process_pool() as pool:
            list(pool.map(write_photo, *zip(*missing, strict=True)))
    view.mkdir(exist_ok=True)
    for path in paths:
        if not (view / path.name).exists():
            os.link(path, view / path.name)
    return view


def ensure_tiny_tree(data: Path, count: int) -> Path:
    """A tree of ``count`` tiny PNGs in folders of 1000, generated once."""
    root = data / f"tiny-{count}"
    if (root / COMPLETE_MARKER).exists():
        return root
    print(f"generating {count} tiny PNGs in {root} ...", flush=True)
    starts = range(0, count, FILES_PER_FOLDER)
    folders = [root / f"d{start // FILES_PER_FOLDER:04d}" for start in starts]
    sizes = [min(FILES_PER_FOLDER, count - start) for start in starts]
    with process_pool() as pool:
        list(pool.map(write_tiny_folder, folders, starts, sizes, chunksize=8))
    (root / COMPLETE_MARKER).touch()
    return root


# -- models and stores -------------------------------------------------------------------------


def save_model(folder: Path, model: Any, model_cfg: dict[str, Any], preprocess: dict) -> str:
    """Save a model in open_clip's ``local-dir:`` format; return the model name to load it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


def save_vit_b32(folder: Path) -> str:
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    return save_model(folder, model, open_clip.get_model_config("ViT-B-32"), OPENAI_PREPROCESS)


def save_tiny(folder: Path) -> str:
    import open_clip
    import torch

    torch.manual_seed(0)
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3}
    return save_model(folder, open_clip.CLIP(**TINY_CONFIG), TINY_CONFIG, preprocess)


def load_embedder(name: str, precision: str = "auto") -> Any:
    from indexer.config import ModelSettings
    from indexer.embed import Embedder

    return Embedder(ModelSettings(name=name, precision=precision))


# -- timing ------------------------------------------------------------------------------------

INDEXING_STEPS = ("discover_source", "plan_index", "embed_batch", "write_batch", "finish_index")
STORE_CALLS = ("bind_model", "retrieve", "scroll", "upsert", "delete", "optimize", "flush")


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its ended child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def timed(name: str, fn: Callable[..., Any], timings: dict[str, float]) -> Callable[..., Any]:
    """Wrap ``fn`` so that its time adds up in ``timings[name]``; generators count per item."""

    def add(started: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    def generator(iterator: Iterator[Any]) -> Iterator[Any]:
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                add(started)
                return
            add(started)
            yield item

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        finally:
            add(started)
        return generator(result) if isinstance(result, Iterator) else result

    return wrapper


@contextmanager
def timing_steps(store: Any, timings: dict[str, float]) -> Iterator[None]:
    """Time the steps that ``index_source`` calls and the store calls made inside them."""
    from indexer import indexing

    originals = {name: getattr(indexing, name) for name in INDEXING_STEPS}
    for name, fn in originals.items():
        setattr(indexing, name, timed(name, fn, timings))
    for name in STORE_CALLS:  # instance attributes shadow the methods
        setattr(store, name, timed(f"store.{name}", getattr(store, name), timings))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(indexing, name, fn)
        for name in STORE_CALLS:
            delattr(store, name)


@dataclass
class IndexRun:
    """An ``index_source`` run: its report, wall and CPU time, and the time of each step.

    ``steps`` holds the seconds of :data:`INDEXING_STEPS` and ``store.*`` calls; ``first`` is
    when (s after the start) the first batch was stored.
    """

    TIMES: ClassVar[tuple[str, ...]] = ("wall", "cpu_main", "cpu_workers", "steps")

    report: Any
    wall: float
    cpu_main: float
    cpu_workers: float
    first: float | None
    steps: dict[str, float]

    def step(self, name: str) -> float:
        return self.steps.get(name, 0.0)

    @property
    def waiting(self) -> float:
        """Time not spent in any step: mostly waiting for decoded batches."""
        return self.wall - sum(self.step(name) for name in INDEXING_STEPS)


def run_index(source: Path, embedder: Any, store: Any, store_dir: Path, settings: Any) -> IndexRun:
    """Run ``index_source`` like the CLI does (Parquet and state inside the store folder)."""
    from indexer.indexing import index_source

    marks: list[float] = []
    steps: dict[str, float] = {}
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with timing_steps(store, steps):
        report = index_source(
            source,
            embedder=embedder,
            store=store,
            settings=settings,
            parquet_dir=store_dir / "parquet",
            state_dir=store_dir / "state",
            progress=lambda done, total: marks.append(time.perf_counter()) if done else None,
        )
    wall = time.perf_counter() - started
    cpu = [after - before for after, before in zip(cpu_seconds(), cpu_before, strict=True)]
    first = marks[0] - started if marks else None
    return IndexRun(report, wall, cpu[0], cpu[1], first, steps)


def index_into_new_store(source: Path, embedder: Any, store_dir: Path, settings: Any) -> IndexRun:
    from indexer.config import StoreSettings
    from indexer.stores.opening import open_store

    with open_store(StoreSettings(location=str(store_dir))) as store:
        return run_index(source, embedder, store, store_dir, settings)


# -- end-to-end vs model-only ------------------------------------------------------------------


@dataclass
class Row:
    """One measured rate."""

    label: str
    workers: str
    images: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def list_jobs(folder: Path) -> list[Any]:
    from indexer.prepare import ImageJob
    from indexer.schema import ImageRecord

    jobs = []
    for path in sorted(folder.iterdir()):
        info = path.stat()
        jobs.append(ImageJob(ImageRecord(str(path), info.st_size, info.st_mtime)))
    return jobs


def measure(label: str, images: int, work: Callable[[], Any]) -> tuple[Row, Any]:
    """Time ``work()`` in this process (wall and CPU)."""
    cpu_before, started = cpu_seconds()[0], time.perf_counter()
    result = work()
    seconds, cpu = time.perf_counter() - started, cpu_seconds()[0] - cpu_before
    return Row(label, "-", images, seconds, cpu), result


def bench_e2e(photos: Path, work: Path, precision: str) -> None:
    """Decode-only, model-only and end-to-end rates on the same photos, with the default model."""
    import torch

    from indexer.config import IndexSettings
    from indexer.prepare import default_workers

    settings = IndexSettings()
    model_dir = work / "vit-b-32"
    name = f"local-dir:{model_dir}" if model_dir.is_dir() else save_vit_b32(model_dir)
    embedder = load_embedder(name, precision)
    pipeline = embedder.pixel_pipeline(max_pixels=settings.max_image_pixels)
    jobs = list_jobs(photos)
    count, size = len(jobs), settings.batch_size
    chunks = [jobs[i : i + size] for i in range(0, count, size)]

    decode, prepared = measure(
        "decode only (PixelPipeline.prepare, in-process)",
        count,
        lambda: [pipeline.prepare(chunk) for chunk in chunks],
    )
    batches = [batch.pixels for batch in prepared]

    def embed_all() -> None:
        for pixels in batches:
            embedder.embed_pixels(pixels)

    embedder.embed_pixels(batches[0])  # warm-up
    before, _ = measure("model only (embed_pixels), before", count, embed_all)
    runs = []
    for label, workers in ((f"default ({default_workers()})", None), ("0", 0)):
        run_settings = settings.model_copy(update={"workers": workers})
        store = work / f"store-e2e-{precision}-{label}"
        run = index_into_new_store(photos, embedder, store, run_settings)
        cpu = run.cpu_main + run.cpu_workers
        runs.append(
            (Row("end-to-end (index_source)", label, run.report.indexed, run.wall, cpu), run)
        )
    after, _ = measure("model only (embed_pixels), after", count, embed_all)

    model_rate = (before.rate + after.rate) / 2
    rows = [decode, before, *(row for row, _ in runs), after]
    print_table(
        f"Indexing {count} JPEGs ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, q{PHOTO_QUALITY}, mean "
        f"{np.mean([job.record.size for job in jobs]) / 1024:.0f} KB): ViT-B-32 random weights, "
        f"{embedder.image_precision} on {embedder.runtime.device}, index batch {size}, "
        f"forward batch {embedder.image_batch_size(size)}, torch threads "
        f"{torch.get_num_threads()}",
        ["measurement", "workers", "images", "seconds", "images/s", "x model-only", "CPU s"],
        [
            [r.label, r.workers, r.images, f"{r.seconds:.2f}", f"{r.rate:.1f}",
             "" if r is decode else f"{r.rate / model_rate:.2f}", f"{r.cpu:.1f}"]
            for r in rows
        ],
    )  # fmt: skip
    print(
        f"\nmodel only: {model_rate:.1f} images/s (mean of before and after); decoding in one "
        f"process: {decode.rate:.1f} images/s, so the model needs "
        f"{model_rate / decode.rate:.2f} cores of decoding beside its own threads"
    )
    print_table(
        "Where the end-to-end time goes (seconds; embed, write, finish: the steps of "
        "index_source; wait: the rest, mostly waiting for decoded batches)",
        ["workers", "wall", "1st batch at", "discover+plan", "wait", "embed", "embed images/s",
         "model busy", "write", "finish", "CPU main", "CPU workers"],
        [
            [row.workers, f"{run.wall:.2f}", f"{run.first or 0:.2f}",
             f"{run.step('discover_source') + run.step('plan_index'):.2f}",
             f"{run.waiting:.2f}", f"{run.step('embed_batch'):.2f}",
             f"{run.report.indexed / max(run.step('embed_batch'), 1e-9):.1f}",
             f"{run.step('embed_batch') / run.wall:.0%}", f"{run.step('write_batch'):.2f}",
             f"{run.step('finish_index'):.2f}", f"{run.cpu_main:.1f}", f"{run.cpu_workers:.1f}"]
            for row, run in runs
        ],
    )  # fmt: skip


# -- re-index ----------------------------------------------------------------------------------


def memory_mib() -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS) and RssAnon of this process, in MiB (Linux).

    Not ``ru_maxrss``: Linux carries it over from the parent through fork and exec, so a child
    of a process that held ViT-B-32 would report that process's peak.
    """
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in {"VmRSS", "VmHWM", "RssAnon"}:
                fields[key] = int(value.split()[0]) / 1024
    return fields


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def reindex_child(store_dir: str, source: str, model: str) -> None:
    """Re-index in this (child) process and print one JSON line: step times and memory."""
    from indexer.config import IndexSettings, StoreSettings
    from indexer.stores.opening import open_store

    embedder = load_embedder(model)
    started = time.perf_counter()
    with open_store(StoreSettings(location=store_dir)) as store:
        opened = time.perf_counter() - started
        memory = {"setup": memory_mib(), "reset": reset_peak_rss()}
        run = run_index(Path(source), embedder, store, Path(store_dir), IndexSettings())
        memory["index"] = memory_mib()
    report = {key: getattr(run.report, key) for key in ("indexed", "unchanged", "removed")}
    run_fields = {key: getattr(run, key) for key in IndexRun.TIMES}
    print(json.dumps(run_fields | {"report": report, "open": opened, "memory": memory}))


def step_rows(runs: Sequence[IndexRun]) -> list[list[str]]:
    """Rows of a table with the seconds of each step, one column per run."""

    def plan_rest(run: IndexRun) -> float:
        return run.step("plan_index") - run.step("store.retrieve") - run.step("store.scroll")

    rows: list[tuple[str, Callable[[IndexRun], float]]] = [
        ("index_source, whole", lambda run: run.wall),
        ("- discover_source (walk + stat)", lambda run: run.step("discover_source")),
        ("- plan_index", lambda run: run.step("plan_index")),
        ("  - store.retrieve (stored size, mtime; 1024 ids a call)",
         lambda run: run.step("store.retrieve")),
        ("  - store.scroll (all points of the folder: vanished files)",
         lambda run: run.step("store.scroll")),
        ("  - the rest (Python: point ids, compare)", plan_rest),
        ("- embed_batch", lambda run: run.step("embed_batch")),
        ("- write_batch (Parquet shard + store)", lambda run: run.step("write_batch")),
        ("  - store.upsert", lambda run: run.step("store.upsert")),
        ("- finish_index", lambda run: run.step("finish_index")),
        ("  - store.optimize", lambda run: run.step("store.optimize")),
        ("  - store.flush", lambda run: run.step("store.flush")),
        ("- the rest (waiting for decode workers, bind_model)", lambda run: run.waiting),
        ("CPU seconds, this process", lambda run: run.cpu_main),
        ("CPU seconds, decode workers", lambda run: run.cpu_workers),
    ]  # fmt: skip
    return [[label, *(f"{value(run):.2f}" for run in runs)] for label, value in rows]


def bench_reindex(tree: Path, count: int, work: Path) -> None:
    """Index the tiny tree once, then re-index it unchanged in a child process."""
    from indexer.config import IndexSettings

    model = save_tiny(work / "tiny")
    store_dir = work / "store-reindex"
    first = index_into_new_store(tree, load_embedder(model), store_dir, IndexSettings())
    command = [sys.executable, __file__, "--reindex-child", str(store_dir), str(tree), model]
    started = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    child_wall = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"re-index child failed:\n{child.stderr}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    again = IndexRun(result["report"], first=None, **{k: result[k] for k in IndexRun.TIMES})
    print_table(
        f"Index, then re-index unchanged, a tree of {count} files ({TINY_SIDE}x{TINY_SIDE} PNGs "
        f"in folders of {FILES_PER_FOLDER}): tiny random model, Qdrant Edge store (seconds)",
        ["step", "first index", "re-index (child process)"],
        step_rows([first, again]),
    )
    report = again.report
    print(
        f"\nfirst index: {first.report.indexed} indexed, {first.report.indexed / first.wall:.0f} "
        f"images/s. re-index: {report['unchanged']} unchanged, {report['indexed']} indexed, "
        f"{report['removed']} removed, {count / again.wall:.0f} files/s; the child also took "
        f"{result['open']:.2f} s to open the store and {child_wall:.1f} s in all (imports, model)"
    )
    memory = result["memory"]
    setup, index = memory["setup"], memory["index"]
    peak = "peak RSS during index_source" if memory["reset"] else "peak RSS of the child"
    print_table(
        "Memory of the re-index child process (MiB)",
        ["RSS before index_source", "of which anonymous", peak, "increase"],
        [[f"{setup['VmRSS']:.0f}", f"{setup['RssAnon']:.0f}", f"{index['VmHWM']:.0f}",
          f"{index['VmHWM'] - setup['VmRSS']:.0f}"]],
    )  # fmt: skip


# -- output and entry point --------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table with aligned columns; numbers are right-aligned."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if n else "-" * w for w, n in zip(widths, numeric, strict=True)]
    print(f"\n{title}\n")
    print("\n".join([line(cells[0]), line(rule), *(line(row) for row in cells[1:])]))


def _is_number(text: str) -> bool:
    try:
        float(text.removesuffix("%"))
    except ValueError:
        return text in {"", "-"}
    return True


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="photos for the e2e part")
    parser.add_argument("--reindex-files", type=int, default=100_000, help="files to re-index")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "anyshot-bench",
        help="cache folder of generated images",
    )
    parser.add_argument(
        "--precisions",
        default="auto",
        help="comma-separated precisions of the e2e part (auto, fp32, bf16, int8)",
    )
    parser.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end part")
    parser.add_argument("--skip-reindex", action="store_true", help="skip the re-index part")
    parser.add_argument("--reindex-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reindex_child:
        reindex_child(*args.reindex_child)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    photos = None if args.skip_e2e else ensure_photos(args.data, args.images)
    tree = None if args.skip_reindex else ensure_tiny_tree(args.data, args.reindex_files)
    print(f"{os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory(prefix="anyshot-bench-") as name:
        work = Path(name)
        if photos is not None:
            for precision in args.precisions.split(","):
                bench_e2e(photos, work, precision)
                print(f"\n{load()}")
        if tree is not None:
            bench_reindex(tree, args.reindex_files, work)
            print(f"\n{load()}")


if __name__ == "__main__":
    main()
