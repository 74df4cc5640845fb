"""Helpers of the MPI tests: the environment of a 2-process run on this machine, and mpiexec.

The processes talk over shared memory only (``OMPI_MCA_btl=self,sm``: no TCP transport is
even opened), one thread each, and may run as root (CI does). Every run has a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cnnlab.cli.mpi import find_mpiexec
from tests.oracles import missing

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 120  # seconds: any one mpiexec; the tests' own runs take a few seconds
WORKER = Path(__file__).resolve().parent / "worker.py"


def require_mpiexec() -> str:
    """mpiexec, with mpi4py importable; skips when missing, fails when oracles are required."""
    try:
        import mpi4py  # noqa: F401  (mpi4py.MPI is not imported: it would start MPI here)
    except ImportError:
        mpiexec = None
    else:
        mpiexec = find_mpiexec()
    if mpiexec is None:
        missing('mpi4py and mpiexec are not installed (pip install "cnnlab[mpi]")')
    return mpiexec


def mpi_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    env.update({
        "PYTHONUNBUFFERED": "1",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm",  # shared memory between the processes, no network
        "OMPI_MCA_rmaps_base_oversubscribe": "1",  # CI's 2 cores may be busy
        "CNNLAB_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    env.update(extra)
    return env


def cnnlab(*args) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *map(str, args)]


def run(cmd, cwd, timeout: float = TIMEOUT, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env or mpi_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def show(result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def cnnlab_errors(stderr: str) -> list[str]:
    """The lines cnnlab printed as errors (the launcher adds its own report around them)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("cnnlab: error: ")]
