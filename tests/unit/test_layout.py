"""The layout's walls hold at run time too: light modules load no backend, the core loads no
shapes generator, every public name imports, and the old module paths are gone."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.util import find_spec

import pytest

import indexer
import indexer.stores
import pipelines
from indexer.weights import SHIPPED_MODELS_DIR


def modules_loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


BACKENDS = {"qdrant_edge", "qdrant_client", "torch", "indexer.stores.edge"}


@pytest.mark.parametrize(
    "statement",
    [
        "import indexer.stores",
        "from indexer.stores import StoreLocation, PayloadFilter",
        "import indexer.stores.interface, indexer.stores.location, indexer.stores.holder",
        "import indexer.schema, indexer.config, indexer.formats, indexer.discover",
    ],
)
def test_light_modules_load_no_store_backend_and_no_torch(statement: str) -> None:
    assert modules_loaded_by(statement) & BACKENDS == set()


def test_the_core_finds_the_shipped_model_without_loading_the_shapes_generator() -> None:
    loaded = modules_loaded_by(
        "import indexer.weights, indexer.embed, indexer.indexing, pipelines.index_flow"
    )
    assert "indexer.shapes" in loaded  # the package, as the model folder's home
    assert {
        "indexer.shapes.synthetic",
        "indexer.shapes.train",
        "indexer.shapes.varied",
    } & loaded == set()
    model = SHIPPED_MODELS_DIR / "anyshot-tiny"
    files = {"open_clip_config.json", "open_clip_model.safetensors", "README.md"}
    assert files <= {path.name for path in model.iterdir()}


@pytest.mark.parametrize("package", [indexer, indexer.stores, pipelines])
def test_every_public_name_imports(package) -> None:
    assert package.__all__ == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert set(dir(package)) == set(package.__all__)


@pytest.mark.parametrize(
    "old",
    [
        "indexer.store",
        "indexer.edge_store",
        "indexer.qdrant_store",
        "indexer.serialized_store",
        "indexer.shard_copy",
        "indexer.synthetic",
        "indexer.models",
    ],
)
def test_old_module_paths_are_gone(old: str) -> None:
    assert find_spec(old) is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)
