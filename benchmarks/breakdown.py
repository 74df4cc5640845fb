"""Where a training step's time goes, op by op, on both sides. Not a test.

    python benchmarks/breakdown.py [--model lenet5|resnet20] [--steps 30] [--threads 2]
                                   [--halves]

cnnlab: every op's forward and backward time per step, summed over the step's calls of that op
(a convolution's input gradient that runs the forward formula on dZ counts as its backward).
PyTorch: its profiler's self CPU time per step of each ATen op, for the twin model of
benchmarks/run.py. The batch size, input shapes, optimizer and thread count of run.py's
training rows (random data and weights, not the same draws on both sides).
The sides run one after the other, not alternating, and timing each op (a wrapper around every
forward and backward) adds its own cost: compare the shares of a step, and take the ratios
from run.py.

--halves also times the step as two half batches on two threads, against the whole batch on
one thread and on cnnlab's threads: how far a step can gain from running whole halves of the
batch in parallel. The second half runs through a copy of the model whose weights are set
from the model's before each step (counted in the time), and the two halves' gradients are
averaged: LeNet-5's gradients agree with the whole batch's to rounding; ResNet-20's batch norm
would normalise each half on its own (a timing experiment, not a training method).
"""

from __future__ import annotations

import argparse
import collections
import copy
import sys
import threading
import time
from pathlib import Path

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import models, optim
from cnnlab.ops.parallel import map_chunks
from cnnlab.tensor import Function

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the torch twins and the step functions)

_depth = threading.local()  # .n: timed calls open on this thread (only the outermost counts)
CLOCK = time.perf_counter  # --clock thread: time.thread_time (one thread, a shared machine)


def _timed(method, key: str, totals: dict):
    def wrapper(self, *args):
        outer = getattr(_depth, "n", 0) == 0
        _depth.n = getattr(_depth, "n", 0) + 1
        t0 = CLOCK()
        try:
            return method(self, *args)
        finally:
            _depth.n -= 1
            if outer:
                totals[key] += CLOCK() - t0

    return wrapper


def _timed_kernel(method, key: str, totals: dict):
    def wrapper(self, *args, **kwargs):
        t0 = CLOCK()
        try:
            return method(self, *args, **kwargs)
        finally:
            totals[key] += CLOCK() - t0

    return wrapper


def _instrument(totals: dict) -> None:
    """Time forward and backward of every Function subclass (once, for the whole process),
    and of every convolution kernel (rows "  kernel NAME ...", a part of Conv2d's rows)."""
    for cls in cl.kernels.KERNELS.values():
        for name in ("forward", "backward"):
            if name in vars(cls):
                key = f"  kernel {cls.name} {name}"
                setattr(cls, name, _timed_kernel(vars(cls)[name], key, totals))
    seen, todo = set(), list(Function.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        for name in ("forward", "backward"):
            if name in vars(cls):
                setattr(cls, name, _timed(vars(cls)[name], f"{cls.__name__} {name}", totals))


def _problem(name: str, seed=None):
    """(model, input shape, optimizer kind) of run.py's training row for ``name``."""
    if name == "lenet5":
        return models.get("lenet5", seed=seed), (128, 28, 28, 1), "adam"
    return models.get("resnet20", num_classes=10, seed=seed), (64, 32, 32, 3), "sgd"


def _optimizer(kind: str, params):
    if kind == "adam":
        return optim.Adam(params, lr=1e-3)
    return optim.SGD(params, lr=0.1, momentum=0.9)


def cnnlab_breakdown(name: str, steps: int, rng) -> None:
    model, shape, kind = _problem(name)
    opt = _optimizer(kind, model.parameters())
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, shape[0])
    totals = collections.defaultdict(float)
    _instrument(totals)
    phases = collections.defaultdict(float)

    def step():
        t0 = CLOCK()
        loss = F.cross_entropy(model(cl.Tensor(x)), y)
        t1 = CLOCK()
        opt.zero_grad()
        loss.backward()
        t2 = CLOCK()
        opt.step()
        t3 = CLOCK()
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["optimizer"] += t3 - t2

    for _ in range(5):
        step()
    totals.clear()
    phases.clear()
    for _ in range(steps):
        step()
    total = sum(phases.values())
    print(f"\ncnnlab {name}: {total / steps * 1e3:.2f} ms a step "
          + ", ".join(f"{k} {v / steps * 1e3:.2f}" for k, v in phases.items()))
    print("| op | ms a step | share |\n|---|---|---|")  # kernel rows: parts of Conv2d's
    for key, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        if v / steps >= 5e-6:
            print(f"| {key} | {v / steps * 1e3:.3f} | {v / total:.0%} |")
    in_ops = sum(v for k, v in totals.items() if not k.startswith("  kernel"))
    print(f"| (outside the ops: engine, modules, optimizer) | "
          f"{(total - in_ops) / steps * 1e3:.3f} | |")


