"""Keep freed memory in the process from one training step to the next (Linux with glibc).

A training step allocates and frees the same large arrays every time (activations, gradients,
window buffers). glibc serves an array above its mmap threshold (128 kB at first, raised at run
time up to the largest block freed so far) with fresh pages from the kernel and trims freed
memory at the top of its heap back to the kernel; fresh pages are zeroed by the kernel on first
touch. On the project's 2-core machines that was about a quarter of a training step: ResNet-20
(batch 64) 254 -> 191 ms, LeNet-5 (batch 128) 16.7 -> 12.6 ms, medians of three processes each
way. Raising the mmap threshold to glibc's maximum (32 MB) and the trim threshold to 1 GB lets
the next step reuse the heap's pages, as a caching allocator does.

Peak memory did not grow in the measurements (benchmarks/run.py: LeNet-5 and ResNet-20 training
peak RSS growth the same with and without), since the same arrays are alive at the same time
either way; what changes is that memory freed after the peak stays with the process until it
exits: up to 1 GB at the top of each of glibc's heaps (the main one and, with cnnlab's threads,
one per worker thread), plus whatever free blocks sit below the top.
Applied once, when cnnlab is imported; ``CNNLAB_KEEP_MEMORY=0`` (exactly "0") leaves glibc's
defaults alone. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems (a 32-bit glibc
# refuses it, mallopt returns 0 and the trim threshold is then left alone too: no change at all)
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (see the module docstring); True when they were set."""
    if os.environ.get("CNNLAB_KEEP_MEMORY", "1").strip() == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
