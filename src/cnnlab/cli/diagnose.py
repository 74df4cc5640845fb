"""``cnnlab diagnose RUN_DIR [--human-error 0.2%]``: the course's table of errors and gaps.

Reads the run's metrics.json (the error on each split ``cnnlab train`` evaluated), prints human,
train, train-dev, dev and test error with their 95% intervals, the gaps between them, where to
focus and what to try, and writes ``diagnosis.json`` in the run folder with the same names as
:class:`cnnlab.analysis.Diagnosis`. A gap that needs a split the run lacks is absent (null),
and the table says which option produces it.
"""

from __future__ import annotations

from cnnlab.cli.common import CLIError, write_json
from cnnlab.cli.rundata import read_run

__all__ = ["register", "run", "parse_rate"]

_NAMES = {"human": "human", "train": "train", "train_dev": "train-dev", "dev": "dev",
          "test": "test"}
_GAP_TEXT = {"avoidable_bias": "avoidable bias", "variance": "variance",
             "data_mismatch": "data mismatch", "dev_overfitting": "dev overfitting"}
# what each missing input needs, for the table and the json
_NEEDS = {"human": "give --human-error (e.g. 0.2%)",
          "train_dev": "train with --train-dev-fraction F",
          "test": "the run has no test split (train with --test-data)"}


def parse_rate(text: str, option: str = "--human-error") -> float:
    """'0.2%' -> 0.002, '0.002' -> 0.002; a rate in [0, 1]."""
    t = text.strip()
    scale = 0.01 if t.endswith("%") else 1.0
    try:
        value = float(t.rstrip("%")) * scale
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise CLIError(f"{option} must be an error rate such as 0.2% or 0.002 (in [0, 1]); "
                       f"received {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("diagnose", help="bias, variance, data mismatch of a run: where to focus")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by cnnlab train")
    p.add_argument("--human-error", default=None, metavar="RATE",
                   help="human-level error, the proxy for Bayes error (e.g. 0.2%% or 0.002)")
    p.set_defaults(func=run)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _missing_notes(d) -> dict:
    notes = {}
    for gap, high, low in (("avoidable_bias", "train", "human"),
                           ("data_mismatch", "dev", "train_dev"),
                           ("dev_overfitting", "test", "dev")):
        if getattr(d, gap) is None:
            missing = next(k for k in (low, high) if getattr(d, k) is None)
            notes[gap] = f"not measured: {_NEEDS[missing]}"
    if d.variance_from == "dev":
        notes["variance"] = ("measured as dev - train (no training-dev set: train with "
                             "--train-dev-fraction F to tell variance from data mismatch)")
    return notes


def table(d, notes: dict) -> str:
    lines = [f"{'error':12s} {'rate':>8s}  {'95% interval':19s} {'images':>7s}"]
    for key in ("human", "train", "train_dev", "dev", "test"):
        v = getattr(d, key)
        lo_hi = d.intervals.get(key)
        ci = "" if lo_hi is None else f"[{_pct(lo_hi[0])}, {_pct(lo_hi[1])}]"
        size = d.sizes.get(key)
        rate = _pct(v) if v is not None else "-"
        lines.append(f"{_NAMES[key]:12s} {rate:>8s}  {ci:19s} {'' if size is None else size:>7}"
                     + ("" if v is not None or key not in _NEEDS else f"  ({_NEEDS[key]})"))
    lines.append("")
    lines.append(f"{'gap':16s} {'size':>8s}  {'95% interval':21s} significant")
    for gap, text in _GAP_TEXT.items():
        v = getattr(d, gap)
        ci = d.gap_intervals.get(gap)
        ci = "" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]"
        sig = {True: "yes", False: "no", None: "-"}[d.significant.get(gap)]
        row = f"{text:16s} {_pct(v):>8s}  {ci:21s} {sig}"
        if gap in notes:
            row += f"  ({notes[gap]})"
        lines.append(row)
    lines.append("")
    lines.append(f"focus: {d.focus}")
    lines.extend(f"  - {r}" for r in d.remedies)
    return "\n".join(line.rstrip() for line in lines)


def diagnosis_of(run_dir, human=None):
    """(Diagnosis, notes) for a run folder."""
    from cnnlab.analysis.diagnose import from_metrics

    out, _, m = read_run(run_dir)
    for key in ("train_accuracy", "dev_accuracy"):
        if key not in m:
            split = key.split("_")[0]
            hint = ("train with --val-fraction F or --dev-data" if split == "dev"
                    else "it was trained before the diagnosis existed: train it again")
            raise CLIError(f"{out / 'metrics.json'}: no {key} ({hint})")
    try:
        d = from_metrics(m, human=human)
    except (ValueError, TypeError) as e:
        raise CLIError(f"{out / 'metrics.json'}: {e}") from None
    return d, _missing_notes(d)


def _source_note(settings: dict) -> str | None:
    """A note when dev and test come from different sources (the course: same distribution)."""
    dev, test = settings.get("dev_data"), settings.get("test_data")
    if (dev is None) == (test is None):  # both the dataset's own, or both from elsewhere
        return None
    where = {None: "the training data's own split"}
    return (f"dev ({where.get(dev, dev)}) and test ({where.get(test, test)}) come from "
            "different sources: choose them from the same distribution, the one the model "
            "will meet")


def run(args) -> int:
    human = None if args.human_error is None else parse_rate(args.human_error)
    d, notes = diagnosis_of(args.run_dir, human)
    _, settings, _ = read_run(args.run_dir)
    source = _source_note(settings)
    if source:
        notes["dev_test"] = source
    print(table(d, notes))
    if source:
        print(f"\nnote: {source}")
    path = f"{args.run_dir.rstrip('/')}/diagnosis.json"
    write_json(path, {**d.to_dict(), "notes": notes})
    print(f"\nwrote {path}")
    return 0