def torch_breakdown(torch, name: str, steps: int, rng) -> None:
    from torch.profiler import profile

    _, step = run._train_step_fns(name, torch, 128 if name == "lenet5" else 64, rng)
    for _ in range(5):
        step()
    t0 = CLOCK()
    for _ in range(steps):
        step()
    wall = (CLOCK() - t0) / steps
    with profile() as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    print(f"\ntorch {name}: {wall * 1e3:.2f} ms a step (unprofiled)")
    print("| ATen op (self CPU time) | ms a step | calls a step |\n|---|---|---|")
    for e in rows[:15]:
        print(f"| {e.key} | {e.self_cpu_time_total / 1e3 / steps:.3f} | {e.count // steps} |")


def halves(name: str, rng, rounds: int = 7) -> None:
    """The whole batch on 1 thread, on cnnlab's threads, and as two halves on two threads."""
    model, shape, kind = _problem(name)
    twin = copy.deepcopy(model)
    opt = _optimizer(kind, model.parameters())
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, shape[0])
    n = shape[0]
    parts = [slice(0, n // 2), slice(n // 2, n)]

    def step():
        loss = F.cross_entropy(model(cl.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def half_work(share):
        for part in share:
            m = model if part.start == 0 else twin
            F.cross_entropy(m(cl.Tensor(x[part])), y[part]).backward()

    def step_halves():
        opt.zero_grad()
        for p, q in zip(model.parameters(), twin.parameters()):
            q.data[...] = p.data  # the twin computes with this step's weights
            q.grad = None
        map_chunks(half_work, parts)  # one half a thread; nested calls run inline
        for p, q in zip(model.parameters(), twin.parameters()):
            p.grad += q.grad
            p.grad *= 0.5
        opt.step()

    def median_ms(fn):  # run.py's timing: median of rounds, each the best of 5 after a pause
        return run._median_rounds({"f": fn}, rounds, repeat=5)["f"] * 1e3

    threads = cl.runtime.active().threads
    threaded = median_ms(step)
    two_halves = median_ms(step_halves)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), cl.runtime.configure(threads=1):
        one = median_ms(step)
    print(f"\n{name} step: 1 thread {one:.2f} ms; {threads} threads (batch chunks) "
          f"{threaded:.2f} ms; two halves on two threads {two_halves:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=("lenet5", "resnet20"), default="lenet5")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--halves", action="store_true")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="thread: the calling thread's CPU time (with --threads 1)")
    args = ap.parse_args()
    global CLOCK
    if args.clock == "thread":
        if args.threads != 1:
            ap.error("--clock thread measures one thread only: use --threads 1")
        CLOCK = time.thread_time
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with threadpool_limits(args.threads), cl.runtime.configure(threads=args.threads):
        if args.halves:
            halves(args.model, rng)
            return
        torch_breakdown(torch, args.model, args.steps, rng)
        time.sleep(0.5)
        cnnlab_breakdown(args.model, args.steps, rng)


if __name__ == "__main__":
    main()
