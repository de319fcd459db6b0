"""Convene's tests. Importing this package pins the CPU code paths Whisper runs on (below)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _pin_cpu_numerics() -> None:
    """Same Whisper words on every x86 test machine: CTranslate2's int8 kernels (and MKL's)
    pick code paths by CPU, and on phone audio one word can flip between AVX2 and AVX-512
    ("demo" heard as "Dumbo"). Pinned to AVX2, which x86-64 CI machines have; a setting
    already in the environment wins. Set before CTranslate2 loads (the conftest imports this
    package first). The app itself is not pinned: it runs the fastest path."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return
    if " avx2" in cpuinfo:
        os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX2")
        os.environ.setdefault("MKL_CBWR", "AVX2")


_pin_cpu_numerics()
