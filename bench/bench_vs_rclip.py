"""Benchmark: anyshot against rclip 3.3.0, side by side in one run, as users run them.

What it measures, in one run, on the same folder of photo-sized JPEGs (1600x1200, as
``bench/bench_index.py`` generates them):

1. **Indexing**, each run a new process into a fresh index, the configurations alternating
   (each repeat starts one configuration later, so none always follows the same one):

   - ``rclip``: rclip 3.3.0, unmodified, from a virtual environment of its own
     (``--rclip-venv``; created with ``pip install rclip==3.3.0`` when missing), ONNX Runtime
     fp32 at its default batch (8). rclip has no index-only command: a run is
     ``rclip -f "QUERY"`` in the folder, which indexes it, then answers one query.
   - ``anyshot index FOLDER --model local-dir:M --store S --json`` with
     ``ANYSHOT_MODEL__PRECISION`` set: ``256-fp32``, ``256-int8`` (ViT-B-32-256, rclip's
     architecture) and ``b32-fp32``, ``b32-int8``, ``b32-auto`` (ViT-B-32, anyshot's default).

   Models have random weights (speed does not depend on their values): one ViT-B-32-256 is
   saved in open_clip's local-dir format for anyshot and exported to ONNX for rclip the way
   rclip's ``scripts/convert_model.py`` does (``torch.onnx.export``, TorchScript exporter,
   opset 18, dynamic batch axis; image tower ``model.visual``, text tower ``encode_text``),
   checked against torch with rclip's own ONNX Runtime (max abs difference < 1e-4, rclip's
   bound), and put where rclip looks for its model (``$RCLIP_DATADIR/ViT-B-32-256-
   datacomp_s34b_b86k/{visual,textual}.onnx`` and ``tokenizer/``), so it runs offline.

   Per run: wall seconds of the whole process, images/s, the peak RSS of the largest process
   (``ru_maxrss`` from ``wait4``) and the peak sum of PSS over the process tree (decode workers
   included; sampled every 0.5 s from ``/proc``). Per configuration: medians and the ratio of
   its rate to rclip's median rate. Goal lines: anyshot int8 >= 2x rclip at the same
   architecture, >= 2.5x at the default architecture.

2. **Cold queries**: 20 distinct text queries, each a new process, alternating between
   ``anyshot search TEXT --store S -k 10 --json`` (the ``--query-config`` store) and
   ``rclip --no-indexing -f -t 10 TEXT`` (rclip's query mode without re-indexing); p50/p90 of
   the wall seconds.

3. The machine: CPU model, the flags that choose kernels, cores, load average before and after.

Everything outside the repository: photos, models, rclip's venv and the indexes under
``--data`` (default ``$TMPDIR/anyshot-bench``; models and runs in ``DATA/vs-rclip``). The ONNX
export needs the ``onnx`` package, which anyshot does not depend on: it is installed with pip
into ``DATA/vs-rclip/onnx-export`` (no dependencies: torch, numpy and protobuf come from this
environment) and put on the export process's ``PYTHONPATH`` only.

    python bench/bench_vs_rclip.py [--images 300] [--repeats 3] [--configs rclip,256-int8,...]
                                   [--skip-rclip] [--skip-indexing] [--skip-queries]
                                   [--no-warm-up] [--queries 20] [--query-config b32-auto]
                                   [--data DIR] [--rclip-venv DIR]

Before the timed runs, each anyshot configuration runs once untimed on 128 photos: that first
run measures and caches anyshot's forward batch for the model and precision (in
``DATA/vs-rclip/xdg-cache``, the bench's own ``XDG_CACHE_HOME``), a one-off cost that is not
the indexing rate. ``--no-warm-up`` times it instead.

This process stays small (no torch): a child inherits its parent's peak RSS through fork and
exec, so the models are prepared in a child process and only numbers come back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_index import OPENAI_PREPROCESS, ensure_photos, print_table, save_model

RCLIP_VERSION = "3.3.0"
RCLIP_MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # rclip/model_download.py
RCLIP_VOCAB = "tokenizer/bpe_simple_vocab_16e6.txt.gz"
RCLIP_BATCH = 8  # rclip's --indexing-batch-size default
ONNX_OPSET = 18  # as rclip's scripts/convert_model.py
ONNX_TOLERANCE = 1e-4  # the max abs difference rclip's conversion script accepts
CONTEXT_LENGTH = 77
SEED = 0
PREPARED_MARKER = "prepared.json"
SAMPLE_SECONDS = 0.5
WARM_UP_IMAGES = 128  # enough for anyshot's index batches to reach 64, where it calibrates


@dataclass(frozen=True)
class Config:
    """One way of indexing the folder."""

    name: str
    tool: str  # "rclip" or "anyshot"
    architecture: str
    precision: str  # ANYSHOT_MODEL__PRECISION for anyshot; what rclip runs for rclip

    @property
    def label(self) -> str:
        return f"{self.tool} {self.architecture} {self.precision}"


CONFIGS = {
    config.name: config
    for config in (
        Config("rclip", "rclip", "ViT-B-32-256", f"onnx fp32, batch {RCLIP_BATCH}"),
        Config("256-fp32", "anyshot", "ViT-B-32-256", "fp32"),
        Config("256-int8", "anyshot", "ViT-B-32-256", "int8"),
        Config("b32-fp32", "anyshot", "ViT-B-32", "fp32"),
        Config("b32-int8", "anyshot", "ViT-B-32", "int8"),
        Config("b32-auto", "anyshot", "ViT-B-32", "auto"),
    )
}
QUERY_GOAL_SECONDS = 1.5
GOALS = (("256-int8", 2.0, "same architecture"), ("b32-int8", 2.5, "default architecture"))

QUERIES = (
    "a dog on a beach",
    "sunset over the mountains",
    "a red car parked in the street",
    "children playing in the snow",
    "a cup of coffee on a wooden table",
    "a cat sleeping on a sofa",
    "fireworks above a city at night",
    "a bowl of fresh fruit",
    "an old lighthouse by the sea",
    "people dancing at a wedding",
    "a bicycle leaning against a wall",
    "a forest path in autumn",
    "a birthday cake with candles",
    "a sailing boat on a calm lake",
    "a man reading a newspaper",
    "a plate of spaghetti",
    "a snowy village street",
    "a horse in a green field",
    "a crowded train station",
    "flowers in a glass vase",
)


# -- the machine -------------------------------------------------------------------------------


def machine() -> str:
    """CPU model, the flags that pick kernels, cores and the load average, in one line."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    shown = " ".join(f"{flag}{'+' if flag in flags else '-'}" for flag in wanted)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}; {shown}; {os.cpu_count()} cores ({usable} usable); {load()}"


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


