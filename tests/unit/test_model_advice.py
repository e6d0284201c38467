"""Offline model errors give advice that works: each advised layout is built and then used.

Tests run with ``HF_HUB_OFFLINE=1`` (tests/conftest.py), so a model that is not on this
machine fails at once with the advice.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.config import ModelSettings
from indexer.embed import Embedder
from indexer.errors import ModelError, ModelUnavailableError
from indexer.weights import resolve_model
from search.cli import main

DEFAULT_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def fill_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay files out as ``hf download REPO FILE --cache-dir CACHE`` does; returns the snapshot."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    return snapshot


def test_the_default_model_offline_names_the_repo_the_file_and_the_cache(tmp_path) -> None:
    cache = tmp_path / "hub"
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model("ViT-B-32", cache_dir=cache)
    message = str(caught.value)
    assert message.startswith("ViT-B-32/laion2b_s34b_b79k is not cached and HF_HUB_OFFLINE is set")
    assert f"from the Hugging Face repo {DEFAULT_REPO}" in message
    assert (
        f"https://huggingface.co/{DEFAULT_REPO}/resolve/main/open_clip_model.safetensors" in message
    )
    assert "--model ViT-B-32 --pretrained FOLDER/open_clip_model.safetensors" in message
    assert f"--cache-dir {cache}" in message
    assert "--model anyshot-tiny works offline" in message
    assert "\n" not in message


def test_the_default_model_loads_offline_from_a_cache_filled_as_advised(tmp_path) -> None:
    checkpoint = tmp_path / "download" / "open_clip_model.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    cache = tmp_path / "hub"
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model("ViT-B-32", cache_dir=cache)
    filename = re.search(r"download (\S+) from the Hugging Face repo", str(caught.value))
    assert filename is not None
    snapshot = fill_hub_cache(cache, DEFAULT_REPO, {filename.group(1): checkpoint})
    source = resolve_model("ViT-B-32", cache_dir=cache)
    assert source.weights_file == snapshot / "open_clip_model.safetensors"
    assert source.open_clip_pretrained == str(snapshot / "open_clip_model.safetensors")
    assert source.tag == "laion2b_s34b_b79k"


@pytest.mark.slow
def test_the_default_architecture_runs_offline_from_a_checkpoint_in_the_advised_cache(
    tmp_path,
) -> None:
    """The whole way: ViT-B-32 with (random) weights where the advice puts them, no network."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    checkpoint = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    del model
    cache = tmp_path / "hub"
    fill_hub_cache(cache, DEFAULT_REPO, {"open_clip_model.safetensors": checkpoint})
    embedder = Embedder(ModelSettings(name="ViT-B-32", cache_dir=cache, precision="fp32"))
    assert embedder.identity.label == "ViT-B-32/laion2b_s34b_b79k"
    vector = embedder.embed_texts(["a red circle"])
    assert vector.shape == (1, 512)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_hf_hub_advice_works_as_given(tmp_path, random_model_dir, image_folder) -> None:
    """The hf-hub error advises a local-dir folder of two files: running that works."""
    repo_id = "someone/tiny-clip"
    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model(f"hf-hub:{repo_id}", cache_dir=tmp_path / "hub")
    message = str(caught.value)
    assert "--model laion/" not in message and f"--model {repo_id}" not in message
    command = re.search(r"`hf download (\S+) ((?:\S+ )+)--local-dir FOLDER`", message)
    assert command is not None and command.group(1) == repo_id
    assert "pass --model local-dir:FOLDER" in message
    folder = tmp_path / "FOLDER"
    folder.mkdir()
    for name in command.group(2).split():
        shutil.copyfile(random_model_dir / name, folder / name)
    store = str(tmp_path / "store")
    source = str(image_folder["red"].parent)
    result = CliRunner().invoke(
        main, ["index", source, "--model", f"local-dir:{folder}", "--store", store, "--json"]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["search", "a red square", "--store", store, "--json"])
    assert result.exit_code == 0, result.output


def test_hf_hub_model_in_the_cache_loads_offline(tmp_path, random_model_dir) -> None:
    """``hf download REPO ... --cache-dir CACHE``, as advised, is enough for ``hf-hub:REPO``."""
    repo_id = "someone/tiny-clip"
    files = {name: random_model_dir / name for name in ("open_clip_config.json",)}
    files["open_clip_model.safetensors"] = random_model_dir / "open_clip_model.safetensors"
    snapshot = fill_hub_cache(tmp_path / "hub", repo_id, files)
    settings = ModelSettings(name=f"hf-hub:{repo_id}", cache_dir=tmp_path / "hub")
    embedder = Embedder(settings)
    assert embedder.identity.name == f"hf-hub:{repo_id}"
    assert embedder.source.weights_file == snapshot / "open_clip_model.safetensors"
    assert embedder.embed_texts(["a red circle"]).shape == (1, 32)


def test_a_checkpoint_of_another_architecture_is_one_line(random_model_dir) -> None:
    checkpoint = random_model_dir / "open_clip_model.safetensors"
    with pytest.raises(ModelError) as caught:
        Embedder(ModelSettings(name="ViT-B-32", pretrained=str(checkpoint)))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("open_clip_model.safetensors does not fit ViT-B-32: ")
    assert re.search(r"\d+ shape mismatches \(e\.g\. \S+: \[[\d, ]+\] in the checkpoint", message)
    assert len(message) < 400


def test_a_checkpoint_known_by_name_only_says_to_give_its_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="pass --pretrained with the file's full path"):
        resolve_model("ViT-B-32", "weights.safetensors")
