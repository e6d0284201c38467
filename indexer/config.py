"""Settings: one object, read from ``ANYSHOT_*`` environment variables, built in entry points.

Nested sections use ``__`` in variable names: ``ANYSHOT_MODEL__NAME=anyshot-tiny``,
``ANYSHOT_STORE__LOCATION=:memory:``, ``ANYSHOT_INDEX__BATCH_SIZE=32``.

Library code never builds :class:`Settings` itself; entry points (CLI group, API factory, each
flow) build one and pass its sections down as values.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.errors import ConfigError

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"

Device = str
Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
TextRuntime = Literal["auto", "torch", "onnx"]
ImageRuntime = Literal["auto", "torch", "onnx"]

Runner = Literal["auto", "inline", "prefect", "dask"]
"""How an index run runs, everywhere (``anyshot index --runner``, ``ImageSearch.index``, the
flows): ``inline`` in this process without orchestration; ``prefect`` as the Prefect flow
(decoding in worker processes, embedding in the flow's process); ``dask`` as the flow with its
batches on a Dask cluster (``index.dask_address``, else a local one); ``auto``: ``prefect``
when ``PREFECT_API_URL`` is set, else ``inline``."""
RUNNERS: tuple[Runner, ...] = get_args(Runner)
FLOW_RUNNERS: tuple[Runner, ...] = ("prefect", "dask")
"""The runners that run the Prefect flow."""


def resolve_runner(runner: str) -> Runner:
    """The runner ``runner`` stands for: ``auto`` becomes ``prefect`` or ``inline``.

    Raises:
        ConfigError: Not one of :data:`RUNNERS`.
    """
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}: use {', '.join(RUNNERS)}")
    if runner == "auto":
        return "prefect" if os.environ.get("PREFECT_API_URL") else "inline"
    return runner  # type: ignore[return-value]


def default_data_dir() -> Path:
    """Where anyshot keeps its data unless told otherwise (``$XDG_DATA_HOME/anyshot``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "anyshot"


def default_cache_dir() -> Path:
    """Where anyshot caches what it measured or derived (``$XDG_CACHE_HOME/anyshot``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anyshot"


class ModelSettings(BaseModel):
    """Which open_clip model embeds images and texts, and how it runs."""

    name: str = Field(
        DEFAULT_MODEL,
        description=(
            "open_clip architecture (e.g. 'ViT-B-32'), a model shipped with anyshot "
            "('anyshot-tiny'), 'local-dir:FOLDER' (open_clip_config.json + weights) or "
            "'hf-hub:ORG/REPO'."
        ),
        min_length=1,
    )
    pretrained: str | None = Field(
        None,
        description=(
            "open_clip pretrained tag (e.g. 'laion2b_s34b_b79k') or a local checkpoint file "
            "(.safetensors, .pt, .bin). Empty: the default tag of the architecture."
        ),
    )
    device: Device = Field(
        "auto", description="'auto' (CUDA if present, else CPU), 'cpu', 'cuda' or 'cuda:N'."
    )
    precision: Precision = Field(
        "auto",
        description=(
            "'auto' picks bf16 on CPUs with AMX/avx512_bf16, int8 (dynamic quantization of every "
            "linear layer) on other x86 CPUs with AVX2 or VNNI, fp32 elsewhere, and fp16 or bf16 "
            "on CUDA. 'int8' runs on the CPU only."
        ),
    )
    batch_size: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        "auto",
        description=(
            "Images per forward pass; 'auto': the size measured fastest per image on this "
            "machine, model and precision (measured once, cached), 256 on CUDA."
        ),
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="torch CPU threads; empty: torch's default."
    )
    cache_dir: Path | None = Field(
        None, description="Where downloaded weights are cached; empty: open_clip's default."
    )
    download_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds to wait for the weights host to answer."
    )
    text_int8: bool | None = Field(
        None,
        description=(
            "Run the text tower's linear layers in int8 on the CPU (text queries ~3x faster, "
            "text vectors within cosine 0.998 of fp32). Empty: int8 exactly when the model's "
            "CPU precision is int8."
        ),
    )
    text_runtime: TextRuntime = Field(
        "auto",
        description=(
            "What runs text queries: 'torch' (the open_clip model), 'onnx' (the text tower "
            "exported once per model and weights, cached, run by ONNX Runtime without importing "
            "torch; exported first if missing) or 'auto' (ONNX when an export for the model is "
            "cached and the model runs on the CPU, else torch)."
        ),
    )
    image_runtime: ImageRuntime = Field(
        "auto",
        description=(
            "What embeds images in index runs: 'torch' (the open_clip model), 'onnx' (the image "
            "tower exported once per model, weights and precision, cached, run by ONNX Runtime "
            "without importing torch; exported first if missing) or 'auto' (ONNX when the model "
            "runs on the CPU in int8 or fp32 and an export is cached; an index run on torch "
            "exports it for the next one). bf16 and fp16 always run on torch."
        ),
    )


Quantization = Literal["none", "scalar", "binary"]


class ScaleSettings(BaseModel):
    """How a collection is laid out for size and speed (``ANYSHOT_STORE__SCALE__*``).

    Layout fields apply when a collection is created (changing them later needs a new
    collection: ``anyshot export`` then ``anyshot load``); ``hnsw_ef`` and ``quantization_*``
    search fields apply to every query. Which backend honours which field is listed in
    deploy/README.md: sharding and replication exist only on a Qdrant server or cluster.
    """

    shard_number: int | None = Field(
        None,
        ge=1,
        le=1024,
        description=(
            "Shards of a new collection on a Qdrant server; empty: the server's default (1 on "
            "one node, one per node in a cluster). Qdrant Edge keeps one shard."
        ),
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=16,
        description=(
            "Copies of each shard on a Qdrant cluster (2 survives the loss of a node); empty: "
            "the server's default (1)."
        ),
    )
    write_consistency_factor: int | None = Field(
        None,
        ge=1,
        le=16,
        description=(
            "Replicas that must confirm a write before it succeeds (at most "
            "replication_factor); empty: the server's default (1)."
        ),
    )
    on_disk_vectors: bool = Field(
        False,
        description=(
            "Keep the full-precision vectors on disk (memory-mapped) instead of in RAM; pair "
            "with quantization so that searches read the compact copy in RAM."
        ),
    )
    on_disk_payload: bool = Field(
        True, description="Keep payloads on disk (memory-mapped); indexed keys stay fast."
    )
    quantization: Quantization = Field(
        "none",
        description=(
            "Compact copy of the vectors used to search: 'scalar' (int8, 4x smaller), "
            "'binary' (1 bit per dimension, 32x smaller) or 'none'."
        ),
    )
    quantization_always_ram: bool = Field(
        True, description="Keep the quantized vectors in RAM even when vectors are on disk."
    )
    quantization_rescore: bool = Field(
        True,
        description="Re-rank the candidates found with quantized vectors by the full vectors.",
    )
    quantization_oversampling: float | None = Field(
        2.0,
        ge=1.0,
        le=100.0,
        description=(
            "Fetch limit x this many candidates with quantized vectors before rescoring (raise "
            "it for binary: 8-16); empty: the backend's default (1). No effect on collections "
            "without quantization."
        ),
    )
    hnsw_m: int = Field(
        16, ge=4, le=128, description="HNSW edges per node (more: better recall, more RAM)."
    )
    hnsw_ef_construct: int = Field(
        100, ge=4, le=4096, description="HNSW candidates while building the index."
    )
    hnsw_ef: int | None = Field(
        None,
        ge=1,
        le=65_536,
        description="HNSW candidates per search (more: better recall, slower); empty: default.",
    )
    indexing_threshold: int | None = Field(
        None,
        ge=0,
        le=1_000_000_000,
        description=(
            "Kilobytes of vectors in a segment above which it gets an HNSW index (and its "
            "quantized copy); smaller segments are searched exactly. 0: never index (bulk "
            "loads); empty: the backend's default."
        ),
    )
    payload_indexes: bool = Field(
        True,
        description=(
            "Index the filterable payload keys (uri, format, tags, mtime, size) of a new "
            "collection."
        ),
    )

    @model_validator(mode="after")
    def _writes_need_replicas(self) -> ScaleSettings:
        if self.write_consistency_factor is not None and self.write_consistency_factor > (
            self.replication_factor or 1
        ):
            raise ValueError(
                f"write_consistency_factor {self.write_consistency_factor} exceeds "
                f"replication_factor {self.replication_factor or 1}"
            )
        return self


class StoreSettings(BaseModel):
    """Where vectors live."""

    location: str = Field(
        default_factory=lambda: str(default_data_dir() / "store"),
        description=(
            "A folder (embedded Qdrant Edge), ':memory:' (qdrant-client in-memory) or an "
            "http(s):// URL of a Qdrant server."
        ),
        min_length=1,
    )
    collection: str = Field(
        "images",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Collection name on a Qdrant server.",
    )
    api_key: SecretStr | None = Field(None, description="API key of a Qdrant server.")
    timeout: float = Field(30.0, gt=0, le=3600, description="Qdrant server request timeout (s).")
    scale: ScaleSettings = Field(
        default_factory=ScaleSettings,
        description="Collection layout for size and speed: shards, replicas, quantization, HNSW.",
    )
    reserve_free_mb: int = Field(
        192,
        ge=0,
        le=1_000_000,
        description=(
            "Disk space (MiB) an embedded store keeps free: opening, creating and each batch "
            "written stop with one clear line when less would remain (Qdrant Edge's "
            "memory-mapped writes crash the process on a full disk; reopening needs ~64 MiB)."
        ),
    )


class IndexSettings(BaseModel):
    """How images are found and decoded."""

    include_hidden: bool = Field(False, description="Index hidden files and folders too.")
    follow_symlinks: bool = Field(True, description="Follow symbolic links while walking.")
    max_image_pixels: int = Field(
        100_000_000,
        ge=1_000,
        description="Images with more pixels are refused (decompression-bomb guard).",
    )
    batch_size: int = Field(
        128, ge=1, le=65_536, description="Images per batch (decoded, embedded and stored)."
    )
    workers: int | None = Field(
        None, ge=0, le=256, description="Decoding processes; empty: one per spare core."
    )
    dask_address: str | None = Field(
        None,
        description=(
            "Scheduler of a Dask cluster (tcp://HOST:8786) for the dask runner; empty: a local "
            "cluster."
        ),
    )
    dask_workers: int = Field(
        2,
        ge=1,
        le=256,
        description="Worker processes of the local Dask cluster (dask runner, no dask_address).",
    )
    state_dir: Path | None = Field(
        None,
        description=(
            "Where index runs keep their state (the report of skipped files); empty: "
            "'state/' inside a folder store, else under the data folder."
        ),
    )
    parquet_dir: Path | None = Field(
        None,
        description=(
            "Where Parquet shards of the embeddings go; empty: 'parquet/' inside a folder "
            "store, none for ':memory:' or a server."
        ),
    )
    prune: bool = Field(
        False,
        description=(
            "Also remove the images under folders that could not be read (unmounted, "
            "unreadable), and let a run remove every image of a source that is now empty. "
            "Off: only files that are positively gone are removed."
        ),
    )
    decode_timeout: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="Seconds one file may take to read and decode before it is skipped.",
    )
    download_deadline: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="Seconds one image URL may take to download in all (slow servers included).",
    )
    ocr: bool = Field(
        False,
        description=(
            "Read the text inside images (OCR) into the payload key 'text' for searches by "
            "--ocr; a run with it on also reads the stored images that lack it, without "
            "re-embedding them."
        ),
    )
    ocr_gate: bool = Field(
        True,
        description=(
            "Read only images in which a quick look (the text detector on a small copy) finds "
            "a text region; off: read every image in full."
        ),
    )
    ocr_seconds: float = Field(
        30.0,
        gt=0,
        le=3_600,
        description="Seconds of recognition per image at most; the text read by then is kept.",
    )
    video_min_gap: float = Field(
        1.0,
        ge=0.04,
        le=3_600,
        description="Seconds between two kept frames of a video at least (at most one per gap).",
    )
    video_max_gap: float = Field(
        10.0,
        ge=0.1,
        le=86_400,
        description="Seconds between two kept frames of a video at most, however still it is.",
    )
    video_scene_change: float = Field(
        0.03,
        gt=0,
        le=1,
        description=(
            "Keep a frame when this fraction of a 32x18 thumbnail's cells changed since the "
            "last kept frame (the cheap scene-change test)."
        ),
    )
    video_keyframes_after: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description=(
            "Videos longer than this (seconds) decode only their keyframes, plus frames sought "
            "to fill gaps longer than video_max_gap: long videos are never decoded in full."
        ),
    )
    video_max_frames: int = Field(
        10_000, ge=1, le=1_000_000, description="Frames kept per video at most."
    )
    video_max_pixels: int = Field(
        40_000_000,
        ge=1_000,
        description="Videos whose header claims more pixels per frame are refused (8K is 33M).",
    )
    video_timeout: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="Seconds one video may take to decode; the frames kept by then are indexed.",
    )
    video_part_seconds: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description=(
            "With the Dask runner, videos longer than this (seconds) are read in stretches of "
            "about this length on several workers at once; 0: one worker per video."
        ),
    )


class ApiSettings(BaseModel):
    """The HTTP API (``anyshot serve``): access, limits and caches."""

    api_key: SecretStr | None = Field(
        None,
        description=(
            "When set, every endpoint but /healthz and the built-in page needs this key in the "
            "X-API-Key header (or an api_key query parameter, for <img> tags)."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Origins allowed to call the API from a browser ('*' for any, e.g. for clip-front "
            "served elsewhere); empty: same origin only."
        ),
    )
    max_k: int = Field(1000, ge=1, le=100_000, description="Most results one search returns.")
    max_offset: int = Field(
        100_000, ge=0, le=10_000_000, description="Deepest result a search may page to."
    )
    max_upload_bytes: int = Field(
        20_000_000,
        ge=1_000,
        le=1_000_000_000,
        description="Largest request body (uploaded or base64 image included), in bytes.",
    )
    max_thumbnail_size: int = Field(
        1024, ge=16, le=4096, description="Largest thumbnail edge a client may ask for (px)."
    )
    thumbnail_dir: Path | None = Field(
        None,
        description=(
            "Where thumbnails are cached; empty: 'thumbs/' inside a folder store, else under "
            "the data folder."
        ),
    )
    fetch_image_urls: bool = Field(
        False,
        description=(
            "Let search requests name an example image by http(s) URL, which the server then "
            "downloads (off by default: it lets clients make the server fetch any URL)."
        ),
    )
    index_roots: list[Path] = Field(
        default_factory=list,
        description=(
            "Folders that POST /index may read (and below, links resolved, list files "
            "included); empty: any source the server can read (keep the API on 127.0.0.1 or "
            "set api_key)."
        ),
    )
    fetch_allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names, addresses or networks (CIDR) the server may fetch from although they "
            "are not public (loopback, private, link-local); others of that kind are refused "
            "whenever the server fetches a URL a client named."
        ),
    )
    download_deadline: float = Field(
        20.0, gt=0, le=3600, description="Seconds one download by the server may take in all."
    )
    max_concurrent_downloads: int = Field(
        4, ge=1, le=256, description="Downloads the server runs at once; more are refused (429)."
    )
    max_query_pixels: int = Field(
        40_000_000,
        ge=10_000,
        le=1_000_000_000,
        description=(
            "Most pixels an example image in a request may decode to (JPEGs are decoded "
            "reduced first); larger ones are refused."
        ),
    )
    max_concurrent_decodes: int = Field(
        2,
        ge=1,
        le=256,
        description="Example images decoded at once; more wait, then are refused (429).",
    )
    max_thumbnails_per_request: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Thumbnails one clip-back request builds; later results come without one.",
    )


SCORE_SCALES = ("text-image", "image-image", "mixed")
"""The scales a query's scores are on (``explain["score_scale"]``)."""


class SearchSettings(BaseModel):
    """How queries are answered: names, query expansion, duplicates, tagging."""

    knowledge_base: Path | None = Field(
        None,
        description=(
            "A file of names with aliases and descriptions (YAML, JSON or CSV) used to resolve "
            "names that are not registered concepts; empty: none."
        ),
    )
    name_templates: bool = Field(
        True,
        description=(
            "Resolve a name that is neither a concept nor in the knowledge base through prompt "
            "templates; false: such a name is an error."
        ),
    )
    name_weight: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description=(
            "Weight of a described name's own prompt templates, in descriptions: 1 counts them "
            "as one more description, 0 leaves the name out (for names the model cannot know)."
        ),
    )
    online_descriptions: bool = Field(
        False,
        description=(
            "Look names up online (a Wikipedia summary) when the knowledge base lacks them; "
            "answers are cached in online_cache_dir."
        ),
    )
    online_url: str = Field(
        "https://en.wikipedia.org/api/rest_v1/page/summary/{}",
        description="URL template of the online description source ({} is the name).",
    )
    online_cache_dir: Path | None = Field(
        None, description="Cache of online descriptions; empty: 'descriptions/' in the data folder."
    )
    online_timeout: float = Field(5.0, gt=0, le=120, description="Seconds to wait online.")
    expand: bool = Field(
        False,
        description=(
            "Visual query expansion for text and name queries by default: search, blend the "
            "mean of the top images' embeddings into the query, search again."
        ),
    )
    expand_top: int = Field(
        5, ge=1, le=100, description="How many top images feed visual query expansion."
    )
    expand_weight: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of the top images' mean in the expanded query (0: text only).",
    )
    generate: bool = Field(
        False,
        description=(
            "Search text and name queries by generated visual features by default: the "
            "collection's generator (anyshot generator train) turns each description into "
            "image-like vectors and one multi-vector search fuses their neighbours."
        ),
    )
    generate_vectors: int = Field(
        4, ge=1, le=64, description="Generated vectors per description (the first is noise-free)."
    )
    generate_max_vectors: int = Field(
        32, ge=1, le=256, description="At most this many generated vectors per query."
    )
    generate_fusion: Literal["rrf", "max", "mean"] = Field(
        "max",
        description=(
            "How the ranked lists of the generated vectors are fused: rrf (reciprocal rank), "
            "max (a hit's best cosine) or mean (its mean cosine)."
        ),
    )
    duplicate_threshold: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Image↔image cosine similarity at or above which two images are duplicates.",
    )
    duplicate_neighbours: int = Field(
        10, ge=1, le=1000, description="Neighbours looked up per image to find duplicates."
    )
    text_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="Query text embeddings kept in memory (LRU)."
    )
    no_match_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description=(
            "A query whose confidence is below this has no confident match: explain says "
            "no_match, the CLI and the page say 'no confident match' above the results."
        ),
    )
    min_confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=(
            "Default minimum confidence of a query: below it, no results at all (a request's "
            "min_confidence overrides it); empty: results whatever the confidence."
        ),
    )
    confidence_calibration: dict[str, tuple[float, float]] | None = Field(
        None,
        description=(
            "Per score scale (text-image, image-image, mixed), the best score at which "
            "confidence is 0.5 and the score step that moves it by one logit, as JSON: "
            '{"text-image": [0.26, 0.02]}; scales left out keep the built-in values '
            "(see search.confidence)."
        ),
    )

    @field_validator("confidence_calibration")
    @classmethod
    def _check_calibration(
        cls, value: dict[str, tuple[float, float]] | None
    ) -> dict[str, tuple[float, float]] | None:
        for scale, (centre, step) in (value or {}).items():
            if scale not in SCORE_SCALES:
                raise ValueError(f"unknown scale {scale!r}, not one of {SCORE_SCALES}")
            if not (math.isfinite(centre) and math.isfinite(step) and step > 0):
                raise ValueError(f"{scale}: a finite centre and a step above 0")
        return value