# -- rclip's environment and the models --------------------------------------------------------


def ensure_rclip_venv(venv: Path) -> Path:
    """rclip's own virtual environment (created when missing); return its ``rclip`` script."""
    script = venv / "bin" / "rclip"
    if script.exists():
        return script
    print(f"creating {venv} with rclip=={RCLIP_VERSION} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"rclip=={RCLIP_VERSION}"], check=True)
    return script


def ensure_onnx_packages(folder: Path) -> Path:
    """``onnx`` for the TorchScript exporter, installed beside (not into) this environment."""
    if not (folder / "onnx").is_dir():
        print(f"installing onnx into {folder} (for the export only) ...", flush=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        subprocess.run([*command, "--target", str(folder), "onnx", "ml_dtypes"], check=True)
    return folder


def ensure_models(work: Path, rclip_python: Path | None) -> dict[str, str]:
    """The three model folders (prepared once in a child process); return their locations."""
    models = work / "models"
    marker = models / PREPARED_MARKER
    if not marker.exists():
        shutil.rmtree(models, ignore_errors=True)
        models.mkdir(parents=True)
        env = dict(os.environ, PYTHONPATH=str(ensure_onnx_packages(work / "onnx-export")))
        print(f"preparing models in {models} (random weights, seed {SEED}) ...", flush=True)
        command = [sys.executable, __file__, "--prepare-models", str(models)]
        subprocess.run(command, env=env, check=True)
        marker.write_text(json.dumps({"seed": SEED, "opset": ONNX_OPSET}))
    checked = models / "onnx-checked"
    if rclip_python is not None and not checked.exists():
        check_onnx_export(models, rclip_python)
        checked.touch()
    return {
        "ViT-B-32-256": f"local-dir:{models / 'vit-b-32-256'}",
        "ViT-B-32": f"local-dir:{models / 'vit-b-32'}",
        "rclip": str(models / "rclip"),
    }


def prepare_models(models: Path) -> None:
    """Child process: save ViT-B-32-256 and ViT-B-32 for anyshot, export the first for rclip."""
    import numpy as np
    import open_clip
    import torch

    torch.manual_seed(SEED)
    model_256 = open_clip.create_model("ViT-B-32-256", pretrained=None).eval()
    config_256 = open_clip.get_model_config("ViT-B-32-256")
    save_model(models / "vit-b-32-256", model_256, config_256, OPENAI_PREPROCESS)
    model_b32 = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    save_model(
        models / "vit-b-32", model_b32, open_clip.get_model_config("ViT-B-32"), OPENAI_PREPROCESS
    )

    rclip_dir = models / "rclip" / RCLIP_MODEL_SUBDIR
    rclip_dir.mkdir(parents=True)
    image_size = config_256["vision_cfg"]["image_size"]
    export_onnx(
        model_256.visual, torch.randn(1, 3, image_size, image_size), rclip_dir / "visual.onnx"
    )

    class TextTower(torch.nn.Module):
        """``encode_text`` as a module's forward (rclip exports the text tower this way)."""

        def __init__(self, clip: torch.nn.Module) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.clip.encode_text(tokens)

    export_onnx(
        TextTower(model_256).eval(),
        torch.zeros(1, CONTEXT_LENGTH, dtype=torch.long),
        rclip_dir / "textual.onnx",
    )
    vocab = Path(open_clip.__file__).parent / Path(RCLIP_VOCAB).name
    (models / "rclip" / RCLIP_VOCAB).parent.mkdir(parents=True)
    shutil.copy2(vocab, models / "rclip" / RCLIP_VOCAB)

    # inputs and torch's outputs, for the check with rclip's ONNX Runtime (batch 2, as rclip)
    images = torch.randn(2, 3, image_size, image_size)
    tokens = open_clip.get_tokenizer("ViT-B-32-256")(["a photo of a dog", "a red car"])
    with torch.no_grad():
        visual, textual = model_256.visual(images), model_256.encode_text(tokens)
    np.savez(
        models / "onnx-check.npz",
        images=images.numpy(),
        tokens=tokens.numpy(),
        visual=visual.numpy(),
        textual=textual.numpy(),
    )


def export_onnx(module: object, example: object, path: Path) -> None:
    """Export as rclip's conversion script does: TorchScript exporter, dynamic batch axis."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


ONNX_CHECK = """
import sys, numpy as np, onnxruntime as ort
folder, subdir, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = np.load(folder + "/onnx-check.npz")
worst = {}
for tower, key in (("visual", "images"), ("textual", "tokens")):
    session = ort.InferenceSession(
        f"{folder}/rclip/{subdir}/{tower}.onnx", providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"input": data[key]})
    worst[tower] = float(np.max(np.abs(out - data[tower])))
print(" ".join(f"{k} {v:.1e}" for k, v in worst.items()))
sys.exit(0 if max(worst.values()) < tolerance else 1)
"""
"""Run by rclip's Python: the ONNX towers on the saved inputs against torch's outputs."""


def check_onnx_export(models: Path, rclip_python: Path) -> None:
    """Compare the ONNX towers (run by rclip's ONNX Runtime) with torch, as rclip's script does."""
    command = [str(rclip_python), "-c", ONNX_CHECK, str(models), RCLIP_MODEL_SUBDIR]
    command.append(str(ONNX_TOLERANCE))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the ONNX export differs from torch: {result.stdout}{result.stderr}")
    print(f"ONNX export checked with rclip's onnxruntime: max abs diff {result.stdout.strip()}")


def rclip_datadir(models: str, folder: Path) -> Path:
    """A fresh RCLIP_DATADIR: links to the model files, no database."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / RCLIP_MODEL_SUBDIR).mkdir(parents=True)
    (folder / "tokenizer").mkdir()
    for name in ("visual.onnx", "textual.onnx"):
        (folder / RCLIP_MODEL_SUBDIR / name).symlink_to(Path(models) / RCLIP_MODEL_SUBDIR / name)
    (folder / RCLIP_VOCAB).symlink_to(Path(models) / RCLIP_VOCAB)
    return folder


def rclip_indexed(datadir: Path, photos: Path) -> int:
    """Images in rclip's database under ``photos``."""
    with sqlite3.connect(datadir / "db.sqlite3") as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM images WHERE deleted IS NOT 1 AND filepath LIKE ?",
            (f"{photos}{os.sep}%",),
        ).fetchone()
    return count


# -- running processes -------------------------------------------------------------------------


@dataclass
class Measured:
    """A finished child process: exit status, wall seconds, peak memory (MiB), its output."""

    code: int
    wall: float
    max_rss: float  # the largest single process of the tree (ru_maxrss)
    tree_pss: float  # the peak of the tree's summed PSS, sampled
    stdout: str
    stderr: str
    own_seconds: float | None = None  # what anyshot's --json report says its run took


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, ()))
    return tree


