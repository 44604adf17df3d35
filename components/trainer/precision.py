"""Mixed-precision choice: bfloat16 on TPU and on CPUs with native bf16, float16 on GPU.

bfloat16 keeps float32's exponent range, so it needs no loss scaling; float16 does
(the training loop wraps the optimizer in a LossScaleOptimizer). On a CPU without
bf16 instructions (no AVX512_BF16 / AMX), bfloat16 is emulated and slower than float32,
so "auto" keeps float32 there.
"""
from __future__ import annotations

from typing import Optional

POLICY_BY_PRECISION = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def cpu_has_native_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def choose_precision(requested: str, device_kind: str, cpu_bf16: Optional[bool] = None) -> str:
    """The Keras mixed-precision policy name for `requested` on `device_kind`.

    Args:
      requested: "auto", "float32", "bfloat16" or "float16".
      device_kind: "tpu", "gpu" or "cpu" (see strategy.strategy_kind).
      cpu_bf16: whether the CPU has native bf16; read from /proc/cpuinfo when None.

    Returns:
      "float32", "mixed_bfloat16" or "mixed_float16".
    """
    if requested != "auto":
        if requested not in POLICY_BY_PRECISION:
            raise ValueError(f"mixed_precision must be auto, float32, bfloat16 or float16, got {requested!r}")
        if requested == "float16" and device_kind == "tpu":
            raise ValueError("float16 is not supported on TPU: use mixed_precision=bfloat16.")
        return POLICY_BY_PRECISION[requested]
    if device_kind == "tpu":
        return "mixed_bfloat16"
    if device_kind == "gpu":
        return "mixed_float16"
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_native_bf16()
    return "mixed_bfloat16" if cpu_bf16 else "float32"
