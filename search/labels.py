"""Label lists for zero-shot tagging (``anyshot tag --labels FILE``), read without loading a
model: a bad file is refused before anything heavy starts."""

from __future__ import annotations

from pathlib import Path

from indexer.errors import ConfigError
from search.data_files import parse_json_or_yaml, read_text_file


def read_labels(path: str | Path) -> list[str]:
    """Read a label list: a YAML or JSON list, or a text file with one label per line.

    In text files, blank lines and lines starting with ``#`` are skipped.

    Raises:
        ConfigError: The file cannot be read, or holds no labels.
    """
    path = Path(path).expanduser()
    text = read_text_file(path, "labels file")
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        data = parse_json_or_yaml(text, path, "labels file")
        if not isinstance(data, list) or not all(isinstance(x, str | int) for x in data):
            raise ConfigError(f"{path}: a labels file holds a list of strings")
        labels = [str(x).strip() for x in data]
    else:
        labels = [line.strip() for line in text.splitlines()]
        labels = [line for line in labels if not line.startswith("#")]
    labels = list(dict.fromkeys(label for label in labels if label))
    if not labels:
        raise ConfigError(f"{path}: no labels")
    return labels