def pss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def run_measured(
    command: Sequence[str], *, cwd: Path | None = None, env: dict | None = None
) -> Measured:
    """Run ``command`` to its end; wall time, peak RSS (wait4) and peak tree PSS (sampled)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                peak[0] = max(peak[0], sum(pss_mib(pid) for pid in process_tree(process.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            process.returncode,
            wall,
            usage.ru_maxrss / 1024,
            peak[0],
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured process: offline, without the export's PYTHONPATH."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", **extra)
    env.pop("PYTHONPATH", None)
    return env


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def failed(what: str, result: Measured) -> str:
    tail = "\n".join(result.stderr.strip().splitlines()[-5:])
    return f"{what} failed (exit {result.code}):\n{tail}"


# -- indexing ----------------------------------------------------------------------------------


@dataclass
class Runs:
    """The measured runs of one configuration."""

    config: Config
    measured: list[Measured] = field(default_factory=list)
    precision: str = ""  # what anyshot info reports after the first run

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(m, attribute) for m in self.measured)


class Bench:
    """Paths and models shared by the indexing and query parts."""

    def __init__(
        self, photos: Path, work: Path, models: dict[str, str], rclip: Path | None
    ) -> None:
        self.photos, self.work, self.models, self.rclip = photos, work, models, rclip
        self.anyshot = Path(sys.executable).parent / "anyshot"
        self.runs_dir = work / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        # anyshot's caches (the forward batch measured per machine, model and precision) live
        # here, not in the user's ~/.cache: runs do not depend on what ran before the bench
        self.cache = work / "xdg-cache"
        self.images = len(list(photos.iterdir()))

    def anyshot_env(self, **extra: str) -> dict[str, str]:
        return child_env(XDG_CACHE_HOME=str(self.cache), **extra)

    def index_location(self, config: Config) -> Path:
        return self.runs_dir / f"{config.name}-{self.images}"

    def indexed(self, config: Config) -> bool:
        """Whether a complete index of ``config`` is there (from this run or an earlier one)."""
        return self.complete_marker(config).exists()

    def complete_marker(self, config: Config) -> Path:
        return self.index_location(config).with_suffix(".complete")

    def index(self, config: Config) -> Measured:
        """One indexing run of ``config`` into a fresh index (kept for the query part)."""
        self.complete_marker(config).unlink(missing_ok=True)
        result = self.index_into(config, self.photos, self.index_location(config))
        self.complete_marker(config).touch()
        return result

    def index_into(self, config: Config, photos: Path, location: Path) -> Measured:
        """Index ``photos`` with ``config`` into a fresh index at ``location``; check the count."""
        if config.tool == "rclip":
            assert self.rclip is not None
            datadir = rclip_datadir(self.models["rclip"], location)
            env = child_env(RCLIP_DATADIR=str(datadir))
            command = [str(self.rclip), "-f", "-t", "1", "a photo"]
            result = run_measured(command, cwd=photos, env=env)
            if result.code != 0:
                sys.exit(failed(f"rclip indexing of {photos}", result))
            count = rclip_indexed(datadir, photos)
        else:
            shutil.rmtree(location, ignore_errors=True)
            env = self.anyshot_env(ANYSHOT_MODEL__PRECISION=config.precision)
            model = self.models[config.architecture]
            command = [str(self.anyshot), "index", str(photos), "--model", model]
            result = run_measured([*command, "--store", str(location), "--json"], env=env)
            if result.code != 0:
                sys.exit(failed(f"anyshot index ({config.name})", result))
            report = json.loads(last_line(result.stdout))
            count, result.own_seconds = report["indexed"], report["seconds"]
        expected = len(list(photos.iterdir()))
        if count != expected:
            sys.exit(f"{config.name} indexed {count} of {expected} images")
        return result

    def warm_up(self, configs: list[Config], photos: Path) -> None:
        """An untimed anyshot run per configuration, every time the bench runs: it measures
        and caches the forward batch and exports the image tower where anyshot runs it on ONNX
        (one-off costs of a machine's first index run with a model and precision; a marker
        that skipped this would time them after a change of what is cached)."""
        for config in configs:
            if config.tool != "anyshot":
                continue
            print(f"  warm-up (untimed): {config.name} on {photos.name}", flush=True)
            self.index_into(config, photos, self.runs_dir / f"warm-up-{config.name}")
            shutil.rmtree(self.runs_dir / f"warm-up-{config.name}", ignore_errors=True)

    def calibrated_batches(self) -> list[list[str]]:
        """Rows (model and precision, batch, images/s per candidate) from anyshot's cache."""
        try:
            data = json.loads((self.cache / "anyshot" / "batch-sizes.json").read_text())
        except (OSError, ValueError):
            return []
        rows = []
        for key, entry in data.items():
            words = key.rpartition("] ")[2].split()  # the CPU part of the key dropped
            what = " ".join(
                Path(word.partition(":")[2]).name if word.startswith("local-dir:") else word
                for word in words
                if not (len(word) == 16 and all(c in "0123456789abcdef" for c in word))
            )
            rates = ", ".join(f"{b}: {r}" for b, r in entry.get("images_per_second", {}).items())
            rows.append([what, str(entry.get("batch")), rates])
        return rows

    def anyshot_precision(self, config: Config) -> str:
        """The precision the store records (``anyshot info --json``)."""
        command = [str(self.anyshot), "info", "--store", str(self.index_location(config)), "--json"]
        result = subprocess.run(
            command, capture_output=True, text=True, env=self.anyshot_env(), check=False
        )
        if result.returncode != 0:
            return "?"
        return str(json.loads(last_line(result.stdout)).get("precision") or "?")


