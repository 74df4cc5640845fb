"""What a search leaves in STUDY_DIR: ``trials.csv`` (every trial), ``best.json`` (the best
trial's train options, for ``cnnlab train --config best.json``), ``summary.json`` (round by
round: ranges, counts, best trials) and ``plots/PARAM.png`` (dev metric against each
parameter, log axis for the log parameters)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from cnnlab.tune import study as st
from cnnlab.tune.space import value_of

__all__ = ["trial_rows", "ranked", "kept_trials", "best_trial", "round_summary", "write_results",
           "format_space"]

_METRIC_COLUMNS = ("dev_error", "train_error", "val_loss", "loss", "epochs", "pruned",
                   "seconds", "parameters")


def _feasible(frozen) -> bool:
    return all(v <= 0 for v in frozen.system_attrs.get("constraints", []))


def ranked(trials, settings: dict) -> list:
    """COMPLETE trials, best first: those meeting every constraint first (by the objective),
    then the others by how far they miss (sum of violations)."""
    sign = -1.0 if settings["direction"] == "maximize" else 1.0
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return sorted(done, key=lambda t: (not _feasible(t),
                                       sum(t.system_attrs.get("constraints", [])),
                                       sign * t.value, t.number))


def best_trial(study, settings: dict):
    """The best COMPLETE trial that meets every constraint (None when there is none)."""
    tops = [t for t in ranked(_cnnlab_trials(study), settings) if _feasible(t)]
    return tops[0] if tops else None


def _cnnlab_trials(study) -> list:
    return sorted((t for t in study.get_trials(deepcopy=False)
                   if "round" in t.user_attrs and t.state.name != "WAITING"),
                  key=lambda t: t.number)


def _params(t, space) -> dict:
    return {p.name: value_of(p, t.params) for p in space if p.optuna_name in t.params}


def trial_rows(study, settings: dict) -> list[dict]:
    """One row per trial that ran (or runs): parameters, dev metric, errors, epochs, state."""
    from cnnlab.tune.space import Param

    space = [Param.from_json(d) for d in settings["params"]]
    rows = []
    for t in _cnnlab_trials(study):
        a = t.user_attrs
        end = t.datetime_complete
        row = {"trial": t.number, "round": a["round"], "slot": a["slot"], "state": t.state.name,
               settings["optimize"]: t.value if t.state.name == "COMPLETE" else None}
        row.update(_params(t, space))
        metrics = a.get("metrics", {})
        for k in _METRIC_COLUMNS:
            row[k] = metrics.get(k)
        row["pruned"] = t.state.name == "PRUNED"
        if row["seconds"] is None and t.datetime_start and end:
            row["seconds"] = (end - t.datetime_start).total_seconds()
        row["feasible"] = _feasible(t) if t.state.name == "COMPLETE" else None
        row["retry_of"] = a.get("retry_of")
        row["worker"] = a.get("worker")
        row["error"] = a.get("error")
        rows.append(row)
    return rows


def format_space(space) -> str:
    return ", ".join(f"{p.name}={p.spec}" for p in space)


def _fmt_params(params: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


def kept_trials(study, settings: dict, r: int) -> list:
    """The best ``ceil(keep * trials)`` COMPLETE trials of rounds 1..r: the next round
    samples the span of their values."""
    trials = [t for q in range(1, r + 1) for t in st.round_trials(study, q)]
    return ranked(trials, settings)[:max(1, math.ceil(settings["keep"] * settings["trials"]))]


def round_summary(study, settings: dict, r: int) -> dict:
    trials = st.round_trials(study, r)
    space = st.get_space(study, r) or []
    best = kept_trials(study, settings, r)
    return {
        "round": r,
        "space": {p.name: p.spec for p in space},
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "failed": sum(t.state.name == "FAIL" for t in trials),
        "kept": [{"trial": t.number, settings["optimize"]: t.value,
                  "round": t.user_attrs["round"], "feasible": _feasible(t),
                  "params": _params(t, space)} for t in best],
    }


def summary_text(summary: dict, metric: str) -> str:
    lines = [f"round {summary['round']}: {summary['complete']} complete, {summary['pruned']} "
             f"pruned, {summary['failed']} failed; kept (best so far):"]
    for k in summary["kept"]:
        flag = "" if k["feasible"] else " (misses a constraint)"
        lines.append(f"  trial {k['trial']} (round {k['round']}): {metric}={k[metric]:.4f} "
                     f"{_fmt_params(k['params'])}{flag}")
    return "\n".join(lines)


def _atomic_text(path: Path, text: str) -> None:
    from cnnlab.train.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write(text.encode()))


def write_results(study, settings: dict, study_dir, rounds_done: int,
                  plots: bool = True) -> dict:
    """Write trials.csv, best.json, summary.json (and the plots); returns the summary."""
    study_dir = Path(study_dir)
    rows = trial_rows(study, settings)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    _atomic_text(study_dir / "trials.csv", buf.getvalue())
    best = best_trial(study, settings)
    summary = {"optimize": settings["optimize"], "direction": settings["direction"],
               "satisfice": settings.get("satisfice", []),
               "rounds": [round_summary(study, settings, r) for r in range(1, rounds_done + 1)],
               "best": None}
    if best is not None:
        space = st.get_space(study, best.user_attrs["round"])
        options = {**settings.get("fixed", {}), **_params(best, space)}
        _atomic_text(study_dir / "best.json", json.dumps(options, indent=2, sort_keys=True)
                     + "\n")
        summary["best"] = {"trial": best.number, "round": best.user_attrs["round"],
                           settings["optimize"]: best.value, "options": options,
                           "run": f"trials/{best.number:05d}"}
    _atomic_text(study_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if plots:
        _plots(study_dir / "plots", rows, settings)
    return summary


def _plots(folder: Path, rows: list[dict], settings: dict) -> None:
    """One PNG per parameter: the dev metric of each finished trial against its value."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is optional
        return
    from cnnlab.tune.space import Param

    metric = settings["optimize"]
    folder.mkdir(parents=True, exist_ok=True)
    for d in settings["params"]:
        p = Param.from_json(d)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        rounds = sorted({row["round"] for row in rows})
        for r in rounds:
            pts = [(row[p.name], row[metric]) for row in rows
                   if row["round"] == r and row["state"] == "COMPLETE" and p.name in row]
            if not pts:
                continue
            xs, ys = zip(*pts)
            if p.kind == "one-minus-log":
                xs = [1.0 - x for x in xs]
            if p.kind == "choice":
                xs = [p.choices.index(x) for x in xs]
            ax.scatter(xs, ys, label=f"round {r}", alpha=0.8)
        if p.kind == "choice":
            ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
        elif p.log_axis:
            ax.set_xscale("log")
        ax.set_xlabel(f"1 - {p.name}" if p.kind == "one-minus-log" else p.name)
        ax.set_ylabel(metric)
        if len(rounds) > 1:
            ax.legend(fontsize=8)
        fig.subplots_adjust(left=0.16, bottom=0.15, right=0.97, top=0.95)
        fig.savefig(folder / f"{p.name}.png", dpi=90)
        plt.close(fig)
