"""cnnlab vs PyTorch CPU (eager), side by side in one process. Not a test.

    python benchmarks/run.py [--rounds 5] [--threads 1,2] [--settle 0.3]
                             [--only lenet,resnet,compile,infer,conv,ref,mem]

Each thread count in --threads is measured in turn, in the same process.
(a) LeNet-5 training, MNIST shapes, batch 128, Adam;
(b) ResNet-20 training, 32x32x3, batch 64, SGD with momentum, batch norm;
(c) inference: batch-1 latency and batch-256 throughput, LeNet-5 and ResNet-20: the model
    called under no_grad on both sides, and cnnlab's nn.Predictor (traced, batch norm folded)
    against torch eager and against torch's traced, frozen model (torch.jit);
(d) conv2d forward+backward: LeNet-5's two convolutions, a ResNet-20 3x3 16->16 layer, a 1x1
    bottleneck 64->16;
(e) the nested-loop reference convolution on one small layer, the course's starting point.

Same thread count on both sides (torch.set_num_threads; cnnlab's runtime,
cl.runtime.configure(threads=...), and threadpoolctl for NumPy's BLAS), the same data and
architecture; rounds alternate cnnlab / torch, with a pause before each side's
calls (--settle, so that neither side's idle-spinning worker threads slow the other), and the
table shows the median.
"ratio" is cnnlab throughput / torch throughput (higher is better; > 1 means cnnlab is faster);
for latency rows it is cnnlab time / torch time (lower is better). Peak memory of a training run
is measured per side in a fresh child process (peak RSS growth during 20 training steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import models, optim
from cnnlab.reference import conv_backward, conv_forward


# ------------------------------------------------------------------ torch twins of the zoo models
def torch_lenet5(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def torch_resnet20(torch, num_classes=10):
    nn, Fn = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin

        def forward(self, x):
            out = Fn.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            short = x[:, :, :: self.stride, :: self.stride]
            if self.pad:  # option A: zero-padded channels
                short = Fn.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return Fn.relu(out + short)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            layers, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(3):
                    layers.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.layers(Fn.relu(self.bn1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return ResNet20()


# ------------------------------------------------------------------ timing helpers
SETTLE_S = 0.3  # set by --settle
CLOCK = time.perf_counter  # --clock thread: time.thread_time, the calling thread's CPU time


def _median_rounds(fns: dict, rounds: int, repeat: int) -> dict:
    """Alternate the functions each round; best of ``repeat`` calls per round; median of rounds.

    Before each side's calls, a pause of SETTLE_S seconds: the worker threads of the side that
    just ran (OpenBLAS's, OpenMP's) busy-wait for a while before they sleep, and a call of the
    other side right after shares the cores with them. Without the pause torch's LeNet-5 step
    measured ~33 ms in alternation against 16-25 ms alone; with it, 15-19 ms.
    """
    times = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(rounds):
        for k, f in fns.items():
            time.sleep(SETTLE_S)
            best = float("inf")
            for _ in range(repeat):
                t0 = CLOCK()
                f()
                best = min(best, CLOCK() - t0)
            times[k].append(best)
    return {k: statistics.median(v) for k, v in times.items()}


def _train_step_fns(name: str, torch, batch: int, rng):
    if name == "lenet5":
        shape, k = (28, 28, 1), 10
        ours = models.get("lenet5")
        theirs = torch_lenet5(torch)
        opt = optim.Adam(ours.parameters(), lr=1e-3)
        topt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    else:
        shape, k = (32, 32, 3), 10
        ours = models.get("resnet20", num_classes=10)
        theirs = torch_resnet20(torch)
        opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
        topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = rng.integers(0, k, batch)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    yt = torch.tensor(y)
    ours.train()
    theirs.train()

    def step_ours():
        loss = F.cross_entropy(ours(cl.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def step_theirs():
        loss = torch.nn.functional.cross_entropy(theirs(xt), yt)
        topt.zero_grad()
        loss.backward()
        topt.step()

    return step_ours, step_theirs


def bench_training(torch, rounds, rows, rng, names=("lenet5", "resnet20")):
    """A training step on both sides; also cnnlab without Winograd (kernels.use: banded rows
    and the window matrix only) in the same rounds."""
    for name in names:
        batch = 128 if name == "lenet5" else 64
        ours, theirs = _train_step_fns(name, torch, batch, rng)

        def ours_textbook(ours=ours):
            with cl.kernels.use("banded", "window"):
                ours()

        fns = {"cnnlab": ours, "torch": theirs}
        if name == "resnet20":
            fns["no winograd"] = ours_textbook
        t = _median_rounds(fns, rounds, repeat=3)
        rows.append((f"{name} training, batch {batch} (img/s)", batch / t["cnnlab"],
                     batch / t["torch"], t["torch"] / t["cnnlab"]))
        if "no winograd" in t:
            rows.append((f"{name} training, Winograd off (img/s)", batch / t["no winograd"],
                         batch / t["torch"], t["torch"] / t["no winograd"]))


def bench_compiled(torch, rounds, rows, rng):
    """The training step against torch.compile's (inductor), where it compiles here."""
    for name in ("lenet5", "resnet20"):
        batch = 128 if name == "lenet5" else 64
        ours, theirs = _train_step_fns(name, torch, batch, rng)
        compiled = _torch_compiled_step(torch, name, batch, rng)
        if compiled is None:
            rows.append((f"{name} training vs torch.compile: did not compile", 0, 0, 0))
            continue
        t = _median_rounds({"cnnlab": ours, "compiled": compiled}, rounds, repeat=3)
        rows.append((f"{name} training vs torch.compile (img/s)", batch / t["cnnlab"],
                     batch / t["compiled"], t["compiled"] / t["cnnlab"]))