def bench_indexing(bench: Bench, configs: list[Config], repeats: int, warm_up: Path | None) -> None:
    images = bench.images
    runs = {config.name: Runs(config) for config in configs}
    rows = []
    print(f"\nindexing: {load()}", flush=True)
    if warm_up is not None:
        bench.warm_up(configs, warm_up)
        calibrated = bench.calibrated_batches()
        if calibrated:
            print_table(
                "Forward batch anyshot measured (model, image size, precision; untimed warm-up)",
                ["model", "batch", "images/s at each candidate batch"],
                calibrated,
            )
    for repeat in range(repeats):
        shift = repeat % len(configs)
        for config in configs[shift:] + configs[:shift]:
            result = bench.index(config)
            entry = runs[config.name]
            entry.measured.append(result)
            if config.tool == "anyshot" and not entry.precision:
                entry.precision = bench.anyshot_precision(config)
            rows.append(
                [repeat + 1, config.name, f"{result.wall:.2f}", f"{images / result.wall:.2f}",
                 "" if result.own_seconds is None else f"{result.own_seconds:.2f}",
                 f"{result.max_rss:.0f}", f"{result.tree_pss:.0f}"]
            )  # fmt: skip
            print(f"  {config.name} repeat {repeat + 1}: {result.wall:.1f} s, {load()}", flush=True)
    print_table(
        f"Indexing runs, {images} JPEGs (1600x1200), each a new process into a fresh index, "
        "in the order run",
        ["repeat", "config", "wall s", "images/s", "anyshot's own s",
         "peak RSS MiB (largest process)", "peak PSS MiB (process tree)"],
        rows,
    )  # fmt: skip
    summary_table(runs, images, repeats)


