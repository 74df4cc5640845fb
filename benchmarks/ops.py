"""Forward+backward time of conv2d, cnnlab vs PyTorch CPU, in one process.

    python benchmarks/ops.py [--rounds 7] [--threads 2] [--settle 0.3]

For each shape: the median over ``rounds`` alternating rounds (cnnlab, then torch) of one
forward and backward pass with gradients for input, weights and bias, each round the best of 3
calls after a pause of --settle seconds (the worker threads of the side that just ran busy-wait
for a while before they sleep; without the pause they share the cores with the other side's
calls, which then measure slower than they are). Ratio = cnnlab / torch time (lower is better;
below 1 cnnlab is faster). Not a test: speed lives here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cnnlab as cl
from cnnlab import functional as F

SHAPES = [
    # name, (N, H, W, C_in), (KH, KW, C_in, C_out), stride, padding
    ("LeNet-5 conv1 5x5 1->6 same", (128, 28, 28, 1), (5, 5, 1, 6), 1, "same"),
    ("LeNet-5 conv2 5x5 6->16 valid", (128, 14, 14, 6), (5, 5, 6, 16), 1, "valid"),
    ("3x3 64->64 same @32x32", (64, 32, 32, 64), (3, 3, 64, 64), 1, "same"),
]


def _time(fn, settle: float, repeat: int = 3) -> float:
    time.sleep(settle)  # let the other side's worker threads go idle
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cnnlab-threads", type=int, default=None,
                    help="cnnlab's batch-chunk threads (its runtime); default --threads")
    ap.add_argument("--settle", type=float, default=0.3)
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(args.threads), cl.runtime.configure(
            threads=args.cnnlab_threads or args.threads):  # batch-chunk threads
        for name, xs, ws, stride, padding in SHAPES:
            x = rng.normal(size=xs).astype(np.float32)
            w = (rng.normal(size=ws) * 0.1).astype(np.float32)
            b = np.zeros(ws[3], np.float32)
            gy = rng.normal(size=F.conv2d(cl.tensor(x), cl.tensor(w), padding=padding,
                                          stride=stride).shape).astype(np.float32)

            def ours():
                tx, tw, tb = (cl.tensor(a, requires_grad=True) for a in (x, w, b))
                F.conv2d(tx, tw, tb, stride=stride, padding=padding).backward(gy)

            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
            wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
            bt = torch.tensor(b, requires_grad=True)
            gyt = torch.tensor(gy.transpose(0, 3, 1, 2).copy())

            def theirs():
                xt.grad = wt.grad = bt.grad = None
                torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding).backward(gyt)

            ours(), theirs()  # warm-up
            a, t = [], []
            for _ in range(args.rounds):
                a.append(_time(ours, args.settle))
                t.append(_time(theirs, args.settle))
            ma, mt = statistics.median(a), statistics.median(t)
            rows.append((name, ma * 1e3, mt * 1e3, ma / mt))
    print(f"threads={args.threads}, rounds={args.rounds}, settle={args.settle}s, float32, "
          "forward+backward")
    print(f"{'shape':34} {'cnnlab ms':>10} {'torch ms':>10} {'ratio':>7}")
    for name, ma, mt, r in rows:
        print(f"{name:34} {ma:10.2f} {mt:10.2f} {r:7.2f}")


if __name__ == "__main__":
    main()
