"""Text inside images: the OCR engine's word recall, the gate, ``--ocr`` retrieval, and speed.

One run renders a set of images (``tests/text_images.py``: DejaVu fonts, sizes 18-60 px,
rotations up to 12°, blur, perspective, photo-like textured backgrounds, some text on a plain
panel like a sign) and as many photo-like images without text, then measures:

- **word recall** of the engine, every image read in full (no gate): the fraction of the
  written words found as words of the recognised text (*exact*), and as anyshot's matching
  finds them (*as matched*: case-insensitive, inside a longer word, one wrong letter in words of
  5+ letters); Tesseract (Debian's ``tesseract-ocr`` + ``pytesseract``) beside it where it is
  installed;
- **the gate** (the detector alone at 320 px): the share of images without text it skips (what
  it saves), the share of text images it skips and the words lost with them (what it misses);
- **retrieval**: for every written word, ``search --ocr WORD -k 10`` over the store the gated
  run filled: precision@10 (relevant among the hits returned, at most 10) and recall@10
  (relevant among the hits / min(10, relevant images)), averaged over words;
- **speed**, in the same run: images/s of embedding (``index_source`` with ViT-B-32, random
  weights: speed does not depend on them), of OCR gated (``read_texts``, the index stage) and
  ungated, and the time of one ``--ocr`` query.

Run: ``python bench/bench_ocr.py [--text 120] [--plain 120]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from PIL import Image  # noqa: E402
from text_images import render_set  # noqa: E402

from indexer.config import IndexSettings, StoreSettings  # noqa: E402
from indexer.indexing import IndexPlan, index_source, read_texts  # noqa: E402
from indexer.ocr import match_words, text_words  # noqa: E402
from indexer.schema import ImageRecord  # noqa: E402
from indexer.stores.opening import open_store  # noqa: E402
from search.text_search import search_text_inside  # noqa: E402


def machine() -> str:
    model = "unknown CPU"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extra = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {', '.join(extra) or 'no AVX-512/AMX'}"


def recall(truth: dict[str, tuple[str, ...]], texts: dict[str, str]) -> tuple[float, float]:
    """(exact, as matched) word recall over the images with text."""
    exact = matched = total = 0
    for path, words in truth.items():
        if not words:
            continue
        text = texts.get(path, "")
        found = set(text_words(text))
        exact += sum(word in found for word in words)
        matched += sum(match_words([word], text) > 0 for word in words)
        total += len(words)
    return exact / total, matched / total


def tesseract_texts(paths: list[str]) -> tuple[dict[str, str], float] | None:
    if shutil.which("tesseract") is None:
        return None
    try:
        import pytesseract
    except ImportError:
        return None
    started = time.perf_counter()
    texts = {p: pytesseract.image_to_string(Image.open(p).convert("RGB")) for p in paths}
    return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=int, default=120, help="Images with text.")
    parser.add_argument("--plain", type=int, default=120, help="Images without text.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    truth = render_set(work / "images", args.text, seed=args.seed, without_text=args.plain)
    paths = list(truth)
    with_text = [p for p in paths if truth[p]]
    rows: list[tuple[str, str]] = []

    # Embedding: an index run without OCR (decode + ViT-B-32 + store).
    from bench_index import load_embedder, save_vit_b32

    embedder = load_embedder(save_vit_b32(work / "vit-b-32"))
    settings = IndexSettings(batch_size=64, workers=1)
    with open_store(StoreSettings(location=str(work / "store"))) as store:
        report = index_source(work / "images", embedder=embedder, store=store, settings=settings)
    embed_rate = report.indexed / report.seconds
    precision = getattr(embedder, "image_precision", "?")
    shutil.copytree(work / "store", work / "store-ungated")

    # OCR, the index stage itself over the stored images: ungated, then gated (a copy).
    plan = IndexPlan(missing_text=[ImageRecord(p) for p in paths])
    runs = {}
    for name, gate in (("ungated", False), ("gated", True)):
        folder = work / ("store" if gate else "store-ungated")
        with open_store(StoreSettings(location=str(folder))) as store:
            counts = read_texts(
                store, plan, settings.model_copy(update={"ocr": True, "ocr_gate": gate})
            )
            payloads = {str(p.payload["uri"]): p.payload for p in store.scroll()}
        runs[name] = (counts, {p: str(payloads[p].get("text", "")) for p in paths})
    ungated_counts, ungated = runs["ungated"]
    gated_counts, gated = runs["gated"]
    ungated_rate = ungated_counts.looked / ungated_counts.seconds
    gated_rate = gated_counts.looked / gated_counts.seconds
    exact, as_matched = recall(truth, ungated)
    gated_exact, gated_matched = recall(truth, gated)
    plain = [p for p in paths if not truth[p]]
    plain_skipped = sum(1 for p in plain if not gated[p]) / max(len(plain), 1)
    plain_read = sum(1 for p in plain if ungated[p]) / max(len(plain), 1)
    # Text images the gate skipped although a full read finds text in them.
    gate_missed = [p for p in with_text if ungated[p] and not gated[p]]
    store = open_store(StoreSettings(location=str(work / "store")))

    # Retrieval: --ocr WORD over the gated store.
    vocabulary = sorted({w for words in truth.values() for w in words})
    precisions, recalls, query_ms = [], [], []
    for word in vocabulary:
        relevant = {p for p in with_text if word in truth[p]}
        started = time.perf_counter()
        hits = search_text_inside(store, word, where=None, k=10).hits
        query_ms.append(1000 * (time.perf_counter() - started))
        found = [h.uri for h in hits]
        good = sum(uri in relevant for uri in found)
        precisions.append(good / len(found) if found else 1.0)
        recalls.append(good / min(10, len(relevant)))
    store.close()

    tess = tesseract_texts(with_text)

    print(f"machine: {machine()}; Python {platform.python_version()}")
    print(f"images: {len(with_text)} with text ({sum(map(len, truth.values()))} words), "
          f"{args.plain} without; 640x480 JPEG")  # fmt: skip
    rows += [
        ("RapidOCR word recall, read in full (exact / matched)", f"{exact:.3f} / {as_matched:.3f}"),
        (
            "RapidOCR word recall, gated (exact / matched)",
            f"{gated_exact:.3f} / {gated_matched:.3f}",
        ),
    ]
    if tess is not None:
        tess_texts, tess_seconds = tess
        t_exact, t_matched = recall(truth, tess_texts)
        rows += [
            ("Tesseract 5 word recall (exact / as matched)", f"{t_exact:.3f} / {t_matched:.3f}"),
            ("Tesseract 5 images/s (text images)", f"{len(with_text) / tess_seconds:.2f}"),
        ]
    rows += [
        ("images without text in which a full read finds 'text'", f"{plain_read:.1%}"),
        ("images without text left without text by the gated run", f"{plain_skipped:.1%}"),
        ("gate: images not read in full (no text region at 320 px)", f"{gated_counts.gated}"),
        ("gate: text images skipped, text found when read in full", f"{len(gate_missed)}"),
        ("--ocr WORD precision@10 (mean over words)", f"{statistics.mean(precisions):.3f}"),
        ("--ocr WORD recall@10 (mean over words)", f"{statistics.mean(recalls):.3f}"),
        (f"embedding images/s (index run, ViT-B-32 {precision}, no OCR)", f"{embed_rate:.2f}"),
        ("OCR images/s, gated (index stage)", f"{gated_rate:.2f}"),
        ("OCR images/s, ungated", f"{ungated_rate:.2f}"),
        (f"--ocr query over {len(paths)} images, median ms", f"{statistics.median(query_ms):.1f}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"| {'measurement':<{width}} | value |")
    print(f"| {'-' * width} | ---: |")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