class Settings(BaseSettings):
    """All of anyshot's settings."""

    model_config = SettingsConfigDict(
        env_prefix="ANYSHOT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    model: ModelSettings = Field(default_factory=ModelSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)


def build_settings(
    *,
    store: str | None = None,
    model: str | None = None,
    pretrained: str | None = None,
    **index: Any,
) -> Settings:
    """Build settings from ``ANYSHOT_*`` variables, overridden by the values given.

    Entry points (CLI commands, flows) call this with their options; ``None`` means "not
    given", so the environment or the default applies.

    Args:
        store: Store location.
        model: Model name; marks the model as chosen explicitly.
        pretrained: Pretrained tag or checkpoint file.
        **index: Fields of :class:`IndexSettings`.

    Raises:
        ConfigError: A variable or value that the settings do not take (one line).
    """
    try:
        return _build_settings(store, model, pretrained, index)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from exc


def describe_settings_error(exc: ValidationError) -> str:
    """One line on the first bad setting: its variable, what it takes and what it got.

    A field that takes one of several kinds (``batch_size``: a number or ``auto``) fails once
    per kind, under locations tagged with the kind; those are one setting, and what each kind
    wanted is said together.
    """
    errors = exc.errors()

    def field(error: Any) -> tuple[str, ...]:
        return tuple(str(p) for p in error.get("loc", ()) if str(p).isidentifier())

    first = field(errors[0])
    same = [error for error in errors if field(error) == first]
    variable = "ANYSHOT_" + "__".join(first).upper()
    wanted = " or ".join(dict.fromkeys(str(e.get("msg", "invalid value")) for e in same))
    got = errors[0].get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
    others = len({field(error) for error in errors}) - 1
    more = f"; and {others} more" if others else ""
    return f"{variable}: {wanted}{shown}{more}"


def _build_settings(
    store: str | None, model: str | None, pretrained: str | None, index: dict[str, Any]
) -> Settings:
    settings = Settings()
    if store is not None:
        settings.store = settings.store.model_copy(update={"location": store})
    chosen = {k: v for k, v in {"name": model, "pretrained": pretrained}.items() if v is not None}
    if chosen:
        # Rebuilt, not model_copy(update=...), so that the fields count as set explicitly.
        settings.model = ModelSettings(**(settings.model.model_dump(exclude_unset=True) | chosen))
    index_update = {k: v for k, v in index.items() if v is not None}
    if index_update:
        settings.index = IndexSettings(
            **(settings.index.model_dump(exclude_unset=True) | index_update)
        )
    return settings


def model_for_collection(
    chosen: ModelSettings, stored_name: str | None, stored_pretrained: str | None
) -> ModelSettings:
    """The model to load for a collection: the one chosen explicitly, else the collection's.

    Args:
        chosen: Model settings; ``name``/``pretrained`` count as chosen when set explicitly
            (an argument or ``ANYSHOT_MODEL__*``).
        stored_name: The model that built the collection, if it exists.
        stored_pretrained: That model's pretrained tag.
    """
    if {"name", "pretrained"} & chosen.model_fields_set or stored_name is None:
        return chosen
    return chosen.model_copy(update={"name": stored_name, "pretrained": stored_pretrained})
