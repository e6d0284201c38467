"""Find a model's weights: shipped with anyshot, a local file or folder, cached, or downloadable.

open_clip downloads pretrained weights on first use. With no network its download retries for
most of a minute; this module answers at once instead: cached weights are loaded straight from
the cache, and missing weights with an unreachable host raise :class:`ModelUnavailableError`
that says what to download and how to point anyshot at it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from indexer.errors import ModelError, ModelUnavailableError

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
SHIPPED_MODELS_DIR = Path(str(files("indexer.shapes")))  # the package, not its generator
SHIPPED_MODELS = ("anyshot-tiny",)
WEIGHT_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
DEFAULT_PRETRAINED_TAGS = {
    "ViT-B-32": "laion2b_s34b_b79k",
    "ViT-B-16": "laion2b_s34b_b88k",
    "ViT-L-14": "laion2b_s32b_b82k",
}


@dataclass(frozen=True)
class ModelSource:
    """Everything open_clip needs to build a model, resolved from a user's name and tag.

    Attributes:
        name: The name as the user gives it (``anyshot-tiny``, ``ViT-B-32``, ``local-dir:...``).
        pretrained: The pretrained tag or checkpoint file the user gave, if any.
        open_clip_name: The model name passed to open_clip (may carry a ``local-dir:`` schema).
        open_clip_pretrained: A checkpoint file or tag for open_clip, or None.
        preprocess: Preprocessing overrides (mean, std, interpolation, resize mode).
        weights_file: The local weights file, when known (used for the fingerprint).
    """

    name: str
    pretrained: str | None
    open_clip_name: str
    open_clip_pretrained: str | None
    preprocess: dict[str, Any] = field(default_factory=dict)
    weights_file: Path | None = None

    @property
    def tag(self) -> str | None:
        """A short, location-independent label of the weights."""
        if self.pretrained and looks_like_path(self.pretrained):
            return Path(self.pretrained).name
        return self.pretrained

    def fingerprint(self) -> str | None:
        """A cheap content fingerprint of the local weights file (size + head + tail hash)."""
        if self.weights_file is None:
            return None
        return fingerprint_file(self.weights_file)


def fingerprint_file(path: Path, *, chunk: int = 1 << 16) -> str:
    """Hash a file's size, first and last 64 KiB: stable across copies, fast for GB files."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(chunk))
        if size > chunk:
            fh.seek(max(chunk, size - chunk))
            digest.update(fh.read(chunk))
    return digest.hexdigest()[:16]


def looks_like_path(value: str) -> bool:
    """True when a ``pretrained`` value names a file rather than a tag."""
    return value.endswith(WEIGHT_FILE_SUFFIXES) or os.sep in value or value.startswith(".")