def summary_table(runs: dict[str, Runs], images: int, repeats: int) -> None:
    rclip = runs.get("rclip")
    rclip_wall = rclip.median("wall") if rclip else None
    rows = []
    for entry in runs.values():
        config, wall = entry.config, entry.median("wall")
        precision = config.precision
        if entry.precision and entry.precision != config.precision:
            precision = f"{config.precision} ({entry.precision})"
        walls = [m.wall for m in entry.measured]
        rows.append(
            [config.name, config.tool, config.architecture, precision, f"{wall:.2f}",
             f"{min(walls):.2f}-{max(walls):.2f}", f"{images / wall:.2f}",
             f"{rclip_wall / wall:.2f}" if rclip_wall else "",
             f"{entry.median('max_rss'):.0f}", f"{entry.median('tree_pss'):.0f}"]
        )  # fmt: skip
    print_table(
        f"Indexing, median of {repeats} (ratio: rclip's median wall / this median wall, i.e. "
        "the ratio of rates)",
        ["config", "tool", "architecture", "precision (recorded)", "wall s", "range s",
         "images/s", "x rclip", "peak RSS MiB", "peak tree PSS MiB"],
        rows,
    )  # fmt: skip
    if rclip_wall is None:
        return
    print()
    for name, goal, what in GOALS:
        if name in runs:
            ratio = rclip_wall / runs[name].median("wall")
            verdict = "met" if ratio >= goal else "NOT met"
            print(
                f"goal: anyshot int8 >= {goal}x rclip at the {what} ({name}): "
                f"{ratio:.2f}x, {verdict}"
            )


