"""Embed images and texts with an open_clip model into L2-normalised float32 vectors."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize

from indexer.access import AccessPolicy
from indexer.batch_calibration import (
    CALIBRATE_FROM,
    CUDA_BATCH,
    UNCALIBRATED_BATCH,
    calibrated_batch,
    machine_key,
)
from indexer.config import ModelSettings
from indexer.cpu import resolve_cpu_precision, text_tower_int8
from indexer.errors import ModelError, QueryError
from indexer.prepare import PixelPipeline, ResizeCrop
from indexer.schema import ModelIdentity
from indexer.weights import ModelSource, resolve_model

if TYPE_CHECKING:
    from indexer.image_onnx import OnnxImageModel

logger = logging.getLogger(__name__)

_DTYPES = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": torch.float32,  # int8 weights inside quantized layers; fp32 between them
}


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a model runs."""

    device: torch.device
    precision: str

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of weights and inputs."""
        return _DTYPES[self.precision]


def choose_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Pick device and precision.

    ``auto`` precision on a CPU is :func:`indexer.cpu.resolve_cpu_precision`'s: bf16 with
    AMX/avx512_bf16 (several times faster than fp32 there; emulated, hence slower, without
    them), int8 on other x86 CPUs with AVX2/VNNI, fp32 elsewhere; on CUDA bf16 or fp16.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8``.

    Returns:
        The chosen :class:`Runtime`.

    Raises:
        ModelError: CUDA was asked for but is not available, fp16 on CPU or int8 on CUDA.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but CUDA is not available here")
    if precision == "auto":
        if torch_device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = resolve_cpu_precision("auto")
    if precision not in _DTYPES:
        raise ModelError(f"unknown precision {precision!r}: use auto, fp32, bf16, fp16 or int8")
    if precision == "fp16" and torch_device.type == "cpu":
        raise ModelError("fp16 is not supported on CPU: use bf16, int8 or fp32")
    if precision == "int8" and torch_device.type != "cpu":
        raise ModelError("int8 runs on the CPU only: use fp16 or bf16 on CUDA")
    return Runtime(torch_device, precision)


class Embedder:
    """An open_clip model that turns images and texts into comparable unit vectors.

    Use it as::

        embedder = Embedder(ModelSettings(name="anyshot-tiny"))
        vectors = embedder.embed_images([pil_image])      # (1, dim) float32, unit length
        query = embedder.embed_texts(["a red circle"])    # (1, dim)

    Args:
        settings: Which model, where and how to run it.
    """

    def __init__(self, settings: ModelSettings) -> None:
        import open_clip

        self.settings = settings
        self.source: ModelSource = resolve_model(
            settings.name,
            settings.pretrained or None,
            cache_dir=settings.cache_dir,
            timeout=settings.download_timeout,
        )
        self.runtime = choose_runtime(settings.device, settings.precision)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        overrides = {f"image_{key}": value for key, value in self.source.preprocess.items()}
        try:
            # Weights from a file replace every parameter (strict load): drawing random ones
            # first would cost ~0.7 s of each process's start-up for ViT-B-32.
            with weights_load_instead_of_init(self.source.weights_file is not None):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.source.open_clip_name,
                    pretrained=self.source.open_clip_pretrained,
                    cache_dir=str(settings.cache_dir) if settings.cache_dir else None,
                    **overrides,
                )
            self._tokenizer = open_clip.get_tokenizer(self.source.open_clip_name)
        except Exception as exc:  # open_clip raises RuntimeError, ValueError, OSError, ...
            raise ModelError(describe_load_failure(self.source, exc)) from exc
        model.eval()
        self.model = model.to(device=self.runtime.device, dtype=self.runtime.dtype)
        self.preprocess: Callable[[Image.Image], torch.Tensor] = preprocess
        self.image_int8 = self.runtime.precision == "int8" and self._quantize_image_tower()
        trimmed = trimmed_text_encoder(self.model)
        # The text tower is quantized on its first text (an index run never needs it).
        self.text_int8 = self._text_tower_runs_int8(trimmed is not None)
        self._text_quantized = False
        self.text_tower_lock = threading.Lock()
        """Held while the text tower is quantized, and by whoever must see it unchanged."""
        self._encode_text = trimmed or self.model.encode_text
        self._image_batch: int | None = None
        self._calibration_read = False
        self.image_size = _image_size(model)
        self.dim = _embed_dim(model)
        self.identity = ModelIdentity(
            name=self.source.name,
            pretrained=self.source.tag,
            dim=self.dim,
            fingerprint=self.source.fingerprint(),
        )
        logger.info(
            "loaded %s on %s (images %s, texts %s), dim %d",
            self.identity.label,
            self.runtime.device,
            self.image_precision,
            self.text_precision,
            self.dim,
        )

    def _quantize_image_tower(self) -> bool:
        from indexer.int8 import quantize_image_tower

        if quantize_image_tower(self.model):
            return True
        logger.warning("%s has no transformer image tower to run in int8", self.source.name)
        return False

    def _text_tower_runs_int8(self, trimmable: bool) -> bool:
        wanted = text_tower_int8(self.settings)
        if not wanted:
            return False
        if not trimmable or self.runtime.precision not in {"fp32", "int8"}:
            if self.settings.text_int8:  # asked for by name: say why it is not applied
                logger.warning(
                    "text_int8 needs an open_clip CLIP on the CPU in fp32 or int8; not applied"
                )
            return False
        return True

    def ready_text_tower(self) -> None:
        """Quantize the text tower now if it runs in int8 (else done on the first text)."""
        if not self.text_int8 or self._text_quantized:
            return
        with self.text_tower_lock:
            if not self._text_quantized:
                from indexer.int8 import quantize_text_tower

                quantize_text_tower(self.model)
                self._text_quantized = True

    @property
    def image_precision(self) -> str:
        """What the image tower runs in (and so the stored vectors were made in)."""
        if self.runtime.precision == "int8" and not self.image_int8:
            return "fp32"
        return self.runtime.precision

    @property
    def text_precision(self) -> str:
        """What the text tower runs in."""
        if self.text_int8:
            return "int8"
        return "fp32" if self.runtime.precision == "int8" else self.runtime.precision

    def pixel_pipeline(
        self,
        *,
        max_pixels: int,
        access: AccessPolicy | None = None,
        decode_timeout: float | None = None,
    ) -> PixelPipeline:
        """The PIL half of this model's preprocessing, to run in decoding workers.

        Workers resize and crop; :meth:`embed_pixels` scales and normalises. Together they give
        the same tensors as :meth:`preprocess_images`.

        Args:
            max_pixels: Refuse images with more pixels.
            access: What the workers may read; None reads anything.
            decode_timeout: Seconds one file may take to read and decode; None: no limit.
        """
        steps = list(getattr(self.preprocess, "transforms", []))
        cut = next((i for i, step in enumerate(steps) if "ToTensor" in type(step).__name__), None)
        if cut is None or not isinstance(steps[-1], Normalize):
            raise ModelError(f"unexpected preprocessing for {self.source.name}: {self.preprocess}")
        cfg = getattr(self.model.visual, "preprocess_cfg", {}) or {}
        mode = cfg.get("resize_mode", "shortest")
        interpolation = cfg.get("interpolation", "bicubic")
        # Our own PIL steps keep torch out of the workers (seconds of start-up each); other
        # modes fall back to the model's torchvision transforms.
        pil_steps: Callable[[Image.Image], Image.Image] = (
            ResizeCrop(self.image_size, mode, interpolation)
            if ResizeCrop.supports(mode, interpolation)
            else Compose(steps[:cut])
        )
        return PixelPipeline(
            pil_steps=pil_steps,
            target_size=self.image_size,
            max_pixels=max_pixels,
            access=access if access is not None else AccessPolicy(),
            decode_timeout=decode_timeout,
        )

    def embed_pixels(self, pixels: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Embed uint8 images (N, S, S, 3) made by :meth:`pixel_pipeline`.

        Args:
            pixels: The images.
            batch_size: Images per forward pass; None: :meth:`image_batch_size`.

        Returns:
            A float32 array of shape (N, dim) with unit rows.
        """
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        normalize = self.preprocess.transforms[-1]
        mean = torch.tensor(normalize.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(normalize.std, dtype=torch.float32).view(1, 3, 1, 1)
        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        size = batch_size or self.image_batch_size(len(pixels))
        return self._run((batch.float().div_(255.0) - mean) / std, self.model.encode_image, size)

    def preprocess_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize, crop and normalise images into a float32 batch (N, 3, S, S)."""
        return torch.stack([self.preprocess(image) for image in images])

    def embed_images(self, images: Sequence[Image.Image] | torch.Tensor) -> np.ndarray:
        """Embed images (PIL images, or a batch already made by :meth:`preprocess_images`).

        Returns:
            A float32 array of shape (N, dim) with unit rows.
        """
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = images if isinstance(images, torch.Tensor) else self.preprocess_images(images)
        return self._run(pixels, self.model.encode_image, self.image_batch_size(len(pixels)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Returns:
            A float32 array of shape (N, dim) with unit rows.

        Raises:
            QueryError: A text is empty or only whitespace.
        """
        if any(not text.strip() for text in texts):
            raise QueryError("empty text query")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.ready_text_tower()
        size = self.settings.batch_size if isinstance(self.settings.batch_size, int) else 64
        return self._run(self._tokenizer(list(texts)), self._encode_text, size)

    def image_batch_size(self, count: int) -> int:
        """The forward batch for ``count`` images: the setting, else the calibrated size.

        With ``batch_size="auto"`` on a CPU, the size is read from the calibration cache, or
        measured now when ``count`` is large enough to be an index run's batch (a query image
        never pays for a measurement).
        """
        if isinstance(self.settings.batch_size, int):
            return self.settings.batch_size
        if self.runtime.device.type != "cpu":
            return CUDA_BATCH
        if self._image_batch is not None:
            return self._image_batch
        key = (
            f"{machine_key(torch.get_num_threads())} {self.identity.label} "
            f"{self.identity.fingerprint} {self.image_size}px {self.image_precision}"
        )
        # Read once (query images would read the file each time), measured once.
        if not self._calibration_read or count >= CALIBRATE_FROM:
            self._calibration_read = True
            self._image_batch = calibrated_batch(
                key, count, self._embed_pixel_batch, self.image_size
            )
        return self._image_batch or UNCALIBRATED_BATCH

    def _embed_pixel_batch(self, pixels: np.ndarray) -> np.ndarray:
        return self.embed_pixels(pixels, batch_size=len(pixels))

    def _run(
        self,
        inputs: torch.Tensor,
        encode: Callable[[torch.Tensor], torch.Tensor],
        size: int,
    ) -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(inputs), size):
                batch = inputs[start : start + size].to(self.runtime.device)
                if batch.is_floating_point():
                    batch = batch.to(self.runtime.dtype)
                features = encode(batch).float()
                chunks.append(torch.nn.functional.normalize(features, dim=-1).cpu().numpy())
        return np.concatenate(chunks).astype(np.float32, copy=False)


