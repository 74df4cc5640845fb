"""The opt-in speed runtime: cnnlab's threads, NumPy's BLAS held to one thread, glibc's allocator.

``import cnnlab`` changes nothing in the process. Outside a runtime every op runs on the calling
thread, with BLAS as the user left it, and glibc's malloc as it was. Inside one::

    with cnnlab.runtime.configure(threads=2):   # or threads=None: cl.get_num_threads()
        fit(model, data)                        # fit() and `cnnlab train` switch it on themselves

three things change, and are given back when the outermost runtime ends:

* **threads**: a convolution (and max pooling's backward, a large dense layer) deals its batch
  chunks to ``threads`` Python threads (ops/parallel.py); afterwards the pool is shut down.
* **BLAS limit** (``threads >= 2``, with threadpoolctl, the ``speed`` extra): NumPy's BLAS runs on
  one thread for as long as the runtime is held, so that its idle workers, which busy-wait after
  each product, do not take the cores from cnnlab's threads (docs/PERFORMANCE.md: a training
  step ~25% slower otherwise). The user's BLAS thread counts are restored on exit.
* **allocator** (``keep_memory``, Linux with glibc): raises malloc's mmap and trim thresholds so
  that the arrays a training step frees are reused by the next step (cnnlab/_malloc.py). On exit
  the thresholds go back to glibc's initial values and the kept memory is trimmed. glibc cannot
  report its settings, so what is "given back" is its documented defaults (and its dynamic
  mmap threshold stays off).

Runtimes nest: an inner one's thread count applies while it is held; the BLAS limit and the
allocator are taken once, by the outermost, and given back when it ends. The runtime is
process-wide (like ``torch.set_num_threads``): enter it from one thread at a time.
"""

from __future__ import annotations

import os
import threading

from cnnlab import _malloc
from cnnlab.ops import parallel

__all__ = ["Runtime", "active", "configure"]

_lock = threading.Lock()
_stack: list = []  # the runtimes held, outermost first
_taken: dict = {"blas": None, "malloc": False}  # what the outermost runtime took


class Runtime:
    """Speed settings, switched on by ``with`` (or :meth:`start` / :meth:`stop`).

    Args:
        threads: batch-chunk threads (>= 1); None: ``cnnlab.get_num_threads()`` (the
            ``CNNLAB_NUM_THREADS`` variable, else the CPUs the process may use).
        keep_memory: keep freed arrays for reuse (glibc); None: on unless
            ``CNNLAB_KEEP_MEMORY=0``.
    """

    def __init__(self, threads=None, keep_memory=None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"runtime.configure: threads must be an int >= 1 or None; "
                             f"received {threads!r}")
        if keep_memory is not None and not isinstance(keep_memory, bool):
            raise ValueError(f"runtime.configure: keep_memory must be True, False or None; "
                             f"received {keep_memory!r}")
        self.threads = threads
        self.keep_memory = keep_memory
        self._held = False

    def start(self) -> Runtime:
        """Switch the settings on (see the module docstring)."""
        with _lock:
            if self._held:
                raise RuntimeError("runtime: this Runtime is already started")
            threads = self.threads or parallel.get_num_threads()
            keep = self.keep_memory
            if keep is None:
                keep = os.environ.get("CNNLAB_KEEP_MEMORY", "1").strip() != "0"
            if not _stack:  # the outermost: take the BLAS limit and the allocator
                _taken["malloc"] = keep and _malloc.keep_freed_memory()
                if threads > 1:
                    _taken["blas"] = _limit_blas()
            _stack.append(self)
            self._held = True
            parallel.activate(threads)
        return self

    def stop(self) -> None:
        """Give back what :meth:`start` took (the outermost runtime: all of it)."""
        with _lock:
            if not self._held:
                return
            _stack.remove(self)
            self._held = False
            if _stack:
                parallel.activate(_stack[-1].threads or parallel.get_num_threads())
                return
            parallel.activate(None)  # also shuts the pool down
            if _taken["blas"] is not None:
                _taken["blas"].restore_original_limits()
                _taken["blas"] = None
            if _taken["malloc"]:
                _malloc.restore_defaults()
                _taken["malloc"] = False

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self):
        state = "held" if self._held else "not held"
        return f"Runtime(threads={self.threads}, keep_memory={self.keep_memory}, {state})"


def configure(threads=None, keep_memory=None) -> Runtime:
    """A :class:`Runtime` with these settings, to use as ``with configure(...):``."""
    return Runtime(threads, keep_memory)


def active():
    """The innermost runtime held, or None."""
    return _stack[-1] if _stack else None


def _limit_blas():
    """threadpoolctl's limiter holding every BLAS to one thread, or None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")
