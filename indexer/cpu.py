"""What this CPU runs fast, read without importing torch.

The precision a CPU model should run in depends on the machine: bf16 is several times faster
than fp32 where AMX or avx512_bf16 does the arithmetic and several times slower where it is
emulated; int8 (dynamic quantization, fbgemm kernels) is the lever on AVX2 and AVX-512 VNNI
machines without them. The flags come from ``/proc/cpuinfo`` (Linux); elsewhere none are known
and ``auto`` means fp32. ``ANYSHOT_CPU_FLAGS`` (space-separated) stands in for the machine's
flags, so that every path can be tested on one machine.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.config import ModelSettings

FLAGS_OVERRIDE_ENV = "ANYSHOT_CPU_FLAGS"
FAST_BF16_FLAGS = frozenset({"amx_bf16", "amx_tile", "avx512_bf16"})
INT8_KERNEL_FLAGS = frozenset({"avx2", "avx512_vnni", "avx_vnni"})
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def _cpuinfo_fields() -> dict[str, str]:
    """The first CPU's ``/proc/cpuinfo`` fields (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _proc_cpu_flags() -> frozenset[str]:
    fields = _cpuinfo_fields()
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``unknown cpu``."""
    return _cpuinfo_fields().get("model name") or "unknown cpu"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``ANYSHOT_CPU_FLAGS`` when set, else ``/proc/cpuinfo``)."""
    override = os.environ.get(FLAGS_OVERRIDE_ENV)
    if override is not None:
        return frozenset(override.split())
    return _proc_cpu_flags()


def has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when bf16 matrix work runs natively (AMX or avx512_bf16)."""
    return bool((cpu_flags() if flags is None else flags) & FAST_BF16_FLAGS)


def has_int8_kernels(flags: frozenset[str] | None = None) -> bool:
    """True on x86 CPUs whose int8 kernels beat fp32 (AVX2, AVX-512 VNNI, AVX-VNNI)."""
    flags = cpu_flags() if flags is None else flags
    x86 = platform.machine().lower() in {"x86_64", "amd64", "i686", "x86"}
    return x86 and bool(flags & INT8_KERNEL_FLAGS)


def resolve_cpu_precision(precision: str) -> str:
    """The precision a CPU model runs in: ``auto`` becomes bf16, int8 or fp32.

    ``auto`` is bf16 where it is native, int8 where int8 kernels exist without fast bf16
    (the usual AVX2 machine: ~1.7x fp32), fp32 elsewhere. Other values are returned as given.
    """
    if precision != "auto":
        return precision
    if has_fast_bf16():
        return "bf16"
    if has_int8_kernels():
        return "int8"
    return "fp32"


def text_tower_int8(settings: ModelSettings) -> bool:
    """Whether a CPU text tower runs in int8.

    ``text_int8`` decides when set; when left empty, the text tower is int8 exactly when the
    model's CPU precision resolves to int8. A CUDA model never runs an int8 tower.
    """
    if settings.device.startswith("cuda"):
        return False
    if settings.text_int8 is not None:
        return settings.text_int8
    return resolve_cpu_precision(settings.precision) == "int8"


def int8_weight_type(flags: frozenset[str] | None = None) -> str:
    """ONNX Runtime's int8 weight type for this CPU: signed (``QInt8``) where VNNI multiplies
    int8 without saturating (2.5x unsigned weights on a Xeon with AVX-512 VNNI), unsigned
    (``QUInt8``) elsewhere (AVX2's ``vpmaddubsw`` saturates signed pairs: cosine to fp32 0.988
    instead of 0.9998 on ViT-B-32's image tower)."""
    flags = cpu_flags() if flags is None else flags
    return "QInt8" if flags & VNNI_FLAGS else "QUInt8"
