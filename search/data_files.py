"""Reading the small data files users point the search layer at (knowledge bases, label lists).

Both kinds come as text, JSON or YAML; a file that cannot be read or parsed is a
:class:`~indexer.errors.ConfigError` naming what the file was meant to be.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexer.errors import ConfigError


def read_text_file(path: Path, what: str) -> str:
    """The file's UTF-8 text.

    Raises:
        ConfigError: ``cannot read {what} {path}: ...``.
    """
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc


def parse_json_or_yaml(text: str, path: Path, what: str) -> Any:
    """Parse ``text`` as JSON for a ``.json`` path, as YAML otherwise.

    Raises:
        ConfigError: ``cannot parse {what} {path}: ...``.
    """
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"cannot parse {what} {path}: {exc}") from exc