def _torch_compiled_step(torch, name, batch, rng):
    """A torch training step with the model under torch.compile, or None if it fails."""
    shape = (1, 28, 28) if name == "lenet5" else (3, 32, 32)
    model = torch_lenet5(torch) if name == "lenet5" else torch_resnet20(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt = torch.tensor(rng.random((batch, *shape), dtype=np.float32))
    yt = torch.tensor(rng.integers(0, 10, batch))
    try:
        fast = torch.compile(model)

        def step():
            loss = torch.nn.functional.cross_entropy(fast(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()  # compiles
        return step
    except Exception as e:  # no compiler, or inductor refusing: the row says so
        print(f"torch.compile failed for {name}: {type(e).__name__}: {str(e)[:200]}")
        return None


def _torch_frozen(torch, model, xt):
    """torch's own inference plan (traced, frozen: batch norm folded), or None if it fails."""
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, xt)))
    except Exception:  # TorchScript missing or refusing: the row is left out
        return None


def bench_inference(torch, rounds, rows, rng):
    """model(x) under no_grad on both sides (eager), and cnnlab's Predictor (a traced plan,
    batch norm folded) against both torch eager and torch's traced, frozen model."""
    for name, shape in (("lenet5", (28, 28, 1)), ("resnet20", (32, 32, 3))):
        ours = models.get(name) if name == "lenet5" else models.get(name, num_classes=10)
        theirs = torch_lenet5(torch) if name == "lenet5" else torch_resnet20(torch)
        ours.eval()
        theirs.eval()
        predict = cl.nn.Predictor(ours)
        for batch in (1, 256):
            x = rng.random((batch, *shape), dtype=np.float32)
            xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
            frozen = _torch_frozen(torch, theirs, xt)

            def run_ours():
                with cl.no_grad():
                    ours(cl.Tensor(x))

            def run_theirs():
                with torch.no_grad():
                    theirs(xt)

            def run_frozen():
                with torch.no_grad():
                    frozen(xt)

            fns = {"cnnlab": run_ours, "predictor": lambda: predict(x), "torch": run_theirs}
            if frozen is not None:
                fns["torch frozen"] = run_frozen
            t = _median_rounds(fns, rounds, repeat=20 if batch == 1 else 3)
            pairs = [("inference", "cnnlab", "torch"), ("Predictor", "predictor", "torch")]
            if frozen is not None:
                pairs.append(("Predictor vs torch.jit", "predictor", "torch frozen"))
            for label, mine, theirs_key in pairs:
                a, b = t[mine], t[theirs_key]
                if batch == 1:
                    rows.append((f"{name} {label} latency, batch 1 (ms)", a * 1e3, b * 1e3,
                                 a / b))
                else:
                    rows.append((f"{name} {label}, batch 256 (img/s)", batch / a, batch / b,
                                 b / a))


CONV_SHAPES = [
    ("conv LeNet-5 c1 5x5 1->6 same, b128", (128, 28, 28, 1), (5, 5, 1, 6), 1, 2),
    ("conv LeNet-5 c2 5x5 6->16, b128", (128, 14, 14, 6), (5, 5, 6, 16), 1, 0),
    ("conv ResNet-20 3x3 16->16, b64", (64, 32, 32, 16), (3, 3, 16, 16), 1, 1),
    ("conv ResNet-20 3x3 32->32 @16x16, b64", (64, 16, 16, 32), (3, 3, 32, 32), 1, 1),
    ("conv ResNet-20 3x3 64->64 @8x8, b64", (64, 8, 8, 64), (3, 3, 64, 64), 1, 1),
    ("conv ResNet-20 3x3 32->64 s2, b64", (64, 16, 16, 32), (3, 3, 32, 64), 2, 1),
    ("conv 1x1 bottleneck 64->16, b64", (64, 16, 16, 64), (1, 1, 64, 16), 1, 0),
]


