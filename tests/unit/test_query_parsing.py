"""Parsing of combined queries, filter expressions, knowledge-base files and label files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from indexer.errors import ConfigError, QueryError
from indexer.stores.interface import PayloadFilter
from search.filters import parse_filters
from search.knowledge import load_knowledge_base
from search.query import QueryPart, parse_query
from search.tagging import read_labels

# -- parse_query ------------------------------------------------------------------------------


def test_the_documented_example_parses_into_weighted_parts() -> None:
    parts = parse_query('+"beach" +photo.jpg -"people" +name:cat 2*"sunset"')
    assert parts == [
        QueryPart("text", "beach", 1.0),
        QueryPart("image", "photo.jpg", 1.0),
        QueryPart("text", "people", -1.0),
        QueryPart("name", "cat", 1.0),
        QueryPart("text", "sunset", 2.0),
    ]


def test_prefixes_quotes_urls_and_fractional_weights() -> None:
    parts = parse_query(
        "id:42 -0.5*id:7 name:'red panda' image:/data/x https://example.com/a.webp text:hello"
    )
    assert parts == [
        QueryPart("id", 42, 1.0),
        QueryPart("id", 7, -0.5),
        QueryPart("name", "red panda", 1.0),
        QueryPart("image", "/data/x", 1.0),
        QueryPart("image", "https://example.com/a.webp", 1.0),
        QueryPart("text", "hello", 1.0),
    ]


def test_bare_words_run_together_by_sign() -> None:
    assert parse_query("beach at sunset -people -crowds") == [
        QueryPart("text", "beach at sunset", 1.0),
        QueryPart("text", "people crowds", -1.0),
    ]


def test_image_suffixes_are_case_insensitive() -> None:
    assert parse_query("+IMG_001.JPG") == [QueryPart("image", "IMG_001.JPG", 1.0)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ('"unclosed', "cannot parse"),
        ('-"people"', "at least one positive part"),
        ("id:abc", "not an image id"),
        ('""', "empty part"),
        ('0*"x" "y"', "weight 0"),
        ('"a""b"', "cannot parse"),
    ],
)
def test_bad_queries_are_refused_with_a_clear_message(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query)


def test_query_parts_check_their_kind_and_weight() -> None:
    with pytest.raises(QueryError, match="unknown query part kind"):
        QueryPart("video", "x")  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="weight 0"):
        QueryPart("text", "x", 0.0)
    assert QueryPart("image", b"\x89PNG", -1).to_dict() == {
        "kind": "image",
        "value": "<bytes>",
        "weight": -1,
    }


# -- parse_filters ----------------------------------------------------------------------------


def test_every_documented_filter_expression(tmp_path: Path) -> None:
    where = parse_filters(
        [
            f"folder={tmp_path}",
            "format=jpg,PNG",
            "tag=cat",
            "tag=dog,cat",
            "mtime>=2024-01-01",
            "mtime<2025-01-01T12:00",
            "size<2MB",
            "size>=10000",
            "id=123,456",
        ]
    )
    assert where == PayloadFilter(
        uri_prefix=f"{tmp_path}/",
        formats=("JPEG", "PNG"),
        tags=("cat", "dog"),
        mtime_min=datetime(2024, 1, 1).timestamp(),
        mtime_max=where.mtime_max,
        size_min=10_000,
        size_max=1_999_999,
        ids=(123, 456),
    )
    end = datetime(2025, 1, 1, 12, 0).timestamp()
    assert end - 1e-3 < where.mtime_max < end  # strictly before


def test_ranges_intersect_and_units_scale() -> None:
    where = parse_filters(["size>1KiB", "size<=1.5MiB", "size>=500", "mtime>100", "mtime<=200"])
    assert (where.size_min, where.size_max) == (1025, 1_572_864)
    assert 100 < where.mtime_min < 100.001
    assert where.mtime_max == 200
    assert parse_filters(["size=3GB"]) == PayloadFilter(size_min=3 * 10**9, size_max=3 * 10**9)
    assert parse_filters([]) == PayloadFilter()
    assert parse_filters(["folder=https://host/images/"]).uri_prefix == "https://host/images/"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("colour=red", "unknown filter key 'colour'"),
        ("size", "expected KEY=VALUE"),
        ("size<two", "not a size"),
        ("size<2XB", "not a size"),
        ("mtime>=yesterday", "not a date"),
        ("format>JPEG", "format takes '='"),
        ("id=1,x", "ids are integers"),
        ("tag=", "has no value"),
        ("tag=a,,b", "empty item"),
    ],
)
def test_bad_filters_are_one_line_errors(expression: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        parse_filters([expression])
    assert "\n" not in str(caught.value)


def test_two_folders_conflict() -> None:
    with pytest.raises(QueryError, match="two different folders"):
        parse_filters(["folder=/a", "folder=/b"])


# -- knowledge bases --------------------------------------------------------------------------


def test_yaml_list_and_mapping_forms(tmp_path: Path) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(
        "- name: Flamingo\n"
        "  aliases: [pink bird]\n"
        "  descriptions: [a pink heart, a pink heart on a plain background]\n"
        "- name: flamingo\n"
        "  description: a small pink heart\n"
    )
    kb = load_knowledge_base(path)
    entry = kb.lookup("  PINK   bird ")
    assert entry is not None and entry.name == "Flamingo"
    assert entry.descriptions == (
        "a pink heart",
        "a pink heart on a plain background",
        "a small pink heart",
    )
    assert len(kb) == 1
    mapping = tmp_path / "kb.yml"
    mapping.write_text("sun:\n  alias: star\n  description: a yellow star\nmoon: [a white ring]\n")
    kb = load_knowledge_base(mapping)
    assert kb.lookup("star").descriptions == ("a yellow star",)
    assert kb.lookup("moon").descriptions == ("a white ring",)
    assert kb.lookup("planet") is None


def test_json_and_csv_files(tmp_path: Path) -> None:
    path = tmp_path / "kb.json"
    path.write_text(
        json.dumps({"sun": {"aliases": ["day star"], "descriptions": ["a yellow star"]}})
    )
    assert load_knowledge_base(path).lookup("day star").name == "sun"
    csv_path = tmp_path / "kb.csv"
    csv_path.write_text(
        "name,aliases,description\n"
        "sun,day star|sol,a yellow star\n"
        "sun,,a large yellow star | a yellow star in the centre\n"
        ",ignored,rows without a name\n"
    )
    entry = load_knowledge_base(csv_path).lookup("sol")
    assert entry.aliases == ("day star", "sol")
    assert entry.descriptions == (
        "a yellow star",
        "a large yellow star",
        "a yellow star in the centre",
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("kb.txt", "sun", "a knowledge base is a"),
        ("kb.yaml", "sun: [unclosed", "cannot parse"),
        ("kb.json", "{", "cannot parse"),
        ("kb.yaml", "- just a string\n", "list items must be mappings"),
        ("kb.yaml", "sun:\n  colour: yellow\n", "unknown keys"),
        ("kb.csv", "label,description\nsun,a star\n", "needs a 'name' column"),
        ("kb.yaml", "a:\n  alias: x\nb:\n  alias: x\n", "names both"),
        ("kb.yaml", "42\n", "a list or a mapping"),
    ],
)
def test_bad_knowledge_bases_are_config_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_knowledge_base(path)


def test_a_missing_knowledge_base_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_knowledge_base(tmp_path / "none.yaml")


# -- label files ------------------------------------------------------------------------------


def test_label_files_in_three_forms(tmp_path: Path) -> None:
    text = tmp_path / "labels.txt"
    text.write_text("# shapes\ncircle\n\n square \ncircle\n")
    assert read_labels(text) == ["circle", "square"]
    (tmp_path / "labels.yaml").write_text("- circle\n- star\n")
    assert read_labels(tmp_path / "labels.yaml") == ["circle", "star"]
    (tmp_path / "labels.json").write_text('["heart"]')
    assert read_labels(tmp_path / "labels.json") == ["heart"]


def test_bad_label_files(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="no labels"):
        read_labels(tmp_path / "empty.txt")
    (tmp_path / "map.json").write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="a list of strings"):
        read_labels(tmp_path / "map.json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_labels(tmp_path / "missing.txt")