_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)
_INIT_LOCK = threading.Lock()


def _left_as_allocated(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def weights_load_instead_of_init(skip: bool) -> Iterator[None]:
    """While building a model whose every parameter a strict load then replaces, leave the
    parameters as allocated instead of drawing random values (``torch.nn.init`` does nothing).

    Only for full checkpoints loaded strictly: a missing parameter then fails the load, so no
    parameter can stay uninitialised. Models built from a pretrained tag without a local file,
    or without weights, are initialised as usual.
    """
    if not skip:
        yield
        return
    from torch.nn import init

    with _INIT_LOCK:
        saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
        for name in saved:
            setattr(init, name, _left_as_allocated)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(init, name, function)


def describe_load_failure(source: ModelSource, exc: BaseException) -> str:
    """One line on why open_clip could not build a model.

    A checkpoint of another architecture makes open_clip fail on the first parameter it
    cannot fit, or makes torch list every missing, unexpected and mis-shaped parameter over
    hundreds of lines; this compares the checkpoint with the architecture instead, counts the
    differences and shows one of each.

    Args:
        source: The model that was being loaded.
        exc: What open_clip raised.
    """
    checkpoint = source.open_clip_pretrained
    if checkpoint and Path(checkpoint).is_file():
        differences = checkpoint_differences(source.open_clip_name, Path(checkpoint))
        if differences:
            return (
                f"{Path(checkpoint).name} does not fit {source.open_clip_name}: "
                f"{'; '.join(differences)}: pass the --model these weights were trained as"
            )
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"cannot load model {source.name}: {first or type(exc).__name__}"


def checkpoint_differences(architecture: str, checkpoint: Path) -> list[str]:
    """How a checkpoint's parameters differ from an open_clip architecture's.

    Returns:
        Phrases such as ``"12 missing keys (e.g. visual.proj)"``; empty when they fit or
        when the checkpoint cannot be read.
    """
    import open_clip

    try:
        stored = _checkpoint_shapes(checkpoint)
        # open_clip warns that this bare architecture has no weights: true, and beside the point
        logging.disable(logging.WARNING)
        try:
            model = open_clip.create_model(architecture, pretrained=None)
        finally:
            logging.disable(logging.NOTSET)
        expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    except Exception:  # an unreadable checkpoint: open_clip's own message says more
        return []
    stored = {key.removeprefix("module."): shape for key, shape in stored.items()}
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    mismatched = sorted(k for k in expected.keys() & stored.keys() if expected[k] != stored[k])
    differences = []
    if missing:
        differences.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        differences.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if mismatched:
        name = mismatched[0]
        differences.append(
            f"{len(mismatched)} shape mismatches (e.g. {name}: {list(stored[name])} in the "
            f"checkpoint, {list(expected[name])} in the model)"
        )
    return differences


def _checkpoint_shapes(checkpoint: Path) -> dict[str, tuple[int, ...]]:
    if checkpoint.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as opened:
            return {key: tuple(opened.get_slice(key).get_shape()) for key in opened.keys()}  # noqa: SIM118 - not a dict
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {key: tuple(value.shape) for key, value in state.items() if hasattr(value, "shape")}


def trimmed_text_encoder(
    model: torch.nn.Module,
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A text encoder that runs the text tower over the tokens present, not the whole context.

    CLIP's text tower is causal and pools at the end-of-text token (the largest token id), so
    the padding after it changes nothing: cutting the batch after its longest text gives the
    same features (to float rounding) several times faster (77 → ~10 positions for a query).

    Returns:
        The encoder, or None when the model is not a causal, argmax-pooled open_clip CLIP.
    """
    import open_clip
    from open_clip.transformer import text_global_pool

    if type(model) is not open_clip.CLIP or getattr(model, "text_pool_type", None) != "argmax":
        return None
    if getattr(model, "attn_mask", None) is None:
        return None

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        length = int(tokens.argmax(dim=1).max()) + 1  # the end-of-text token has the top id
        tokens = tokens[:, :length]
        # The tower's dtype, read where int8 quantization (quantize_text_tower) leaves it.
        cast = model.token_embedding.weight.dtype
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = text_global_pool(x, tokens, "argmax", eos_token_id=getattr(model, "text_eos_id", None))
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    return encode


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    return int(size[0] if isinstance(size, tuple | list) else size)


def _embed_dim(model: torch.nn.Module) -> int:
    projection = getattr(model, "text_projection", None)
    if isinstance(projection, torch.Tensor):
        return int(projection.shape[-1])
    if isinstance(projection, torch.nn.Linear):
        return int(projection.out_features)
    output_dim = getattr(getattr(model, "visual", None), "output_dim", None)
    if output_dim is None:
        raise ModelError("cannot tell the embedding dimension of this model")
    return int(output_dim)


_SHARED: dict[str, Embedder] = {}
_SHARED_TOWERS: dict[str, OnnxImageModel] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(settings: ModelSettings) -> Embedder:
    """One Embedder per model settings and process: for workers that embed many batches.

    A Dask worker process runs many tasks; loading the model once per process, not per task,
    is what makes distributed embedding pay.
    """
    key = settings.model_dump_json()
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(settings)
        return _SHARED[key]


def shared_image_model(settings: ModelSettings) -> Embedder | OnnxImageModel:
    """What a flow's batches embed images with, once per model settings and process: the
    cached ONNX export of the image tower where images run on ONNX
    (:func:`indexer.image_onnx.onnx_image_precision`) and an export is cached, as an inline
    run would use it; else :func:`shared_embedder`. Flows do not export: an inline run does."""
    from indexer.image_onnx import find_image_tower, onnx_image_precision

    precision = onnx_image_precision(settings)
    if precision is None:
        return shared_embedder(settings)
    key = f"{precision} {settings.model_dump_json()}"
    with _SHARED_LOCK:
        if key not in _SHARED_TOWERS:
            tower = find_image_tower(settings, precision)
            if tower is not None:
                _SHARED_TOWERS[key] = tower
        tower = _SHARED_TOWERS.get(key)
    return tower if tower is not None else shared_embedder(settings)
