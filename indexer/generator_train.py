"""Training the generator of visual features (:mod:`indexer.generator`) from captioned images.

Pairs are the collection's own image embeddings (from the store) with captions from, in order:

1. a captions file given by the caller: CSV or Parquet with an image column (``image``,
   ``path``, ``uri`` or ``file``; relative paths are read from the file's folder) and a caption
   column (``caption``, ``text`` or ``description``);
2. ``labels.jsonl`` beside the images (the synthetic domain's captions: ``path``, ``caption``);
3. a sidecar text file next to an image (``photo.jpg.txt`` or ``photo.txt``);
4. the description or title an index run read from the image's XMP/IPTC metadata.

An image with several captions gives several pairs. A caption longer than CLIP's 77 tokens is
embedded as the mean of its chunks (:func:`indexer.generator.chunk_text`). Unreadable caption
files are skipped with a logged reason; too few pairs is a one-line error.

Two ways to train the same network, compared in ``bench/eval_generator.py`` (``gan``, the
default, measured best on P@10; most of what either gains comes from the ridge start, the linear
text → image map):

- ``mlp``: a residual MLP from a ridge-regression start, trained with an in-batch contrastive
  loss (the generated vector must pick its own image out of the batch) plus a cosine term;
- ``gan``: the seed's conditional GAN (Zhu et al. 2018): a WGAN-GP critic on (image, text)
  with the same contrastive loss as the retrieval regulariser.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from indexer.errors import ConfigError, QueryError
from indexer.generator import Generator, chunk_text, save_generator, unit_rows
from indexer.schema import ModelIdentity, uri_path
from indexer.stores.interface import VectorStore

logger = logging.getLogger(__name__)

GeneratorKind = Literal["mlp", "gan"]
GENERATOR_KINDS: tuple[str, ...] = ("mlp", "gan")
DEFAULT_KIND: GeneratorKind = "gan"
"""The kind ``anyshot generator train`` trains: the one that measured best (bench/README.md)."""

MIN_PAIRS = 20
"""Fewer (caption, image) pairs than this train nothing useful: refused."""
MAX_CAPTION_CHARS = 4_000
MAX_SIDECAR_BYTES = 64 * 1024
IMAGE_COLUMNS = ("image", "path", "uri", "file")
CAPTION_COLUMNS = ("caption", "text", "description")
SIDECAR_LABELS = "labels.jsonl"

TextEmbedder = Callable[[list[str]], np.ndarray]


@dataclass
class CaptionPairs:
    """Captions found for the collection's images.

    Attributes:
        ids: The point id of each pair's image.
        captions: Each pair's caption.
        sources: How many pairs came from each source (``file``, ``labels.jsonl``,
            ``sidecar``, ``metadata``).
        skipped: Reasons captions were not used (one line each; the count is what matters).
    """

    ids: list[int] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def add(self, point_id: int, caption: Any, source: str) -> None:
        if not isinstance(caption, str) or not caption.strip():
            return
        self.ids.append(point_id)
        self.captions.append(" ".join(caption.split())[:MAX_CAPTION_CHARS])
        self.sources[source] = self.sources.get(source, 0) + 1

    def skip(self, reason: str) -> None:
        logger.warning("skipped %s", reason)
        self.skipped.append(reason)


def gather_captions(store: VectorStore, captions_file: str | Path | None = None) -> CaptionPairs:
    """Find captions for the collection's images (sources: this module's docstring).

    Raises:
        ConfigError: The captions file cannot be read or has no image and caption columns.
    """
    found = CaptionPairs()
    by_path: dict[str, list[str]] = {}
    if captions_file is not None:
        by_path = _read_captions_file(Path(captions_file).expanduser())
    labels: dict[Path, dict[str, list[str]]] = {}
    matched: set[str] = set()
    for point in store.scroll():
        path = uri_path(str(point.payload.get("uri", "")))
        if path is not None and path in by_path:
            matched.add(path)
            for caption in by_path[path]:
                found.add(point.id, caption, "file")
        if path is not None:
            local = Path(path)
            folder = local.parent
            if folder not in labels:
                labels[folder] = _read_labels(folder / SIDECAR_LABELS, found)
            for caption in labels[folder].get(local.name, []):
                found.add(point.id, caption, SIDECAR_LABELS)
            for sidecar in (local.with_name(local.name + ".txt"), local.with_suffix(".txt")):
                if sidecar != local and sidecar.is_file():
                    found.add(point.id, _read_sidecar(sidecar, found), "sidecar")
                    break
        for key in ("description", "title"):
            value = point.payload.get(key)
            if isinstance(value, str) and value.strip():
                found.add(point.id, value, "metadata")
                break
    unmatched = len(by_path) - len(matched)
    if unmatched:
        found.skip(f"{unmatched} images of {captions_file}: not in the collection")
    return found


def _read_captions_file(path: Path) -> dict[str, list[str]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        elif suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        else:
            raise ConfigError(f"{path}: a captions file is a .csv, .tsv or .parquet file")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise ConfigError(f"cannot read the captions file {path}: {exc}") from exc
    except Exception as exc:  # pyarrow's own errors
        raise ConfigError(f"cannot read the captions file {path}: {exc}") from exc
    columns = {str(c).strip().lower(): c for c in (rows[0].keys() if rows else [])}
    image = next((columns[c] for c in IMAGE_COLUMNS if c in columns), None)
    caption = next((columns[c] for c in CAPTION_COLUMNS if c in columns), None)
    if image is None or caption is None:
        raise ConfigError(
            f"{path}: a captions file needs an image column ({', '.join(IMAGE_COLUMNS)}) and a "
            f"caption column ({', '.join(CAPTION_COLUMNS)})"
        )
    out: dict[str, list[str]] = {}
    for row in rows:
        name, text = row.get(image), row.get(caption)
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str):
            continue
        local = uri_path(name.strip()) or name.strip()
        full = Path(local).expanduser()
        if not full.is_absolute():
            full = path.parent / full
        out.setdefault(str(full.absolute()), []).append(text)
    return out


def _read_labels(path: Path, found: CaptionPairs) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    out: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        found.skip(f"{path}: {exc}")
        return {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name, caption = Path(str(record["path"])).name, record["caption"]
        except (ValueError, KeyError, TypeError) as exc:
            found.skip(f"{path}:{number}: not a label record ({exc})")
            continue
        if isinstance(caption, str):
            out.setdefault(name, []).append(caption)
    return out


def _read_sidecar(path: Path, found: CaptionPairs) -> str | None:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            found.skip(f"{path}: larger than {MAX_SIDECAR_BYTES} bytes")
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        found.skip(f"{path}: {exc}")
        return None


def embed_descriptions(embed_texts: TextEmbedder, texts: Sequence[str]) -> np.ndarray:
    """Unit embeddings of descriptions; a long one is the unit mean of its chunks' embeddings.

    Args:
        embed_texts: The model's text embedder (unit rows for a list of texts).
        texts: The descriptions.
    """
    chunks: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        parts = chunk_text(text) or [text]
        chunks += parts
        owner += [index] * len(parts)
    unique = list(dict.fromkeys(chunks))
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), 256):
        batch = unique[start : start + 256]
        vectors.update(zip(batch, np.asarray(embed_texts(batch), np.float32), strict=True))
    sums = np.zeros((len(texts), len(next(iter(vectors.values())))), np.float32)
    for chunk, index in zip(chunks, owner, strict=True):
        sums[index] += vectors[chunk]
    return unit_rows(sums)


@dataclass
class TrainOptions:
    """How to train.

    Attributes:
        kind: ``mlp`` or ``gan`` (see the module docstring).
        epochs: Passes over the pairs.
        batch_size: Pairs per step.
        noise_dim: Length of the noise vector.
        temperature: Of the contrastive loss.
        seed: Seeds initialisation, batches and noise.
        threads: Torch threads (None: torch's default).
        max_steps: Fewer epochs when they would take more steps than this (a large
            collection needs fewer passes; training stays within minutes on a CPU).
    """

    kind: GeneratorKind = DEFAULT_KIND
    epochs: int = 60
    batch_size: int = 256
    noise_dim: int = 16
    temperature: float = 0.05
    seed: int = 0
    threads: int | None = None
    max_steps: int = 3000


def train_generator(
    text_vectors: np.ndarray,
    image_vectors: np.ndarray,
    model: ModelIdentity,
    options: TrainOptions | None = None,
) -> Generator:
    """Train a generator on (text embedding, image embedding) pairs.

    Args:
        text_vectors: Unit text embeddings, one per pair.
        image_vectors: Unit image embeddings of the same pairs.
        model: The model both came from (kept with the generator).
        options: How to train; defaults if None.

    Raises:
        QueryError: Fewer than :data:`MIN_PAIRS` pairs, or an unknown kind.
    """
    import torch

    options = options or TrainOptions()
    if options.kind not in GENERATOR_KINDS:
        raise QueryError(f"unknown generator kind {options.kind!r}: use one of {GENERATOR_KINDS}")
    texts = np.asarray(text_vectors, np.float32)
    images = np.asarray(image_vectors, np.float32)
    n, d = texts.shape
    if n < MIN_PAIRS:
        raise QueryError(
            f"only {n} captioned images: the generator needs at least {MIN_PAIRS} (captions "
            f"from --captions, labels.jsonl, .txt sidecars or XMP/IPTC descriptions)"
        )
    steps_per_epoch = max(1, n // options.batch_size)
    epochs = max(1, min(options.epochs, options.max_steps // steps_per_epoch))
    options = replace(options, epochs=epochs)
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    generator_net = _Net(d, options.noise_dim, max(256, d))
    with torch.no_grad():
        generator_net.skip.weight.copy_(torch.from_numpy(_ridge(texts, images).T))
    t_all = torch.from_numpy(texts)
    i_all = torch.from_numpy(images)
    started = time.perf_counter()
    if options.kind == "mlp":
        losses = _train_mlp(generator_net, t_all, i_all, options)
    else:
        losses = _train_gan(generator_net, t_all, i_all, options)
    weights = generator_net.arrays()
    return Generator(
        kind=options.kind,
        model=model,
        noise_dim=options.noise_dim,
        weights=weights,
        noise_scale=1.0,
        pairs=n,
        info={
            "epochs": options.epochs,
            "loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
            "train_seconds": round(time.perf_counter() - started, 2),
        },
    )


def _ridge(texts: np.ndarray, images: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """The linear map text → image of least squares (a strong start for the skip path)."""
    d = texts.shape[1]
    gram = texts.T @ texts + alpha * np.eye(d, dtype=np.float32)
    return np.linalg.solve(gram, texts.T @ images).astype(np.float32)


def _batches(n: int, size: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n, size):
        batch = order[start : start + size]
        if len(batch) >= 2:
            yield batch


def _contrastive(generated: Any, images: Any, temperature: float) -> Any:
    import torch
    import torch.nn.functional as F

    logits = generated @ images.T / temperature
    labels = torch.arange(len(generated))
    cosine = (generated * images).sum(dim=1)
    return F.cross_entropy(logits, labels) + (1.0 - cosine).mean()


def _train_mlp(net: Any, texts: Any, images: Any, options: TrainOptions) -> list[float]:
    import torch

    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(options.seed)
    losses: list[float] = []
    for _ in range(options.epochs):
        for batch in _batches(len(texts), options.batch_size, rng):
            t, i = texts[batch], images[batch]
            noise = torch.randn(len(batch), options.noise_dim)
            loss = _contrastive(net(t, noise), i, options.temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    return losses


def _train_gan(net: Any, texts: Any, images: Any, options: TrainOptions) -> list[float]:
    """WGAN-GP with a conditional critic (Zhu et al.'s choice) plus the contrastive regulariser."""
    import torch
    from torch import nn

    d = texts.shape[1]
    hidden = max(256, d)
    critic = nn.Sequential(
        nn.Linear(2 * d, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, 1),
    )  # fmt: skip
    g_opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.9))
    c_opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    rng = np.random.default_rng(options.seed)
    losses: list[float] = []
    critic_steps, penalty, regulariser = 3, 10.0, 1.0
    for _ in range(options.epochs):
        for batch in _batches(len(texts), options.batch_size, rng):
            t, i = texts[batch], images[batch]
            for _ in range(critic_steps):
                with torch.no_grad():
                    fake = net(t, torch.randn(len(batch), options.noise_dim))
                mix = torch.rand(len(batch), 1)
                between = (mix * i + (1 - mix) * fake).requires_grad_(True)
                score = critic(torch.cat([between, t], dim=1))
                (grad,) = torch.autograd.grad(score.sum(), between, create_graph=True)
                gp = ((grad.norm(dim=1) - 1) ** 2).mean()
                c_loss = (
                    critic(torch.cat([fake, t], 1)).mean()
                    - critic(torch.cat([i, t], 1)).mean()
                    + penalty * gp
                )
                c_opt.zero_grad()
                c_loss.backward()
                c_opt.step()
            fake = net(t, torch.randn(len(batch), options.noise_dim))
            adversarial = -critic(torch.cat([fake, t], 1)).mean()
            loss = adversarial + regulariser * _contrastive(fake, i, options.temperature)
            g_opt.zero_grad()
            loss.backward()
            g_opt.step()
            losses.append(float(loss.detach()))
    return losses


