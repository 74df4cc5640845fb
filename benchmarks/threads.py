"""cnnlab alone, batch-chunk threads on and off: what ops/parallel.py gains. Not a test.

    python benchmarks/threads.py [--threads 2] [--repeats 3]

Each benchmark runs in a fresh child process of its own (so that no setting's or benchmark's
threads and heap touch another's), with CNNLAB_NUM_THREADS=1 and then =--threads, alternating,
--repeats times; the table shows the median over the child processes, each child reporting the
median of its own timed calls. No PyTorch in the process: benchmarks/run.py is the side-by-side
comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONVS = [  # name, (N, H, W, C_in), (KH, KW, C_in, C_out), stride, padding
    ("conv LeNet-5 c1 5x5 1->6 same, b128", (128, 28, 28, 1), (5, 5, 1, 6), 1, 2),
    ("conv LeNet-5 c2 5x5 6->16, b128", (128, 14, 14, 6), (5, 5, 6, 16), 1, 0),
    ("conv ResNet-20 3x3 16->16, b64", (64, 32, 32, 16), (3, 3, 16, 16), 1, 1),
    ("conv ResNet-20 3x3 32->64 s2, b64", (64, 16, 16, 32), (3, 3, 32, 64), 2, 1),
    ("conv 3x3 64->64 @32x32, b64", (64, 32, 32, 64), (3, 3, 64, 64), 1, 1),
]


def _median_ms(fn, calls: int) -> float:
    fn()
    fn()  # warm-up: buffers, thread pool
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


BENCHMARKS = [name + " fwd+bwd (ms)" for name, *_ in CONVS] + [
    "lenet5 training step, batch 128 (ms)",
    "resnet20 training step, batch 64 (ms)",
]


def _child(which: int) -> float:
    import numpy as np

    import cnnlab as cl
    from cnnlab import functional as F
    from cnnlab import models, optim

    rng = np.random.default_rng(0)
    if which < len(CONVS):
        name, xs, ws, stride, pad = CONVS[which]
        x = cl.tensor(rng.normal(size=xs).astype(np.float32), requires_grad=True)
        w = cl.tensor((rng.normal(size=ws) * 0.1).astype(np.float32), requires_grad=True)

        def conv():
            z = F.conv2d(x, w, stride=stride, padding=pad)
            z.backward(np.ones(z.shape, np.float32))

        with cl.runtime.configure():  # CNNLAB_NUM_THREADS threads
            return _median_ms(conv, 15)
    model, batch, shape = [("lenet5", 128, (28, 28, 1)), ("resnet20", 64, (32, 32, 3))][
        which - len(CONVS)]
    net = models.get(model) if model == "lenet5" else models.get(model, num_classes=10)
    opt = (optim.Adam(net.parameters(), lr=1e-3) if model == "lenet5"
           else optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    xb = rng.random((batch, *shape), dtype=np.float32)
    yb = rng.integers(0, 10, batch)

    def step():
        loss = F.cross_entropy(net(cl.Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with cl.runtime.configure():  # CNNLAB_NUM_THREADS threads
        return _median_ms(step, 20 if model == "lenet5" else 6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(_child(args.child)))
        return
    t = args.threads
    if t < 2:
        ap.error("--threads must be 2 or more (it is compared with 1)")
    print(f"cnnlab alone, median of {args.repeats} processes per setting")
    print(f"| {'benchmark':52} | {'1 thread':>9} | {f'{t} threads':>10} | {'speed-up':>8} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 12}|{'-' * 10}|")
    for which, key in enumerate(BENCHMARKS):
        results = {1: [], t: []}
        for _ in range(args.repeats):
            for threads in results:
                env = {**os.environ, "CNNLAB_NUM_THREADS": str(threads)}
                run = subprocess.run([sys.executable, __file__, "--child", str(which)], env=env,
                                     capture_output=True, text=True, check=True)
                results[threads].append(json.loads(run.stdout.strip().splitlines()[-1]))
        one, many = statistics.median(results[1]), statistics.median(results[t])
        print(f"| {key:52} | {one:9.2f} | {many:10.2f} | {one / many:8.2f} |", flush=True)


if __name__ == "__main__":
    main()
