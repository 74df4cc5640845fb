"""The MPI world of a data-parallel run: who am I (rank), how many are we (size), and the few
collectives training needs, each with a deadline.

mpi4py is imported lazily, only when a run really is distributed: ``import cnnlab`` and every
single-process run work without it. A process started by ``mpiexec`` is recognised by the
launcher's environment (Open MPI's ``OMPI_COMM_WORLD_SIZE``, MPICH/Intel MPI's ``PMI_SIZE``,
PMIx's ``PMIX_RANK`` with ``OMPI_COMM_WORLD_SIZE``), so that ``mpiexec -n 2 cnnlab train`` without
mpi4py installed says so in one line instead of training two unrelated models.

Hot path: the gradients travel as one flat float32 buffer, summed in place by a non-blocking
``Iallreduce`` that is polled against a deadline; metadata at start-up travels as JSON text in
uint8 buffers. No Python object is pickled.

A collective that gets no answer within ``timeout`` seconds (a process died, or hangs) makes
the waiting process print one line and call ``MPI_Abort``, which ends every process of the
run: a stuck peer never makes training hang forever.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

__all__ = [
    "MPI_EXTRA",
    "DistributedError",
    "World",
    "launched_size",
    "launched_rank",
    "import_mpi",
    "init_world",
]

MPI_EXTRA = 'pip install "cnnlab[mpi]"'
DEFAULT_TIMEOUT = 120.0  # seconds a collective may wait for the slowest process

# environment variables the launchers set for each process: (size, rank)
_LAUNCHER_VARS = (
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),  # Open MPI
    ("PMI_SIZE", "PMI_RANK"),  # MPICH (hydra), Intel MPI
    ("PMIX_SIZE", "PMIX_RANK"),  # other PMIx launchers
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),  # MVAPICH
)


class DistributedError(RuntimeError):
    """The processes of a data-parallel run cannot go on together (one line, said by rank 0)."""


def _env_int(name: str, environ) -> int | None:
    try:
        return int(environ[name])
    except (KeyError, ValueError):
        return None


def launched_size(environ=None) -> int:
    """How many processes the MPI launcher started (1 when not started by one)."""
    return _launched(0, 1, environ)


def launched_rank(environ=None) -> int:
    """This process's rank according to the launcher's environment (0 when not launched)."""
    return _launched(1, 0, environ)


def _launched(which: int, default: int, environ) -> int:
    """The first launcher's (size, rank) variable ``which`` that is set, else ``default``."""
    environ = os.environ if environ is None else environ
    for names in _LAUNCHER_VARS:
        value = _env_int(names[which], environ)
        if value is not None:
            return value
    return default


def import_mpi(what: str = "data-parallel training"):
    """``mpi4py.MPI``, or ImportError naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{what} needs mpi4py and an MPI library, which are not installed "
                          f"({e}); install them with: {MPI_EXTRA}") from None
    return MPI


class World:
    """The processes of one run over an MPI communicator.

    Attributes:
        rank: this process's number, 0 .. size-1; rank 0 writes files and prints.
        size: the number of processes p.
        timeout: seconds any collective waits before the run is aborted.
    """

    def __init__(self, comm=None, timeout: float = DEFAULT_TIMEOUT):
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        if not timeout > 0:
            raise ValueError(f"World: timeout must be > 0 seconds; received {timeout!r}")
        self.timeout = float(timeout)
        self.allreduce_seconds = 0.0  # time spent in allreduce_ (waiting included)
        self.allreduce_calls = 0

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    # ------------------------------------------------------------ waiting with a deadline
    def _wait(self, request, what: str) -> None:
        """Poll ``request`` until it completes; past the deadline, abort the whole run."""
        if request.Test():
            return
        deadline = time.monotonic() + self.timeout
        polls = 0
        while not request.Test():
            polls += 1
            # spin briefly (a step's allreduce usually completes within microseconds of the
            # last process arriving), then yield the core to the process being waited for
            time.sleep(0 if polls < 200 else 0.0005)
            if time.monotonic() > deadline:
                self.abort(f"rank {self.rank}: no answer from the other processes within "
                           f"{self.timeout:g} s during {what} (a process died or hangs); "
                           "stopping every process of the run")

    def abort(self, message: str, code: int = 3) -> None:
        """Print ``cnnlab: error: message`` and end every process of the run (MPI_Abort)."""
        print(f"cnnlab: error: {message}", file=sys.stderr, flush=True)
        self.comm.Abort(code)

    # ------------------------------------------------------------ collectives
    def allreduce_(self, buf: np.ndarray, what: str = "the gradient allreduce") -> np.ndarray:
        """Sum ``buf`` (a contiguous ndarray) over all processes, in place; returns it."""
        start = time.perf_counter()
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self._wait(request, what)
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        return buf

    def bcast_(self, array: np.ndarray, root: int = 0, what: str = "a broadcast") -> np.ndarray:
        """Overwrite ``array`` (contiguous) with root's, in place; returns it."""
        self._wait(self.comm.Ibcast(array, root=root), what)
        return array

    def barrier(self, what: str = "a barrier") -> None:
        self._wait(self.comm.Ibarrier(), what)

    def bcast_json(self, obj=None, root: int = 0, what: str = "a broadcast"):
        """Root's JSON-able ``obj`` on every process (sent as UTF-8 text, not pickled)."""
        blob = np.frombuffer(json.dumps(obj).encode(), np.uint8) if self.rank == root else None
        n = np.array([0 if blob is None else len(blob)], np.int64)
        self.bcast_(n, root, what)
        buf = blob.copy() if blob is not None else np.empty(int(n[0]), np.uint8)
        self.bcast_(buf, root, what)
        return json.loads(buf.tobytes().decode())

    def allgather_json(self, obj, what: str = "an allgather") -> list:
        """Every process's JSON-able ``obj``, in rank order, on every process."""
        blob = np.frombuffer(json.dumps(obj).encode(), np.uint8)
        sizes = np.zeros(self.size, np.int64)
        self._wait(self.comm.Iallgather(np.array([len(blob)], np.int64), sizes), what)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out = np.empty(int(sizes.sum()), np.uint8)
        spec = [out, (sizes.tolist(), offsets.tolist()), self.MPI.BYTE]
        self._wait(self.comm.Iallgatherv(blob, spec), what)
        return [json.loads(out[o : o + s].tobytes().decode()) for o, s in zip(offsets, sizes)]


def init_world(timeout: float = DEFAULT_TIMEOUT) -> World | None:
    """The World when this process was started by an MPI launcher with more than one process,
    else None (a plain single-process run). Raises ImportError naming the extra when the
    launcher started several processes but mpi4py is missing."""
    if launched_size() <= 1:
        return None
    import_mpi(f"this process was started by mpiexec as rank {launched_rank()} of "
               f"{launched_size()}: data-parallel training")
    world = World(timeout=timeout)
    if world.size <= 1:
        return None
    return world
