"""A text search from a new process: torch path vs the exported ONNX text tower; print tables.

Run from the repository root (not in CI)::

    HF_HUB_OFFLINE=1 python bench/bench_cold_query.py --work /tmp/anyshot-cold

What it does:

1. saves ViT-B-32 with random weights as a ``local-dir:`` model (speed does not depend on the
   weights' values; pretrained ones cannot be downloaded here) and indexes ``--images``
   generated shape images with it into a store under ``--work`` (both reused by later runs);
2. exports the text tower at fp32 and at int8 (ONNX Runtime dynamic quantization, unsigned
   weights as shipped, and signed weights for comparison): export time, file size, cosine of
   each to torch fp32's text vectors and warm in-process query time;
3. runs ``--queries`` distinct text queries, each as a new ``anyshot search TEXT --store S -k
   10 --json`` process, alternating the torch path (``ANYSHOT_MODEL__TEXT_RUNTIME=torch``)
   with the ONNX path at fp32 and at int8: p50/p90 wall time of each;
4. lists where the ONNX process's time goes (``python -X importtime``, top imports).

The machine (CPU model, the flags that matter, load average) is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
}
SUBJECTS = ["dog", "cat", "beach", "sunset", "mountain", "city", "car", "bicycle", "child"]
SCENES = ["at night", "in the rain", "on a sunny day", "in winter", "from above", "up close"]
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")
ANYSHOT = Path(sys.executable).parent / "anyshot"


def machine() -> str:
    """CPU model, the flags that matter here (the machine's own), cores and load average."""
    from indexer.cpu import FLAGS_OVERRIDE_ENV, _proc_cpu_flags

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = _proc_cpu_flags()
    shown = " ".join(f"{flag}{'+' if flag in flags else '-'}" for flag in FLAGS)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    override = os.environ.get(FLAGS_OVERRIDE_ENV)
    told = f"; anyshot told the flags are {override!r} ({FLAGS_OVERRIDE_ENV})" if override else ""
    return f"{model}; {shown}; {os.cpu_count()} cores; load average {load}{told}"


def queries(count: int) -> list[str]:
    """Distinct texts (each query process misses every cache but the export)."""
    texts = [f"a photo of a {s} {scene}" for scene in SCENES for s in SUBJECTS]
    return texts[:count]


def save_vit_b32(folder: Path) -> str:
    """ViT-B-32 with random weights in open_clip's local-dir format; returns its model name."""
    if not (folder / "open_clip_model.safetensors").is_file():
        import open_clip
        from safetensors.torch import save_file

        model = open_clip.create_model("ViT-B-32", pretrained=None)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
        config = {
            "model_cfg": open_clip.get_model_config("ViT-B-32"),
            "preprocess_cfg": OPENAI_PREPROCESS,
        }
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    return f"local-dir:{folder}"


def build_store(work: Path, model: str, images: int, env: dict[str, str]) -> Path:
    """Index generated images with the model (once; reused while it holds that many)."""
    store = work / "store"
    done = work / "store.done"
    if done.is_file() and done.read_text() == f"{model} {images}":
        return store
    from indexer.shapes.synthetic import COLOURS, SHAPES, ObjectSpec, SceneSpec, render_scene

    folder = work / "images"
    folder.mkdir(parents=True, exist_ok=True)
    colours = list(COLOURS)
    for index in range(images):
        shape, colour = SHAPES[index % len(SHAPES)], colours[index % len(colours)]
        background = colours[(index + 3) % len(colours)]
        item = ObjectSpec(shape, colour, "large", "centre")
        spec = SceneSpec((item,), "plain", background, index)
        render_scene(spec, 96).save(folder / f"{shape}-{colour}-{index:04d}.png")
    subprocess.run(
        [str(ANYSHOT), "index", str(folder), "--store", str(store), "--model", model],
        env=env | {"ANYSHOT_MODEL__TEXT_RUNTIME": "torch"},  # the exports are timed below
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.write_text(f"{model} {images}")
    return store


def export_towers(model: str, cache: Path, texts: list[str]) -> list[tuple[str, ...]]:
    """Export fp32 and int8 towers into the cache; rows of the export table."""
    from indexer.config import ModelSettings
    from indexer.embed import Embedder
    from indexer.text_onnx import OnnxTextTower
    from indexer.text_onnx_export import export_text_tower

    settings = ModelSettings(name=model, precision="fp32", cache_dir=cache)
    embedder = Embedder(settings)
    exact = embedder.embed_texts(texts)
    torch_ms = warm_ms(lambda text: embedder.embed_texts([text]), texts)
    rows = [("torch fp32 (reference)", "-", "-", "1.000000", f"{torch_ms:.1f}")]
    for precision in ("fp32", "int8"):
        started = time.perf_counter()
        path = export_text_tower(embedder, settings, precision)
        seconds = time.perf_counter() - started
        tower = OnnxTextTower(path)
        rows.append(tower_row(f"ONNX {precision}", path, seconds, tower, exact, texts))
        if precision == "fp32":
            fp32_path = path
    rows.append(signed_int8_row(fp32_path, cache, exact, texts))
    return rows


def signed_int8_row(fp32_path: Path, cache: Path, exact: np.ndarray, texts: list[str]):
    """The same fp32 export quantized with signed int8 weights (not shipped), for comparison."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from indexer.text_onnx import OnnxTextTower

    target = cache / "signed-int8-comparison.onnx"
    import logging

    started = time.perf_counter()
    logging.disable(logging.WARNING)  # its advice to pre-process is for static quantization
    try:
        quantize_dynamic(fp32_path, target, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    seconds = time.perf_counter() - started
    quantized = onnx.load(str(target))  # with the export's metadata, which the tower reads
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(onnx.load(str(fp32_path)).metadata_props)
    onnx.save(quantized, str(target))
    tower = OnnxTextTower(target)
    row = tower_row("ONNX int8 signed weights", target, seconds, tower, exact, texts)
    target.unlink()
    return row


def tower_row(label, path, seconds, tower, exact, texts) -> tuple[str, ...]:
    vectors = tower.embed_texts(texts)
    cosine = float((vectors * exact).sum(axis=1).min())
    ms = warm_ms(lambda text: tower.embed_texts([text]), texts)
    size = f"{path.stat().st_size / 2**20:.0f} MiB"
    return (label, size, f"{seconds:.1f}", f"{cosine:.6f}", f"{ms:.1f}")


def warm_ms(embed, texts: list[str]) -> float:
    embed(texts[0])
    started = time.perf_counter()
    for text in texts:
        embed(text)
    return (time.perf_counter() - started) / len(texts) * 1000


def cold_runs(store: Path, texts: list[str], env: dict[str, str]) -> dict[str, list[float]]:
    """Each text as a new process on each path, the paths alternating."""
    paths = {
        "torch": {"ANYSHOT_MODEL__TEXT_RUNTIME": "torch"},
        "ONNX fp32": {"ANYSHOT_MODEL__TEXT_RUNTIME": "auto", "ANYSHOT_MODEL__TEXT_INT8": "false"},
        "ONNX int8": {"ANYSHOT_MODEL__TEXT_RUNTIME": "auto", "ANYSHOT_MODEL__TEXT_INT8": "true"},
    }
    walls: dict[str, list[float]] = {name: [] for name in paths}
    for text in texts:
        for name, extra in paths.items():
            started = time.perf_counter()
            done = subprocess.run(
                [str(ANYSHOT), "search", text, "--store", str(store), "-k", "10", "--json"],
                env=env | extra,
                capture_output=True,
                text=True,
                check=False,
            )
            walls[name].append(time.perf_counter() - started)
            if done.returncode != 0 or len(done.stdout.splitlines()) != 10:
                raise SystemExit(f"{name} failed: {done.stderr.strip()}")
    return walls


def import_profile(store: Path, env: dict[str, str], top: int) -> list[tuple[float, str]]:
    """The slowest top-level imports of one ONNX-path search (``python -X importtime``)."""
    code = (
        "import sys\nfrom search.cli import main\n"
        "try:\n    main(sys.argv[1:], prog_name='anyshot')\nexcept SystemExit:\n    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, "search", "a dog", "--store", str(store)],
        env=env | {"ANYSHOT_MODEL__TEXT_RUNTIME": "auto"},
        capture_output=True,
        text=True,
        check=True,
    )
    entries = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  ") and cumulative.strip().isdigit():
            entries.append((int(cumulative) / 1000, name.strip()))
    return sorted(entries, reverse=True)[:top]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/anyshot-cold"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(cache)}
    texts = queries(args.queries)

    print(f"machine: {machine()}\n")
    model = save_vit_b32(args.work / "vit-b-32-random")
    started = time.perf_counter()
    store = build_store(args.work, model, args.images, env)
    seconds = time.perf_counter() - started
    print(f"store: {args.images} images indexed with ViT-B-32 ({seconds:.0f} s)")

    for old in (cache / "anyshot" / "text-towers").glob("*.onnx"):
        old.unlink()  # each run times fresh exports
    rows = export_towers(model, cache, texts)
    print("\nText tower exports (ViT-B-32), warm in-process query = tokenize + tower, one text:")
    print(table(("text path", "file", "export s", "min cosine to torch", "warm ms"), rows))

    walls = cold_runs(store, texts, env)
    print(
        f"\nA new `anyshot search TEXT --store S -k 10 --json` process, {len(texts)} distinct "
        f"queries each, paths alternating (load average now {os.getloadavg()[0]:.2f}):"
    )
    print(table(
        ("text path", "p50 s", "p90 s", "min s", "max s"),
        [
            (name, f"{statistics.median(v):.2f}", f"{percentile(v, 0.9):.2f}",
             f"{min(v):.2f}", f"{max(v):.2f}")
            for name, v in walls.items()
        ],
    ))  # fmt: skip

    print("\nWhere an ONNX-path process's imports go (python -X importtime, cumulative ms):")
    profile = import_profile(store, env, 12)
    print(table(("ms", "module"), [(f"{ms:.0f}", name) for ms, name in profile]))


if __name__ == "__main__":
    main()
