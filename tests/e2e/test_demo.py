"""`anyshot demo` runs offline with the shipped model, and re-running reuses its work."""

from __future__ import annotations

import json

from click.testing import CliRunner

from search.cli import main


def test_demo_runs_offline_and_reuses_its_collection(tmp_path):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--folder", str(folder), "--images", "150", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["index"]["indexed"] == 150
    assert [s["kind"] for s in outcome["searches"]] == ["text", "text", "image", "name"]
    assert all(len(s["hits"]) == 5 for s in outcome["searches"])
    by_image = outcome["searches"][2]
    assert by_image["hits"][0]["uri"] == by_image["query"]  # an indexed image finds itself
    assert len(list((folder / "images").glob("*.jpg"))) == 150

    again = CliRunner().invoke(
        main, ["demo", "--folder", str(folder), "--images", "150"], catch_exceptions=False
    )
    assert again.exit_code == 0
    assert "Indexed 0 images (150 already indexed)" in again.stdout
    assert "Next, try:" in again.stdout