def _net_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):
        """The generator network of :mod:`indexer.generator`, in torch for training."""

        def __init__(self, dim: int, noise_dim: int, hidden: int) -> None:
            super().__init__()
            self.layer1 = nn.Linear(dim + noise_dim, hidden)
            self.layer2 = nn.Linear(hidden, hidden)
            self.layer3 = nn.Linear(hidden, dim)
            self.skip = nn.Linear(dim, dim, bias=False)
            nn.init.zeros_(self.layer3.weight)  # starts as the ridge map alone
            nn.init.zeros_(self.layer3.bias)

        def forward(self, texts: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            h = F.leaky_relu(self.layer1(torch.cat([texts, noise], dim=1)), 0.2)
            h = F.leaky_relu(self.layer2(h), 0.2)
            return F.normalize(self.skip(texts) + self.layer3(h), dim=1)

        def arrays(self) -> dict[str, np.ndarray]:
            def array(tensor: torch.Tensor) -> np.ndarray:
                return tensor.detach().numpy().astype(np.float32).copy()

            return {
                "w1": array(self.layer1.weight.T),
                "b1": array(self.layer1.bias),
                "w2": array(self.layer2.weight.T),
                "b2": array(self.layer2.bias),
                "w3": array(self.layer3.weight.T),
                "b3": array(self.layer3.bias),
                "skip": array(self.skip.weight.T),
            }

    return Net


def _Net(dim: int, noise_dim: int, hidden: int) -> Any:
    return _net_class()(dim, noise_dim, hidden)


@dataclass
class GeneratorReport:
    """What training the collection's generator did (``anyshot generator train --json``)."""

    pairs: int
    images: int
    seconds: float
    kind: str
    epochs: int
    loss: float | None
    sources: dict[str, int]
    skipped: int
    model: str
    file: str

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return dict(self.__dict__)


def train_store_generator(
    store: VectorStore,
    embed_texts: TextEmbedder,
    model: ModelIdentity,
    *,
    captions_file: str | Path | None = None,
    options: TrainOptions | None = None,
) -> GeneratorReport:
    """Train a generator on the collection's captioned images and keep it with the collection.

    Args:
        store: An open, writable store with a collection.
        embed_texts: The collection's model's text embedder.
        model: That model's identity (checked against the collection's).
        captions_file: A CSV/TSV/Parquet of (image, caption) pairs, beside the other sources.
        options: How to train.

    Raises:
        ModelMismatchError: The collection was built by another model.
        QueryError: Too few captioned images.
        ConfigError: The captions file cannot be read.
    """
    from indexer.errors import ModelMismatchError

    started = time.perf_counter()
    stored = store.require_model()
    if not stored.is_compatible(model):
        raise ModelMismatchError(stored.label, model.label)
    found = gather_captions(store, captions_file)
    if len(found.ids) < MIN_PAIRS:
        raise QueryError(
            f"only {len(found.ids)} captioned images: the generator needs at least {MIN_PAIRS} "
            f"(captions from --captions, labels.jsonl, .txt sidecars or XMP/IPTC descriptions)"
        )
    unique_ids = list(dict.fromkeys(found.ids))
    vectors = {p.id: p.vector for p in store.retrieve(unique_ids, with_vectors=True)}
    keep = [i for i, point in enumerate(found.ids) if vectors.get(point) is not None]
    images = np.stack([vectors[found.ids[i]] for i in keep]).astype(np.float32)
    texts = embed_descriptions(embed_texts, [found.captions[i] for i in keep])
    generator = train_generator(texts, unit_rows(images), stored, options)
    save_generator(store, generator)
    return GeneratorReport(
        pairs=len(keep),
        images=len(set(unique_ids)),
        seconds=round(time.perf_counter() - started, 2),
        kind=generator.kind,
        epochs=int(generator.info.get("epochs", 0)),
        loss=generator.info.get("loss"),
        sources=found.sources,
        skipped=len(found.skipped),
        model=stored.label,
        file=_document_place(store),
    )


def _document_place(store: VectorStore) -> str:
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        return str(root / "documents" / "generator.json")
    return f"{store.location} (collection document 'generator')"
