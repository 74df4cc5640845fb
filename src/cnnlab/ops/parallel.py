"""Batch chunks on all the processor's cores, while cnnlab's runtime is held.

A convolution walks its batch in chunks (cnnlab/kernels), and the chunks are independent: each
copies its windows into a matrix and multiplies it by the kernel. NumPy does the copy on one
core and BLAS spreads the product over its own threads; on a 2-core machine the copy, a third to
a half of the time, leaves the second core idle. Inside the runtime (cnnlab/runtime.py) the
chunks are dealt round-robin to its thread count of Python threads instead (the calling thread
takes the first share), each running its products on one BLAS thread (the runtime holds BLAS
to one thread), so copies and products both run on every core. NumPy and BLAS release the GIL
while they work, so the Python threads do not wait on each other.

Outside a runtime (``import cnnlab`` alone), or without threadpoolctl (the ``speed`` extra),
the chunks run one after the other on the calling thread, with BLAS as the user set it. Called
from inside a share (a nested call), or while another of the user's threads holds the region,
they also run on the calling thread. The results are the same up to the order of floating-point
sums: a given thread count, without concurrent callers, gives the same bits every run.

``get_num_threads()`` is the count a runtime uses when given none: ``CNNLAB_NUM_THREADS`` if
set, else the CPUs this process may use; ``cnnlab.set_num_threads(n)`` changes it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = [
    "activate", "batch_chunks", "get_num_threads", "map_chunks", "set_num_threads", "share_count",
    "sum_parts",
]

_lock = threading.Lock()  # one threaded region at a time
_local = threading.local()  # .inside: this thread is running a share
# threads: the default count (get_num_threads); active: the held runtime's count (None: no
# runtime, everything on the calling thread); pool: the worker threads, workers: their native
# ids, placed_for: the caller's CPU they were pinned away from (_place_workers), getcpu:
# sched_getcpu or False; blas: whether threadpoolctl (which the runtime's BLAS limit needs) is
# importable
_state = {"threads": None, "active": None, "pool": None, "workers": [], "placed_for": None,
          "getcpu": None, "blas": None}


def _default_threads() -> int:
    env = os.environ.get("CNNLAB_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(
                f"CNNLAB_NUM_THREADS must be a positive integer; received {env!r}"
            ) from None
        if n < 1:
            raise ValueError(f"CNNLAB_NUM_THREADS must be a positive integer; received {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads a runtime deals batch chunks to when given no count (see the module docstring)."""
    if _state["threads"] is None:
        _state["threads"] = _default_threads()
    return _state["threads"]


