"""Opening an exported tower with ONNX Runtime: one CPU session and the JSON metadata its
exporter wrote (no torch; the text and image towers share it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from indexer.errors import ModelError

Info = TypeVar("Info")


def open_tower(
    path: Path,
    metadata_key: str,
    parse: Callable[[str], Info],
    *,
    what: str,
    unusable: type[ModelError],
    threads: int | None = None,
    inter_op_threads: int | None = None,
) -> tuple[Any, Info]:
    """Open an exported tower on the CPU and read its anyshot metadata entry.

    Args:
        path: The exported ``.onnx`` file.
        metadata_key: The ONNX metadata entry that holds the exporter's JSON.
        parse: Turns that entry into the tower's info (raises ValueError, TypeError or
            KeyError when it is not one).
        what: The tower, for the message (``"text tower"``).
        unusable: The error to raise.
        threads: Intra-op threads; None: ONNX Runtime's default.
        inter_op_threads: Inter-op threads; None: ONNX Runtime's default.

    Returns:
        The inference session and the tower's info.

    Raises:
        ModelError: ``unusable``, with one line, when the file cannot be loaded or holds no
            such entry.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # ORT's warnings about unused initializers are noise
    if threads:
        options.intra_op_num_threads = threads
    if inter_op_threads:
        options.inter_op_num_threads = inter_op_threads
    # Threads that spin between calls steal the cores of everything else (decoding workers,
    # other processes): a tower is called often enough, and cheaply enough, to wait passively.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        info = parse(session.get_modelmeta().custom_metadata_map[metadata_key])
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/...; JSON, KeyError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise unusable(f"cannot use the {what} {path}: {first}") from exc
    return session, info