# -- cold queries ------------------------------------------------------------------------------


def bench_queries(bench: Bench, query_config: Config, count: int, with_rclip: bool) -> None:
    """``count`` distinct text queries, each a new process, alternating between the two tools."""
    queries = [
        QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(count)
    ]
    tools = ["anyshot", "rclip"] if with_rclip else ["anyshot"]
    for config in [query_config, CONFIGS["rclip"]] if with_rclip else [query_config]:
        if not bench.indexed(config):
            print(f"indexing for the queries (untimed): {config.name}", flush=True)
            bench.index(config)
    store = bench.index_location(query_config)
    datadir = bench.index_location(CONFIGS["rclip"])
    walls: dict[str, list[float]] = {tool: [] for tool in tools}
    print(f"\ncold queries: {load()}", flush=True)
    for i, query in enumerate(queries):
        for tool in tools if i % 2 == 0 else tools[::-1]:
            if tool == "anyshot":
                command = [
                    str(bench.anyshot),
                    "search",
                    query,
                    "--store",
                    str(store),
                    "-k",
                    "10",
                    "--json",
                ]
                result = run_measured(command, env=bench.anyshot_env())
                hits = len(result.stdout.strip().splitlines())
            else:
                assert bench.rclip is not None
                command = [str(bench.rclip), "--no-indexing", "-f", "-t", "10", query]
                env = child_env(RCLIP_DATADIR=str(datadir))
                result = run_measured(command, cwd=bench.photos, env=env)
                hits = len(result.stdout.strip().splitlines())
            if result.code != 0:
                sys.exit(failed(f"{tool} query {query!r}", result))
            if hits != min(10, bench.images):
                sys.exit(f"{tool} query {query!r} gave {hits} results:\n{result.stdout}")
            walls[tool].append(result.wall)
    print(f"cold queries done: {load()}")
    rows = []
    for tool, values in walls.items():
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        what = (
            f"anyshot search TEXT -k 10 --json ({query_config.name} store)"
            if tool == "anyshot"
            else "rclip --no-indexing -f -t 10 TEXT"
        )
        rows.append(
            [what, len(values), f"{statistics.median(values):.2f}", f"{deciles[8]:.2f}",
             f"{min(values):.2f}", f"{max(values):.2f}"]
        )  # fmt: skip
    print_table(
        "Cold text queries, each a new process, alternating (wall seconds)",
        ["command", "queries", "p50", "p90", "min", "max"],
        rows,
    )
    anyshot_p50 = statistics.median(walls["anyshot"])
    verdict = "met" if anyshot_p50 <= QUERY_GOAL_SECONDS else "NOT met"
    versus = ""
    if with_rclip:
        versus = f", {anyshot_p50 / statistics.median(walls['rclip']):.2f}x rclip's p50"
    print(
        f"\ngoal: a cold anyshot text query <= {QUERY_GOAL_SECONDS} s (on an idle 2-core machine):"
        f" p50 {anyshot_p50:.2f} s{versus}, {verdict}"
    )