def set_num_threads(n: int) -> None:
    """The thread count a runtime uses when given none (n >= 1; like torch.set_num_threads)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an int >= 1; received {n!r}")
    _state["threads"] = n


def activate(threads) -> None:
    """Deal chunks to ``threads`` threads from now on (None: none, and the pool shut down).
    Called by cnnlab.runtime, which also holds BLAS to one thread meanwhile."""
    with _lock:
        if _state["pool"] is not None and threads != _state["active"]:
            _state["pool"].shutdown(wait=True)  # a new size: a new pool when next needed
            _state["pool"], _state["workers"], _state["placed_for"] = None, [], None
        _state["active"] = threads


def share_count() -> int:
    """How many shares map_chunks deals the chunks into, given enough chunks (1: no threads)."""
    return (_state["active"] or 1) if _threadpoolctl() else 1


def _threadpoolctl() -> bool:
    """Whether threadpoolctl is importable: without it BLAS cannot be held to one thread."""
    if _state["blas"] is None:
        try:
            import threadpoolctl  # noqa: F401
        except ImportError:
            _state["blas"] = False
        else:
            _state["blas"] = True
    return _state["blas"]


def batch_chunks(n: int, bytes_per_image: int, chunk_bytes: int) -> list:
    """Slices of a batch of n images, each about ``chunk_bytes`` of a per-image buffer (>= 1
    image), of equal size (to one image). When there is enough work (half a chunk or more) their
    number is rounded up to a multiple of the threads, so that every thread gets as much; below
    that, waking a thread (~50-250 us) would cost what it saves.
    """
    total = n * bytes_per_image
    count = max(1, -(-total // chunk_bytes))  # ceil
    if total >= chunk_bytes // 2:
        threads = share_count()
        count = -(-count // threads) * threads
    count = min(n, count)
    bounds = [n * i // count for i in range(count + 1)] if n else []
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def sum_parts(parts: list):
    """The shares' partial sums added in share order (the same order for a given thread count)."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def map_chunks(work, chunks: list) -> list:
    """``[work(share) for share in shares]``: the chunks dealt round-robin into one share per
    thread (share i holds chunks i, i + T, i + 2T, ...), the shares run at once, the results in
    share order. ``work`` must write only to the parts of its outputs that its chunks own, or
    return partial results for the caller to combine (in share order, so that a given thread
    count always gives the same sums).
    """
    threads = min(share_count(), len(chunks))
    if threads <= 1 or getattr(_local, "inside", False) or not _lock.acquire(blocking=False):
        return [work(chunks)]
    try:
        threads = min(share_count(), len(chunks))  # again: the runtime may have changed
        if threads <= 1:
            return [work(chunks)]
        if _state["pool"] is None:
            _state["workers"] = []
            _state["pool"] = ThreadPoolExecutor(
                max_workers=_state["active"] - 1, thread_name_prefix="cnnlab",
                initializer=_register_worker,
            )
        _place_workers()
        shares = [chunks[i::threads] for i in range(threads)]
        futures = [_state["pool"].submit(_run_share, work, s) for s in shares[1:]]
        try:
            first = _run_share(work, shares[0])
        finally:
            wait(futures)  # no share runs on past the lock
        return [first, *(f.result() for f in futures)]  # raises a share's error, if any
    finally:
        _lock.release()


def _register_worker() -> None:
    """Runs first in each worker thread: note its id for _place_workers."""
    _state["workers"].append(threading.get_native_id())


def _place_workers() -> None:
    """Keep the worker threads off the caller's CPU (Linux; elsewhere nothing).

    After an idle spell the kernel wakes a worker on the CPU of the thread that woke it, and the
    caller's share and the worker's then share one CPU until the load balancer moves one of
    them, some 10 calls later: LeNet-5 conv2 forward+backward took 4.6-4.7 ms for the first
    calls after a 0.3 s pause and 2.8 ms after (benchmarks/run.py and ops.py pause before each
    side's calls, so every convolution row there was hit). With the workers pinned off the
    caller's CPU: 2.7-2.9 ms from the first call. Only the workers are restricted (to the CPUs
    this process may use, less the caller's), never the caller; they follow when it moves.
    """
    here = _current_cpu()
    if here is None or here == _state["placed_for"]:
        return
    others = os.sched_getaffinity(0) - {here}  # the kernel still balances the workers on these
    if not others:
        return
    try:
        for tid in list(_state["workers"]):
            os.sched_setaffinity(tid, others)
    except OSError:  # a worker gone, or not allowed: leave the placement to the kernel
        return
    if len(_state["workers"]) == (_state["active"] or 1) - 1:  # every worker placed
        _state["placed_for"] = here


def _current_cpu():
    """The CPU the calling thread runs on (glibc's sched_getcpu), or None where unknown."""
    if not hasattr(os, "sched_setaffinity"):  # not Linux
        return None
    if _state["getcpu"] is None:
        try:
            import ctypes

            getcpu = ctypes.CDLL(None).sched_getcpu
            getcpu.restype = ctypes.c_int
            _state["getcpu"] = getcpu
        except Exception:  # no such symbol (not glibc), or no C library to open
            _state["getcpu"] = False
    if not _state["getcpu"]:
        return None
    cpu = _state["getcpu"]()
    return cpu if cpu >= 0 else None


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's worker threads (and maybe a held lock)."""
    global _lock
    _lock = threading.Lock()
    _state["pool"], _state["workers"], _state["placed_for"] = None, [], None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _run_share(work, share):
    _local.inside = True
    try:
        return work(share)
    finally:
        _local.inside = False
