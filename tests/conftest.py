"""Shared fixtures: a tiny real open_clip model, stores, and folders of generated images."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# Tests never touch the network: pretrained tags must fail at once, not after retries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("DO_NOT_TRACK", "1")
# What anyshot caches (batch calibrations, exported text towers) goes to a folder of this run:
# a tower left by an earlier run would change which text path the tests exercise. The Hugging
# Face cache stays where it was (it defaults to XDG_CACHE_HOME/huggingface).
os.environ.setdefault(
    "HF_HOME",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"),
)
os.environ["XDG_CACHE_HOME"] = TEST_CACHE = tempfile.mkdtemp(prefix="anyshot-test-cache-")

import pytest
from PIL import Image
from shape_collection import write_shape_images

from indexer.config import ModelSettings
from indexer.shapes import synthetic


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove this session's cache of exported text towers."""
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_random_model(folder: Path, seed: int) -> Path:
    """Save a tiny open_clip model with seeded random weights in open_clip's local-dir format."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CONFIG)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": TINY_CONFIG,
                "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
            }
        )
    )
    return folder


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight model folder (seed 0)."""
    return save_random_model(tmp_path_factory.mktemp("models") / "tiny-random", seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny random-weight model (seed 1), for model-mismatch checks."""
    return save_random_model(tmp_path_factory.mktemp("models") / "tiny-other", seed=1)


@pytest.fixture(scope="session")
def random_model_name(random_model_dir: Path) -> str:
    """The ``--model`` value that loads the tiny random model through the production loader."""
    return f"local-dir:{random_model_dir}"


@pytest.fixture(scope="session")
def embedder(random_model_name: str):
    """The tiny random model, loaded once per session."""
    from indexer.embed import Embedder

    return Embedder(ModelSettings(name=random_model_name, precision="fp32"))


COLOURS = {
    name: synthetic.COLOURS[name] for name in ("red", "green", "blue", "yellow", "purple", "white")
}


def make_image_folder(root: Path) -> dict[str, Path]:
    """Write a small folder of distinct images (nested, mixed formats and cases)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    targets = {
        "red": "red.jpg",
        "green": "green.png",
        "blue": "nested/blue.JPG",
        "yellow": "nested/deeper/yellow.webp",
        "purple": "purple.bmp",
        "white": "nested/white.jpeg",
    }
    for index, (name, rel) in enumerate(targets.items()):
        image = Image.new("RGB", (96 + 8 * index, 72), COLOURS[name])
        # a distinct pattern per image so that embeddings differ beyond colour
        for x in range(0, image.width, 12 + index):
            for y in range(image.height):
                image.putpixel((x, y), (index * 40 % 256, 0, 0))
        path = root / rel
        image.save(path)
        paths[name] = path
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> dict[str, Path]:
    """A folder of six distinct images; keys are their colour names."""
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def tiny_store_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """120 shape images indexed with anyshot-tiny into a folder store, built once.

    Returns:
        (images folder, store folder); copy the store before opening it in a test that writes.
    """
    from indexer.config import build_settings
    from search.client import ImageSearch

    root = tmp_path_factory.mktemp("tiny-collection")
    images = root / "images"
    write_shape_images(images, 120)
    store = root / "store"
    settings = build_settings(store=str(store), model="anyshot-tiny", workers=0)
    with ImageSearch(settings) as client:
        assert client.index(images).indexed == 120
    return images, store
