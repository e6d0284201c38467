"""Errors that surface from the native store engines (Rust, through PyO3)."""

from __future__ import annotations


def is_engine_panic(exc: BaseException) -> bool:
    """True for a Rust panic surfacing from a native store engine (``pyo3_runtime.PanicException``,
    a BaseException, so that ``except Exception`` does not catch it)."""
    kind = type(exc)
    return kind.__name__ == "PanicException" or kind.__module__ == "pyo3_runtime"