def find_weights_in_dir(folder: Path) -> Path | None:
    """The weights file of an open_clip model folder, or None."""
    for name in (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "open_clip_model.bin",
        "model.safetensors",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def _local_dir_source(name: str, folder: Path) -> ModelSource:
    if not (folder / "open_clip_config.json").is_file():
        raise ModelError(f"{folder}: no open_clip_config.json (expected an open_clip local-dir)")
    try:
        json.loads((folder / "open_clip_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder / 'open_clip_config.json'}: unreadable config: {exc}") from exc
    weights = find_weights_in_dir(folder)
    if weights is None:
        raise ModelError(f"{folder}: no weights file (open_clip_model.safetensors)")
    return ModelSource(
        name=name,
        pretrained=None,
        open_clip_name=f"{LOCAL_DIR_PREFIX}{folder}",
        open_clip_pretrained=None,
        weights_file=weights,
    )


def resolve_model(
    name: str,
    pretrained: str | None = None,
    *,
    cache_dir: Path | None = None,
    timeout: float = 10.0,
) -> ModelSource:
    """Turn a model name and pretrained tag into something open_clip can load offline or fetch.

    Args:
        name: ``anyshot-tiny``, an open_clip architecture, ``local-dir:FOLDER`` or ``hf-hub:REPO``.
        pretrained: A pretrained tag, a checkpoint file, or None for the architecture's default.
        cache_dir: open_clip's download cache, if not its default.
        timeout: Seconds to wait for the weights host before giving up.

    Returns:
        The resolved :class:`ModelSource`.

    Raises:
        ModelError: The name or tag is unknown, or a local file is missing.
        ModelUnavailableError: The weights are not cached and their host cannot be reached.
    """
    import open_clip

    if name in SHIPPED_MODELS:
        return _local_dir_source(name, SHIPPED_MODELS_DIR / name)
    if name.startswith(LOCAL_DIR_PREFIX):
        folder = Path(name[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve()
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such folder (from --model {name})")
        return _local_dir_source(name, folder)
    if name.startswith(HF_HUB_PREFIX):
        return _hf_hub_source(name, cache_dir, timeout)

    arch = name.replace("/", "-")
    if arch not in open_clip.list_models():
        raise ModelError(
            f"unknown model {name!r}: use anyshot-tiny, local-dir:FOLDER, hf-hub:REPO or an "
            f"open_clip architecture such as ViT-B-32 (see open_clip.list_models())"
        )
    if pretrained is None:
        pretrained = DEFAULT_PRETRAINED_TAGS.get(arch) or next(
            iter(open_clip.list_pretrained_tags_by_model(arch)), None
        )
        if pretrained is None:
            raise ModelError(f"{name} has no pretrained weights: pass --pretrained FILE")

    if looks_like_path(pretrained) or Path(pretrained).is_file():
        weights = Path(pretrained).expanduser().resolve()
        if not weights.is_file():
            hint = (
                "; a collection built from a local checkpoint records only its file name: "
                "pass --pretrained with the file's full path"
                if os.sep not in pretrained
                else ""
            )
            raise ModelError(f"{weights}: no such checkpoint file (from --pretrained){hint}")
        return ModelSource(
            name=name,
            pretrained=str(weights),
            open_clip_name=arch,
            open_clip_pretrained=str(weights),
            weights_file=weights,
        )

    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ModelError(f"unknown pretrained tag {pretrained!r} for {arch} (known: {tags})")
    preprocess = {
        key: cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in cfg
    }
    cached = _cached_weights(cfg, cache_dir)
    if cached is not None:
        return ModelSource(
            name=name,
            pretrained=pretrained,
            open_clip_name=arch,
            open_clip_pretrained=str(cached),
            preprocess=preprocess,
            weights_file=cached,
        )
    host = "huggingface.co" if cfg.get("hf_hub") else urlparse(cfg.get("url", "")).hostname
    _require_reachable(
        host or "huggingface.co", f"{arch}/{pretrained}", _tag_advice(arch, cfg, cache_dir), timeout
    )
    return ModelSource(
        name=name,
        pretrained=pretrained,
        open_clip_name=arch,
        open_clip_pretrained=pretrained,
        preprocess=preprocess,
    )


def hub_weights_file(cfg: dict[str, Any]) -> tuple[str, str]:
    """The Hugging Face repo and weights file open_clip fetches for a pretrained config.

    open_clip reads ``hf_hub`` as ``org/repo/`` (then ``open_clip_pytorch_model.bin``) or
    ``org/repo/FILE``, and asks for the ``.safetensors`` twin of a ``.bin`` first.

    Returns:
        ``(repo_id, file name)``, the file being the one open_clip tries first.
    """
    hub = cfg.get("hf_hub", "")
    repo_id = "/".join(hub.split("/")[:2])
    filename = hub[len(repo_id) + 1 :] or "open_clip_pytorch_model.bin"
    if filename == "open_clip_pytorch_model.bin":
        return repo_id, "open_clip_model.safetensors"
    if filename.endswith((".bin", ".pth")):
        return repo_id, filename[:-4] + ".safetensors"
    return repo_id, filename


def hub_cache_dir(cache_dir: Path | None) -> Path:
    """The Hugging Face cache anyshot and open_clip look in (``HF_HUB_CACHE``, ``HF_HOME``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_weights(cfg: dict[str, Any], cache_dir: Path | None) -> Path | None:
    """Return the cached weights file of a pretrained config, without touching the network."""
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
            return None
        repo_id = "/".join(hub.split("/")[:2])
        filename = hub[len(repo_id) + 1 :] or "open_clip_pytorch_model.bin"
        candidates = dict.fromkeys([hub_weights_file(cfg)[1], filename])
        for candidate in candidates:
            found = try_to_load_from_cache(
                repo_id, candidate, cache_dir=str(cache_dir) if cache_dir else None
            )
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None
    url = cfg.get("url", "")
    if url:
        target = _url_cache_dir(cache_dir) / os.path.basename(urlparse(url).path)
        return target if target.is_file() else None
    return None


def _url_cache_dir(cache_dir: Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()


def _hf_hub_source(name: str, cache_dir: Path | None, timeout: float) -> ModelSource:
    """An ``hf-hub:REPO`` model: from the Hugging Face cache when both of its files are there
    (loaded as an open_clip local dir, with no network), else downloaded by open_clip."""
    repo_id = name[len(HF_HUB_PREFIX) :].strip("/")
    snapshot = _cached_hub_snapshot(repo_id, cache_dir)
    if snapshot is not None:
        weights = find_weights_in_dir(snapshot)
        return ModelSource(
            name=name,
            pretrained=None,
            open_clip_name=f"{LOCAL_DIR_PREFIX}{snapshot}",
            open_clip_pretrained=None,
            weights_file=weights,
        )
    cache = hub_cache_dir(cache_dir)
    advice = (
        f"on a machine with network, run `hf download {repo_id} open_clip_config.json "
        f"open_clip_model.safetensors --local-dir FOLDER`, copy FOLDER here and pass "
        f"--model local-dir:FOLDER (the same two files from "
        f"https://huggingface.co/{repo_id} work too); or fill the Hugging Face cache with "
        f"`hf download ... --cache-dir {cache}` (anyshot then finds {name} in it)"
    )
    _require_reachable("huggingface.co", name, advice, timeout)
    return ModelSource(name=name, pretrained=None, open_clip_name=name, open_clip_pretrained=None)


def _cached_hub_snapshot(repo_id: str, cache_dir: Path | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return None
    folder = str(cache_dir) if cache_dir else None
    config = try_to_load_from_cache(repo_id, "open_clip_config.json", cache_dir=folder)
    if not isinstance(config, str) or not os.path.isfile(config):
        return None
    snapshot = Path(config).parent
    return snapshot if find_weights_in_dir(snapshot) is not None else None


def _tag_advice(arch: str, cfg: dict[str, Any], cache_dir: Path | None) -> str:
    """What to download for an architecture's pretrained tag, and where it must go."""
    if cfg.get("hf_hub"):
        repo_id, filename = hub_weights_file(cfg)
        cache = hub_cache_dir(cache_dir)
        cached_as = "models--" + repo_id.replace("/", "--")
        return (
            f"download {filename} from the Hugging Face repo {repo_id} "
            f"(https://huggingface.co/{repo_id}/resolve/main/{filename}, or "
            f"`hf download {repo_id} {filename} --local-dir FOLDER`) on a machine with "
            f"network, copy it here and pass --model {arch} --pretrained FOLDER/{filename}; "
            f"or fill the Hugging Face cache: `hf download {repo_id} {filename} --cache-dir "
            f"{cache}` (or copy a cache's {cached_as} folder into {cache})"
        )
    url = cfg.get("url", "")
    target = _url_cache_dir(cache_dir) / os.path.basename(urlparse(url).path)
    return (
        f"download {url} on a machine with network and put it at {target}, or pass "
        f"--model {arch} --pretrained /path/to/{target.name}"
    )


def _require_reachable(host: str, what: str, advice: str, timeout: float) -> None:
    """Raise ModelUnavailableError at once when weights cannot be downloaded."""
    advice = f"{advice}; --model anyshot-tiny works offline (it knows only coloured shapes)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        raise ModelUnavailableError(f"{what} is not cached and HF_HUB_OFFLINE is set: {advice}")
    # getaddrinfo ignores socket timeouts, so the probe runs in a daemon thread with a deadline.
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=probe, daemon=True, name="anyshot-weights-probe")
    thread.start()
    thread.join(timeout)
    if not outcome or outcome[0] is not None:
        reason = str(outcome[0]) if outcome else f"no answer in {timeout:g} s"
        raise ModelUnavailableError(
            f"{what} is not cached and {host} cannot be reached ({reason}): {advice}"
        )
