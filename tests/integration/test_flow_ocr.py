"""The Prefect flow reads text like the inline run (``index.ocr``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from text_images import photo_without_text, render_text_image

from indexer.config import StoreSettings
from indexer.stores.opening import open_store
from search.cli import main

pytestmark = pytest.mark.slow


def texts(location: str) -> dict[str, str | None]:
    with open_store(StoreSettings(location=location)) as store:
        return {Path(p.payload["uri"]).name: p.payload.get("text") for p in store.scroll()}


def test_the_flow_reads_text_like_the_inline_run(prefect_env, random_model_name, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = random.Random(11)
    render_text_image(rng, ("garden", "closed"), font_size=48, panel=True).image.save(
        folder / "sign.jpg"
    )
    photo_without_text(rng).save(folder / "plain.jpg")
    stores = {}
    for runner in ("inline", "prefect"):
        stores[runner] = str(tmp_path / runner)
        result = CliRunner().invoke(
            main,
            ["index", str(folder), "--model", random_model_name, "--store", stores[runner],
             "--runner", runner, "--workers", "0", "--ocr", "--json"],
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["ocr"]["looked"] == 2 and report["ocr"]["with_text"] == 1
    assert texts(stores["prefect"]) == texts(stores["inline"])
    assert "garden" in (texts(stores["inline"])["sign.jpg"] or "").lower()
