"""Knowledge about names: aliases and descriptions, from a local file or (optionally) online.

A name query whose name is not a registered concept is embedded from its descriptions plus the
name in prompt templates: descriptions improve zero-shot matching (CuPL; Menon & Vondrick 2023,
"Visual classification via description from large language models").

File formats (the suffix decides):

YAML (``.yaml``/``.yml``) or JSON (``.json``): a list of entries, or a mapping from name to an
entry, to a list of descriptions, or to one description::

    - name: flamingo
      aliases: [pink bird]
      descriptions: ["a pink heart", "a pink heart on a plain background"]
    # or, as a mapping:
    flamingo:
      aliases: pink bird
      description: a pink heart

CSV (``.csv``): a header with ``name`` and any of ``aliases`` (separated by ``|`` or ``;``),
``description`` or ``descriptions`` (separated by ``|``); rows of the same name add up.

Names and aliases match case-insensitively, with runs of spaces as one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import ConfigError
from search.data_files import parse_json_or_yaml, read_text_file

SUFFIXES = (".yaml", ".yml", ".json", ".csv")


def normalise_name(name: str) -> str:
    """The lookup key of a name: case-folded, single spaces, no outer spaces."""
    return re.sub(r"\s+", " ", name).strip().casefold()


@dataclass(frozen=True, slots=True)
class KnowledgeEntry:
    """What is known about one name.

    Attributes:
        name: The name as written in the source.
        aliases: Other names for the same thing.
        descriptions: Visual descriptions ("a pink heart on a plain background").
        source: Where it came from (a file path or a URL).
    """

    name: str
    aliases: tuple[str, ...] = ()
    descriptions: tuple[str, ...] = ()
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready values."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "descriptions": list(self.descriptions),
            "source": self.source,
        }


@dataclass
class KnowledgeBase:
    """Entries looked up by name or alias.

    Args:
        entries: The entries; a later entry of the same name adds aliases and descriptions.

    Raises:
        ConfigError: An alias names two different entries.
    """

    entries: list[KnowledgeEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        merged: dict[str, KnowledgeEntry] = {}
        for entry in self.entries:
            key = normalise_name(entry.name)
            if not key:
                raise ConfigError(f"{entry.source}: an entry without a name")
            old = merged.get(key)
            if old is not None:
                entry = KnowledgeEntry(
                    old.name,
                    tuple(dict.fromkeys(old.aliases + entry.aliases)),
                    tuple(dict.fromkeys(old.descriptions + entry.descriptions)),
                    old.source,
                )
            merged[key] = entry
        self.entries = list(merged.values())
        self._by_key: dict[str, KnowledgeEntry] = {}
        for key, entry in merged.items():
            self._by_key[key] = entry
        for entry in self.entries:
            for alias in entry.aliases:
                key = normalise_name(alias)
                other = self._by_key.get(key)
                if other is not None and other.name != entry.name:
                    raise ConfigError(
                        f"{entry.source}: {alias!r} names both {other.name!r} and {entry.name!r}"
                    )
                self._by_key[key] = entry

    def lookup(self, name: str) -> KnowledgeEntry | None:
        """Return the entry for a name or alias, or None."""
        return self._by_key.get(normalise_name(name))

    def __len__(self) -> int:
        return len(self.entries)


def load_knowledge_base(path: str | Path) -> KnowledgeBase:
    """Read a knowledge base file (YAML, JSON or CSV; formats: this module's docstring).

    Raises:
        ConfigError: The file cannot be read, or its content is not a knowledge base.
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: a knowledge base is a {', '.join(SUFFIXES)} file")
    text = read_text_file(path, "knowledge base")
    source = str(path)
    if suffix == ".csv":
        return KnowledgeBase(list(_csv_entries(text, source)))
    data = parse_json_or_yaml(text, path, "knowledge base")
    return KnowledgeBase(list(_structured_entries(data, source)))


def _strings(value: Any, source: str, what: str, separators: str = "") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = re.split(f"[{re.escape(separators)}]", value) if separators else [value]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ConfigError(f"{source}: {what} must be a string or a list, not {value!r}")
    if not all(isinstance(item, str | int | float) for item in items):
        raise ConfigError(f"{source}: {what} must hold strings, not {value!r}")
    return tuple(s for s in (str(item).strip() for item in items) if s)


def _entry(name: Any, data: Any, source: str) -> KnowledgeEntry:
    if not isinstance(name, str | int) or not str(name).strip():
        raise ConfigError(f"{source}: an entry has no name ({data!r})")
    if isinstance(data, str | list):
        return KnowledgeEntry(str(name).strip(), (), _strings(data, source, "descriptions"), source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: entry {name!r} must be a mapping, a list or a string")
    unknown = set(data) - {"name", "aliases", "alias", "descriptions", "description"}
    if unknown:
        raise ConfigError(f"{source}: entry {name!r} has unknown keys {sorted(unknown)}")
    aliases = _strings(data.get("aliases"), source, "aliases") + _strings(
        data.get("alias"), source, "alias"
    )
    descriptions = _strings(data.get("descriptions"), source, "descriptions") + _strings(
        data.get("description"), source, "description"
    )
    return KnowledgeEntry(str(name).strip(), aliases, descriptions, source)


def _structured_entries(data: Any, source: str) -> Iterable[KnowledgeEntry]:
    if data is None:
        return
    if isinstance(data, list):
        for item in data:
            if not isinstance(item, dict):
                raise ConfigError(f"{source}: list items must be mappings with a name")
            yield _entry(item.get("name"), item, source)
    elif isinstance(data, dict):
        for name, item in data.items():
            yield _entry(name, item, source)
    else:
        raise ConfigError(f"{source}: a knowledge base is a list or a mapping of entries")


def _csv_entries(text: str, source: str) -> Iterable[KnowledgeEntry]:
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    if "name" not in columns:
        raise ConfigError(f"{source}: a CSV knowledge base needs a 'name' column")
    for row in reader:
        name = (row.get(columns["name"]) or "").strip()
        if not name:
            continue
        aliases = _strings(row.get(columns.get("aliases", "")), source, "aliases", "|;")
        descriptions = ()
        for column in ("description", "descriptions"):
            if column in columns:
                descriptions += _strings(row.get(columns[column]), source, column, "|")
        yield KnowledgeEntry(name, aliases, descriptions, source)


class OnlineDescriptions:
    """Descriptions fetched online (by default a Wikipedia page summary), cached on disk.

    Off unless ``search.online_descriptions`` is set; the test suite never uses it. Answers,
    found or not, are cached as one JSON file per name, so a name is fetched once.

    Args:
        url_template: A URL with ``{}`` where the (URL-quoted) name goes.
        cache_dir: Where answers are cached.
        timeout: Seconds to wait for the server.
    """

    def __init__(self, url_template: str, cache_dir: Path, *, timeout: float = 5.0) -> None:
        self.url_template = url_template
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout

    def lookup(self, name: str) -> KnowledgeEntry | None:
        """Return the name's online description, or None (not found, or offline)."""
        key = normalise_name(name)
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        cached = self.cache_dir / f"{digest}.json"
        if cached.is_file():
            try:
                data = json.loads(cached.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict):
                return self._entry(name, data.get("description"), data.get("url", ""))
        url = self.url_template.format(urllib.parse.quote(name.strip().replace(" ", "_")))
        description = self._fetch(url)
        if description is _OFFLINE:
            return None  # not cached: try again next time
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"name": name, "url": url, "description": description}))
        return self._entry(name, description, url)

    @staticmethod
    def _entry(name: str, description: Any, url: str) -> KnowledgeEntry | None:
        if not isinstance(description, str) or not description.strip():
            return None
        # CLIP's text tower reads 77 tokens at most: keep the first sentence or two.
        sentences = re.split(r"(?<=[.!?])\s+", description.strip())
        return KnowledgeEntry(name, (), (" ".join(sentences[:2])[:300],), url)

    def _fetch(self, url: str) -> Any:
        request = urllib.request.Request(url, headers={"User-Agent": "anyshot"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                data = json.loads(reply.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            return None if exc.code == 404 else _OFFLINE
        except (OSError, ValueError):
            return _OFFLINE
        return data.get("extract") if isinstance(data, dict) else None


_OFFLINE = object()