# -- entry point -------------------------------------------------------------------------------


def parse_configs(text: str) -> list[Config]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown configuration {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(CONFIGS)}"
        )
    return [CONFIGS[name] for name in dict.fromkeys(names)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_default = Path(tempfile.gettempdir()) / "anyshot-bench"
    parser.add_argument("--images", type=int, default=300, help="photos to index (default 300)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each configuration (default 3)"
    )
    parser.add_argument(
        "--configs",
        type=parse_configs,
        default=list(CONFIGS.values()),
        help=f"comma-separated subset of {','.join(CONFIGS)} (default: all)",
    )
    parser.add_argument("--skip-rclip", action="store_true", help="leave rclip out")
    parser.add_argument("--skip-indexing", action="store_true", help="only the query part")
    parser.add_argument("--skip-queries", action="store_true", help="only the indexing part")
    parser.add_argument(
        "--no-warm-up",
        action="store_true",
        help="no untimed first anyshot run per configuration (calibration and export are timed)",
    )
    parser.add_argument(
        "--queries", type=int, default=20, help="cold queries per tool (default 20)"
    )
    parser.add_argument(
        "--query-config",
        type=parse_configs,
        default=[CONFIGS["b32-auto"]],
        help="the anyshot configuration whose index the queries search (default b32-auto)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=data_default,
        help="cache and work folder (default $TMPDIR/anyshot-bench)",
    )
    parser.add_argument("--rclip-venv", type=Path, help="rclip's venv (default DATA/rclip-venv)")
    parser.add_argument("--prepare-models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare_models:
        prepare_models(args.prepare_models)
        return
    if args.images < 1 or args.repeats < 1 or args.queries < 2:
        parser.error("--images and --repeats must be >= 1, --queries >= 2")
    if len(args.query_config) != 1 or args.query_config[0].tool != "anyshot":
        parser.error("--query-config takes one anyshot configuration")
    configs = [c for c in args.configs if not (args.skip_rclip and c.tool == "rclip")]

    print(f"machine: {machine()}", flush=True)
    data = args.data.resolve()
    with_rclip = not args.skip_rclip
    rclip = (
        ensure_rclip_venv((args.rclip_venv or data / "rclip-venv").resolve())
        if with_rclip
        else None
    )
    work = data / "vs-rclip"
    models = ensure_models(work, rclip.parent / "python" if rclip else None)
    photos = ensure_photos(data, args.images)
    bench = Bench(photos, work, models, rclip)
    if not args.skip_indexing and configs:
        warm_up = None if args.no_warm_up else ensure_photos(data, WARM_UP_IMAGES)
        bench_indexing(bench, configs, args.repeats, warm_up)
    if not args.skip_queries:
        bench_queries(bench, args.query_config[0], args.queries, with_rclip)
    print(f"\nmachine at the end: {machine()}")


if __name__ == "__main__":
    main()
