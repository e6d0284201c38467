"""``search.__all__`` names exactly what the package exports, and every name imports."""

from __future__ import annotations

import search


def test_every_public_name_imports() -> None:
    assert search.__all__ == sorted(search.__all__)
    for name in search.__all__:
        assert getattr(search, name) is not None, name
    assert set(dir(search)) == set(search.__all__)
