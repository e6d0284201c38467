"""The hostile-input suite: what an attacker, a broken disk or an odd file system does to anyshot.

Each test asserts the exact outcome: skipped with a reason, refused with a 4xx JSON error, or
kept. Helpers are in ``adversary.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from adversary import permissions_bite


@pytest.fixture
def needs_permissions() -> None:
    """Skip where file permissions cannot be made to apply (root without setpriv)."""
    if not permissions_bite():
        pytest.skip("root ignores file permissions and setpriv is missing")


@pytest.fixture
def tiny_store(tiny_store_template, tmp_path: Path) -> tuple[Path, Path]:
    """A writable copy of the 120-image anyshot-tiny collection: (images, store)."""
    images, template = tiny_store_template
    store = tmp_path / "store"
    shutil.copytree(template, store)
    return images, store