def bench_conv(torch, rounds, rows, rng):
    for name, xs, ws, stride, pad in CONV_SHAPES:
        x = rng.normal(size=xs).astype(np.float32)
        w = (rng.normal(size=ws) * 0.1).astype(np.float32)
        y = F.conv2d(cl.tensor(x), cl.tensor(w), stride=stride, padding=pad)
        gy = rng.normal(size=y.shape).astype(np.float32)
        xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
        gyt = torch.tensor(gy.transpose(0, 3, 1, 2).copy())

        def ours():
            tx, tw = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
            F.conv2d(tx, tw, stride=stride, padding=pad).backward(gy)

        def theirs():
            xt.grad = wt.grad = None
            torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad).backward(gyt)

        t = _median_rounds({"cnnlab": ours, "torch": theirs}, rounds, repeat=3)
        rows.append((f"{name} fwd+bwd (ms)", t["cnnlab"] * 1e3, t["torch"] * 1e3,
                     t["cnnlab"] / t["torch"]))


def bench_reference(torch, rounds, rows, rng):
    x = rng.normal(size=(2, 12, 12, 3))
    w = rng.normal(size=(3, 3, 3, 8))
    gy = rng.normal(size=(2, 12, 12, 8))

    def loops():
        z, cache = conv_forward(x, w, None, 1, 1)
        conv_backward(gy, cache)

    def fast():
        tx, tw = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
        F.conv2d(tx, tw, padding=1).backward(gy)

    t = _median_rounds({"loops": loops, "fast": fast}, min(rounds, 3), repeat=1)
    rows.append(("reference loops vs conv2d, 2x12x12x3 -> 8 (ms)", t["loops"] * 1e3,
                 t["fast"] * 1e3, t["loops"] / t["fast"]))


# ------------------------------------------------------------------ memory (child processes)
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(side: str, name: str, threads: int) -> None:
    """Peak RSS growth of 20 training steps, after imports, model and data are set up.

    Linux only: writing 5 to /proc/self/clear_refs resets the high-water mark (VmHWM), so the
    peak of the training steps alone is read, not that of importing torch.
    """
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    batch = 128 if name == "lenet5" else 64
    ours, theirs = _train_step_fns(name, torch, batch, rng)
    step = ours if side == "cnnlab" else theirs
    with cl.runtime.configure(threads=threads):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
        for _ in range(20):
            step()
        peak = _status_kb("VmHWM")
    print(json.dumps({"peak_growth_mb": (peak - base) / 1024}))


def bench_memory(threads, rows):
    for name in ("lenet5", "resnet20"):
        growth = {}
        for side in ("cnnlab", "torch"):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", side, name,
                 "--threads", str(threads)],
                capture_output=True, text=True, check=True,
            )
            growth[side] = json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_mb"]
        rows.append((f"{name} training peak memory growth (MB)", growth["cnnlab"],
                     growth["torch"], growth["cnnlab"] / max(growth["torch"], 1e-9)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2",
                    help="thread counts, each measured in turn (both sides the same count)")
    ap.add_argument("--only", default="lenet,resnet,compile,infer,conv,ref,mem")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of pause before each side's timed calls")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="thread: the calling thread's CPU time (time.thread_time), for one "
                         "thread on a machine shared with other work (other processes' load "
                         "then barely moves the figures); it does not count other threads")
    ap.add_argument("--memory-child", nargs=2, metavar=("SIDE", "MODEL"))
    args = ap.parse_args()
    global SETTLE_S, CLOCK
    SETTLE_S = args.settle
    if args.clock == "thread":
        CLOCK = time.thread_time
    from threadpoolctl import threadpool_limits

    counts = [int(t) for t in str(args.threads).split(",")]
    if args.clock == "thread" and counts != [1]:
        ap.error("--clock thread measures one thread only: use --threads 1")
    if args.memory_child:
        with threadpool_limits(counts[0]):
            _memory_child(*args.memory_child, counts[0])
        return
    import torch

    only = set(args.only.split(","))
    for threads in counts:
        torch.set_num_threads(threads)
        rng = np.random.default_rng(0)
        rows = []
        with threadpool_limits(threads), cl.runtime.configure(threads=threads):
            names = [n for n, key in (("lenet5", "lenet"), ("resnet20", "resnet")) if key in only]
            bench_training(torch, args.rounds, rows, rng, names)
            if "compile" in only:
                bench_compiled(torch, args.rounds, rows, rng)
            if "infer" in only:
                bench_inference(torch, args.rounds, rows, rng)
            if "conv" in only:
                bench_conv(torch, args.rounds, rows, rng)
            if "ref" in only:
                bench_reference(torch, args.rounds, rows, rng)
        if "mem" in only:
            bench_memory(threads, rows)
        print(f"machine: {platform.processor() or platform.machine()}, threads={threads}, "
              f"rounds={args.rounds}, clock={args.clock}, numpy {np.__version__}, "
              f"torch {torch.__version__}")
        print(f"| {'benchmark':52} | {'cnnlab':>10} | {'torch':>10} | {'ratio':>6} |")
        print(f"|{'-' * 54}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
        for name, a, b, r in rows:
            print(f"| {name:52} | {a:10.2f} | {b:10.2f} | {r:6.2f} |", flush=True)


if __name__ == "__main__":
    main()
