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
Applied only by cnnlab's runtime (cnnlab/runtime.py, ``keep_memory``), never on import;
``CNNLAB_KEEP_MEMORY=0`` (exactly "0") leaves glibc's defaults alone. When the runtime ends,
``restore_defaults`` sets glibc's initial thresholds (128 kB) back and trims the heap (glibc
cannot report the values it had, so its dynamic mmap threshold stays off). Elsewhere (macOS,
Windows, musl) both do nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems (a 32-bit glibc
# refuses it, mallopt returns 0 and the trim threshold is then left alone too: no change at all)
TRIM_THRESHOLD = 1 << 30
DEFAULT_THRESHOLD = 128 << 10  # glibc's initial M_MMAP_THRESHOLD and M_TRIM_THRESHOLD


def _libc():
    """glibc's library handle on Linux, else None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (see the module docstring); True when they were set."""
    if os.environ.get("CNNLAB_KEEP_MEMORY", "1").strip() == "0":
        return False
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def restore_defaults() -> bool:
    """glibc's initial thresholds back, and the freed memory kept so far returned to the
    kernel (malloc_trim); True when done."""
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
    )
    libc.malloc_trim(0)
    return done
