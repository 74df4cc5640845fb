"""``cnnlab report RUN_DIR [--split dev] [--human-error 0.2%]``: report.html, self-contained.

The run's settings, learning curves (train, train-dev, dev), per-class precision/recall/F1 and
the confusion matrix of the split, the diagnosis, misclassified examples grouped by (true,
predicted) and the likely mislabelled ones; every image inside the page (data: URIs), so the
file can be mailed or opened offline.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cnnlab.cli.common import CLIError

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser("report", help="a self-contained report.html of a run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by cnnlab train")
    p.add_argument("--split", default=None,
                   help="the split whose examples are shown (default dev, else test)")
    p.add_argument("--human-error", default=None, metavar="RATE",
                   help="human-level error for the diagnosis (default: diagnosis.json's)")
    p.add_argument("--out", default=None, help="the page's path (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


def _history(out: Path) -> dict:
    path = out / "history.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    hist = {}
    for row in rows:
        for k, v in row.items():
            try:
                hist.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                hist.setdefault(k, []).append(None)
    return hist


def run(args) -> int:
    import json

    from cnnlab.analysis.report import render_report
    from cnnlab.cli.diagnose import diagnosis_of, parse_rate
    from cnnlab.cli.rundata import arrays_of, probabilities, read_run, run_model, split_of
    from cnnlab.train.checkpoint import atomic_write

    out, settings, m = read_run(args.run_dir)
    split = args.split or ("dev" if "dev_accuracy" in m else "test")
    ds = split_of(out, settings, split)
    model, info = run_model(out)
    classes = info.get("classes") or [str(i) for i in range(info["num_classes"])]
    x, y = arrays_of(ds)
    probs = probabilities(model, x)
    human = None
    if args.human_error is not None:
        human = parse_rate(args.human_error)
    elif (out / "diagnosis.json").is_file():
        try:
            human = json.loads((out / "diagnosis.json").read_text()).get("human")
        except (OSError, json.JSONDecodeError, AttributeError):
            human = None
    try:
        diagnosis, notes = diagnosis_of(out, human)
    except CLIError:
        diagnosis, notes = None, {}
    page = render_report(title=f"cnnlab run {out.name}: {settings.get('model')} on "
                         f"{settings.get('dataset')}", settings=settings,
                         history=_history(out), split=split, classes=classes, images=x,
                         labels=y, probs=probs, diagnosis=diagnosis, notes=notes)
    path = Path(args.out) if args.out else out / "report.html"
    atomic_write(path, lambda f: f.write(page.encode("utf-8")))
    print(f"wrote {path} ({len(page) // 1024} KiB, self-contained)")
    return 0
