"""How busy the cores are during a training step at 1 and 2 threads. Not a test.

    python benchmarks/cores.py [--model resnet20|lenet5] [--steps 10] [--rounds 3]

For each thread count, cnnlab's runtime held (and NumPy's BLAS held to the same count with
threadpoolctl, as benchmarks/run.py does), the step of run.py's training rows is timed by the
wall clock and by the process's CPU time (getrusage: every thread, user + system). "cores
busy" is CPU time / wall time: 1.0 at one thread; at two, how much of the second core the step
uses. The voluntary context switches a step count the times a thread slept, mostly waiting for
the GIL (docs/PERFORMANCE.md). Rounds alternate the counts; the table shows their medians.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import models, optim

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _step_fn(name: str):
    """run.py's training step, cnnlab's side: LeNet-5 (batch 128, Adam) or ResNet-20 (batch
    64, SGD with momentum), random data."""
    rng = np.random.default_rng(0)
    if name == "lenet5":
        model, batch, shape = models.get("lenet5"), 128, (28, 28, 1)
        opt = optim.Adam(model.parameters(), lr=1e-3)
    else:
        model, batch, shape = models.get("resnet20", num_classes=10), 64, (32, 32, 3)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    model.train()

    def step():
        loss = F.cross_entropy(model(cl.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _measure(step, threads: int, steps: int) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"), cl.runtime.configure(threads=threads):
        for _ in range(3):  # warm-up: buffers, the thread pool, the allocator
            step()
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(steps):
            step()
        r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"ms": wall / steps * 1e3, "cpu_ms": cpu / steps * 1e3, "busy": cpu / wall,
            "switches": (r1.ru_nvcsw - r0.ru_nvcsw) / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("lenet5", "resnet20"), default="resnet20")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    step = _step_fn(args.model)
    results = {1: [], 2: []}
    for _ in range(args.rounds):
        for threads in results:
            time.sleep(0.3)
            results[threads].append(_measure(step, threads, args.steps))
    print(f"| {args.model} | step (ms) | CPU (ms) | cores busy | voluntary switches a step |")
    print("|---|---:|---:|---:|---:|")
    for threads, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {threads} thread{'s' if threads > 1 else ''} | {med['ms']:.1f} | "
              f"{med['cpu_ms']:.1f} | {med['busy']:.2f} | {med['switches']:.0f} |")


if __name__ == "__main__":
    main()
