"""An index run from a new process, once the image tower is exported, imports no torch."""

from __future__ import annotations

import json
import shutil

from fresh_process import run_fresh


def test_an_index_run_with_a_cached_export_imports_no_torch(tiny_store_template, tmp_path) -> None:
    source, _ = tiny_store_template
    images = tmp_path / "images"
    shutil.copytree(source, images)
    env = {
        "ANYSHOT_MODEL__PRECISION": "int8",
        "ANYSHOT_MODEL__CACHE_DIR": str(tmp_path / "cache"),
        "ANYSHOT_INDEX__WORKERS": "0",
    }
    store = str(tmp_path / "store")
    args = ("index", str(images), "--model", "anyshot-tiny", "--store", store, "--json")
    code, out, err, modules = run_fresh(*args, env=env)
    assert code == 0, err
    assert "torch" in modules  # the first run loads the model, and exports its towers
    shutil.copy(images / sorted(p.name for p in images.iterdir())[0], images / "one-more.png")
    code, out, err, modules = run_fresh(*args, env=env)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["indexed"] == 1
    assert not {"torch", "torchvision", "open_clip", "onnx"} & modules
    code, out, err, modules = run_fresh("info", "--store", store, "--json", env=env)
    assert json.loads(out)["precision"] == "int8"
