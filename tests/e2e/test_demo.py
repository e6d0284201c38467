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
    assert outcome["generated"] is True
    for search in outcome["searches"]:
        matching = round(search["precision"] * 5)
        assert search["summary"].startswith(f"{matching} of 5 results are ")

    again = CliRunner().invoke(
        main, ["demo", "--folder", str(folder), "--images", "150"], catch_exceptions=False
    )
    assert again.exit_code == 0
    lines = again.stdout.splitlines()
    assert lines[0] == f"Reusing 150 images of coloured shapes in {folder / 'images'} ..."
    assert "Generating" not in again.stdout
    assert "Indexed 0 images (150 already indexed)" in again.stdout
    assert "✓ the image shows what was asked, ✗ it does not" in again.stdout
    summaries = [line.strip() for line in lines if " of 5 results " in line]
    assert len(summaries) == 4
    assert summaries[0].endswith(" of 5 results are red circles")
    assert summaries[3].endswith(" of 5 results are hearts")
    assert "Next, try:" in again.stdout


def test_demo_writes_under_the_data_folder_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    result = CliRunner(env={"XDG_DATA_HOME": str(data)}).invoke(
        main, ["demo", "--images", "20"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    demo = data / "anyshot" / "demo"
    assert result.stdout.splitlines()[0] == (
        f"Generating 20 images of coloured shapes in {demo / 'images'} ..."
    )
    assert f"The demo's files are in {demo}. Next, try:" in result.stdout
    assert len(list((demo / "images").glob("*.jpg"))) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing in the current folder
