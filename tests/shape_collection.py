"""Helpers of the API, CLI and browser tests: shape images with known labels, a real uvicorn."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.shapes.synthetic import COLOURS, SHAPES, ObjectSpec, SceneSpec, render_scene

SHAPE_TARGETS = [("circle", "red"), ("heart", "cyan"), ("ring", "blue"), ("star", "black")]
"""Pairs the API and browser tests search for; each has three images in the collection."""


def write_shape_images(folder: Path, count: int, *, seed: int = 3, size: int = 64) -> list[Path]:
    """Write ``count`` single-shape PNGs named ``shape-colour-NNN.png``, the targets first."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = [pair for pair in SHAPE_TARGETS for _ in range(3)]
    pairs += [(rng.choice(SHAPES), rng.choice(list(COLOURS))) for _ in range(count - len(pairs))]
    paths = []
    for index, (shape, colour) in enumerate(pairs[:count]):
        background = rng.choice([c for c in COLOURS if c != colour])
        spec = SceneSpec(
            objects=(ObjectSpec(shape, colour, "large", "centre"),),
            background="plain",
            background_colour=background,
            seed=seed * 10_000 + index,
        )
        path = folder / f"{shape}-{colour}-{index:03d}.png"
        render_scene(spec, size).save(path)
        paths.append(path)
    return paths


def shape_of(uri: str) -> tuple[str, str]:
    """(shape, colour) from a file written by :func:`write_shape_images`."""
    shape, colour, _ = Path(uri).stem.split("-")
    return shape, colour


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_uvicorn(app, port: int) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1 in a thread; yield its URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
