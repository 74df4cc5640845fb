"""``cnnlab compare RUN_DIR... [--optimize dev_accuracy] [--satisfice "latency_ms<=100"]``.

A table of the runs (accuracy and macro F1 of each split they have, parameters, MACs, batch-1
latency measured with ``nn.Predictor``, training time), then the course's choice: the best run
by the optimizing metric among those meeting every satisficing constraint, and for each
rejected run the constraint it broke (:func:`cnnlab.analysis.select`).
"""

from __future__ import annotations

import json
import time

import numpy as np

from cnnlab.cli.common import CLIError, positive_int

__all__ = ["register", "run", "run_metrics", "batch1_latency_ms"]

_COLUMNS = ("dev_accuracy", "dev_f1", "test_accuracy", "test_f1", "train_dev_accuracy",
            "params", "macs", "latency_ms", "train_seconds")


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare runs; pick the best by one metric among those "
                       "meeting the satisficing constraints")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="folders written by train")
    p.add_argument("--optimize", default="dev_accuracy",
                   help="the optimizing metric (default dev_accuracy; larger is better for "
                   "accuracy/F1, smaller for the rest)")
    p.add_argument("--satisfice", action="append", default=[], metavar="CONSTRAINT",
                   help="a satisficing constraint METRIC OP NUMBER, e.g. latency_ms<=100 "
                   "(repeatable)")
    p.add_argument("--repeats", type=positive_int(), default=30,
                   help="batch-1 predictions timed per run; the median is reported (default 30)")
    p.set_defaults(func=run)


def batch1_latency_ms(model, input_shape, repeats: int = 30, seed: int = 0) -> float:
    """Median wall time (ms) of ``nn.Predictor(model)`` on one image, after three warm-up
    calls (the first traces the model)."""
    from cnnlab import nn

    predict = nn.Predictor(model)
    x = np.random.default_rng(seed).random((1, *input_shape), dtype=np.float32)
    for _ in range(3):
        predict(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def run_metrics(run_dir, repeats: int = 30) -> dict:
    """The metrics of one run: metrics.json's per-split numbers, parameters, MACs, latency."""
    from cnnlab import nn
    from cnnlab.cli.rundata import read_run, run_model

    out, _, m = read_run(run_dir)
    model, info = run_model(out)
    shape = tuple(int(v) for v in info["input_shape"])
    s = nn.summary(model, shape)
    row = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    try:  # the training wall time, which metrics.json leaves out to stay deterministic
        row["train_seconds"] = float(json.loads((out / "timing.json").read_text())
                                     ["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    row.update({"params": s.total_params, "macs": s.total_macs,
                "latency_ms": batch1_latency_ms(model, shape, repeats)})
    return row


def _cell(key, v) -> str:
    if v is None:
        return "-"
    if key in ("params", "macs"):
        return f"{int(v):,}"
    if "accuracy" in key or "f1" in key:
        return f"{v:.4f}"
    return f"{v:.2f}" if key in ("latency_ms", "train_seconds") else f"{v:g}"


def run(args) -> int:
    from cnnlab.analysis.select import select

    names = [str(d).rstrip("/") for d in args.run_dirs]
    if len(set(names)) != len(names):
        raise CLIError("each RUN_DIR may be given once")
    rows = {name: run_metrics(d, args.repeats) for name, d in zip(names, args.run_dirs)}
    columns = [c for c in _COLUMNS if any(c in r for r in rows.values())]
    try:
        s = select(rows, optimize=args.optimize, satisfice=args.satisfice)
    except ValueError as e:
        raise CLIError(str(e).replace("select: ", "--optimize/--satisfice: ")) from None
    width = max(len("run"), *(len(n) for n in names))
    print(f"{'run':{width}s} " + " ".join(f"{c:>14s}" for c in columns) + "  verdict")
    for c in s.candidates:
        cells = " ".join(f"{_cell(k, c.metrics.get(k)):>14s}" for k in columns)
        print(f"{c.name:{width}s} {cells}  {s.reason(c.name)}")
    wanted = ", ".join(map(str, s.constraints)) or "no constraints"
    if s.best is None:
        print(f"no run meets every constraint ({wanted})")
        return 1
    print(f"best by {s.optimize} ({s.mode}) among the runs meeting {wanted}: {s.best} "
          f"({s.optimize} {_cell(s.optimize, rows[s.best][s.optimize])})")
    return 0
