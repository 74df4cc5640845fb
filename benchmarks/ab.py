"""A change's gain on a training step: this tree against a git revision, in one process. Not a test.

    python benchmarks/ab.py --base REV --swap MODULE:NAME [--swap ...] [--model lenet5|resnet20]
                            [--rounds 21] [--threads 2]

e.g. ``--base HEAD~1 --swap cnnlab.ops.conv:Conv2d``. The module's source at REV is loaded beside
the current one, and before each step NAME (a class or function that the rest of cnnlab looks up
in MODULE when it runs) is set to the revision's or the tree's. The two sides alternate, in
changing order, with a short pause before each round (best of 5 steps); the table shows each
side's median and the median of the per-round ratios. This VM's speed drifts by 2x within
minutes, so two processes (one per version) differ more than the change; in one process,
alternating, a few percent shows.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import cnnlab as cl
from cnnlab import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import breakdown  # noqa: E402  (run.py's training problems)


def _load_at(rev: str, module: str):
    """MODULE as it was at REV, loaded as a separate module (its imports are today's)."""
    path = "src/" + module.replace(".", "/") + ".py"
    try:
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"ab.py: cannot read {path} at {rev}: {e.stderr.strip()}")
    spec = importlib.util.spec_from_loader(module + "_at_base", loader=None)
    old = importlib.util.module_from_spec(spec)
    old.__file__ = f"{rev}:{path}"
    exec(compile(source, old.__file__, "exec"), old.__dict__)  # our own repository's code
    return old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--swap", action="append", required=True, metavar="MODULE:NAME")
    ap.add_argument("--model", choices=("lenet5", "resnet20"), default="lenet5")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    swaps = []  # (module, name, base value, current value)
    for item in args.swap:
        module, _, name = item.partition(":")
        if not name:
            sys.exit(f"ab.py: --swap takes MODULE:NAME; received {item!r}")
        current = importlib.import_module(module)
        base = _load_at(args.base, module)
        swaps.append((current, name, getattr(base, name), getattr(current, name)))

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    sides = {}
    for side in ("base", "tree"):  # the same starting weights on both sides
        model, shape, kind = breakdown._problem(args.model, seed=0)
        sides[side] = (model, breakdown._optimizer(kind, model.parameters()))
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, shape[0])

    def step(side):
        for module, name, base, current in swaps:
            setattr(module, name, base if side == "base" else current)
        model, opt = sides[side]
        loss = F.cross_entropy(model(cl.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    times = {"base": [], "tree": []}
    with threadpool_limits(args.threads), cl.runtime.configure(threads=args.threads):
        for side in sides:
            for _ in range(5):
                step(side)
        for r in range(args.rounds):
            for side in ("base", "tree") if r % 2 == 0 else ("tree", "base"):
                time.sleep(0.1)
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    step(side)
                    best = min(best, time.perf_counter() - t0)
                times[side].append(best)
    ratio = statistics.median(t / b for t, b in zip(times["tree"], times["base"]))
    print(f"{args.model} training step, {args.rounds} rounds, {args.threads} threads, "
          f"base {args.base}: base {statistics.median(times['base']) * 1e3:.2f} ms, "
          f"tree {statistics.median(times['tree']) * 1e3:.2f} ms, tree/base {ratio:.3f}")


if __name__ == "__main__":
    main()
