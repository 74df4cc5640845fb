"""Data-parallel training on this machine, and a communication model for a cluster. Not a test.

    # (1) one process x 2 threads, against (2) 2 processes x 1 thread, same global batch:
    python benchmarks/distributed.py steps --threads 2
    mpiexec -n 2 python benchmarks/distributed.py steps --threads 1
    # (3) every zoo model: bytes allreduced per step, time at 1/10/100 Gbit/s, and the batch
    #     per process at which the compute of a step hides that time
    python benchmarks/distributed.py model-table [--processes 8]

(1)/(2): LeNet-5 (28x28x1, batch 128, Adam) and ResNet-20 (32x32x3, batch 64, SGD with
momentum), breakdown.py's problems; the training step of cnnlab.train.Trainer, or of the
DistributedTrainer on each process's half of the same global batch. Rounds of ``--steps``
steps; the table shows the median round. "allreduce" is the time spent in the step's Allreduce
call, the wait for the slower process included; "allreduce alone" is the same buffer's
Allreduce after a barrier (communication only).

(3): bytes = parameters x 4 (float32); a ring allreduce moves 2 (p - 1) / p times the buffer
through each link, so time = bytes x 8 x 2 (p - 1) / p / bandwidth (latency neglected).
t_img = t(2b) / 2b, the time of a training step on 2b images (one thread, the model's input
size; b = 16 for 32x32 models, 1 for 224x224; median of 2 steps after a warm-up) per image;
the batch per process that hides the allreduce is the smallest b with b x t_img >= its time
(free with backward and communication overlapped, which cnnlab does not do yet), and the last
column is what the allreduce costs of a 32-image-per-process step without overlap.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import cnnlab as cl
from cnnlab import models, optim
from cnnlab.train import Trainer

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from breakdown import _optimizer, _problem  # noqa: E402  (the same problems as breakdown.py)


def _world():
    from cnnlab.train.distributed import init_world

    return init_world()


def steps(args) -> None:
    cl.set_num_threads(args.threads)
    world = _world()
    rank, size = (0, 1) if world is None else (world.rank, world.size)
    for name in ("lenet5", "resnet20"):
        model, shape, kind = _problem(name, seed=0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=shape).astype(np.float32)  # the global batch
        y = rng.integers(0, 10, shape[0])
        lo, hi = rank * shape[0] // size, (rank + 1) * shape[0] // size
        opt = _optimizer(kind, model.parameters())
        if world is None:
            trainer = Trainer(model, opt, verbose=False)
        else:
            from cnnlab.train.distributed import DistributedTrainer

            trainer = DistributedTrainer(world, model, opt, verbose=False)
        trainer.train_step(x[lo:hi], y[lo:hi])  # warm-up
        rounds, reduce_ms = [], []
        for _ in range(args.rounds):
            if world is not None:
                world.barrier()
                world.allreduce_seconds = 0.0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step(x[lo:hi], y[lo:hi])
            rounds.append((time.perf_counter() - t0) / args.steps)
            if world is not None:
                reduce_ms.append(1000 * world.allreduce_seconds / args.steps)
        alone = None
        if world is not None:
            buf = np.zeros(sum(p.data.size for p in model.parameters()) + 3, np.float32)
            times = []
            for _ in range(20):
                world.barrier()
                t0 = time.perf_counter()
                world.allreduce_(buf)
                times.append(time.perf_counter() - t0)
            alone = 1000 * statistics.median(times)
        if rank == 0:
            step = statistics.median(rounds)
            extra = "" if world is None else (f", allreduce {statistics.median(reduce_ms):.2f} "
                                              f"ms/step, allreduce alone {alone:.2f} ms")
            print(f"{name}: {size} process(es) x {args.threads} thread(s), batch {shape[0]}: "
                  f"{1 / step:.2f} steps/s ({1000 * step:.1f} ms/step){extra}", flush=True)


def _step_seconds(model, batch: int, rounds: int = 2) -> float:
    """Median time of a training step on ``batch`` random images (after a warm-up)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *model.input_shape)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.0), verbose=False)  # timing only
    trainer.train_step(x, y)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        trainer.train_step(x, y)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_table(args) -> None:
    cl.set_num_threads(1)
    p = args.processes
    ring = 2 * (p - 1) / p
    print(f"p = {p} processes (ring factor 2(p-1)/p = {ring:.2f}); one thread per process\n")
    print("| model | parameters | MB per step | 1 Gbit/s | 10 Gbit/s | 100 Gbit/s | "
          "ms per image (1 thread) | batch per process hiding it, 1 / 10 / 100 Gbit/s | "
          "allreduce share of a 32-image step, 1 / 10 / 100 Gbit/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    names = args.only.split(",") if args.only else models.names()
    for name in names:
        model = models.get(name, seed=0)
        n = sum(p_.data.size for p_ in model.parameters())
        nbytes = 4 * n
        secs = [nbytes * 8 * ring / (g * 1e9) for g in (1, 10, 100)]
        row = (f"| {name} | {n:,} | {nbytes / 1e6:.1f} | {1000 * secs[0]:.0f} ms | "
               f"{1000 * secs[1]:.1f} ms | {1000 * secs[2]:.2f} ms |")
        if name in args.untimed.split(","):
            print(row + " not timed | | |", flush=True)
            continue
        b = 16 if model.input_shape[0] <= 32 else 1
        t_img = _step_seconds(model, 2 * b) / (2 * b)
        hide = " / ".join(str(max(1, int(np.ceil(s_ / t_img)))) for s_ in secs)
        share = " / ".join(f"{100 * s_ / (s_ + 32 * t_img):.2f}%" for s_ in secs)
        print(row + f" {1000 * t_img:.1f} | {hide} | {share} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("steps")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--rounds", type=int, default=5)
    m = sub.add_parser("model-table")
    m.add_argument("--processes", type=int, default=8)
    m.add_argument("--only", default=None, help="comma-separated model names")
    m.add_argument("--untimed", default="", help="models listed without timing (the slow ones)")
    args = ap.parse_args()
    steps(args) if args.what == "steps" else model_table(args)


if __name__ == "__main__":
    main()
