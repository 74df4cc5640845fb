"""``cnnlab tune STUDY_DIR``: hyperparameter search over ``cnnlab train`` options on Optuna.

    cnnlab tune runs/search --param lr=log:1e-4:1e-1 --param batch_size=choice:32,64,128 \\
        --param beta=one-minus-log:0.9:0.999 --set epochs=2 --trials 8 --rounds 2 --workers 2
    cnnlab tune --resume runs/search          # continue after a crash or Ctrl-C
    cnnlab train --config runs/search/best.json

Each trial is a ``cnnlab train`` run in STUDY_DIR/trials/NNNNN. See cnnlab.tune for the study's
layout and how no trial is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.cli.common import CLIError, fraction, int_at_least, positive_int, user_errors

__all__ = ["register", "run", "build_settings"]


def register(sub) -> None:
    p = sub.add_parser("tune", help="hyperparameter search (random, log scale, coarse to fine; "
                       "Optuna)")
    p.add_argument("study_dir", nargs="?", metavar="STUDY_DIR",
                   help="folder of the study: study.db, trials.csv, best.json, plots, runs")
    p.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="a train option to tune: log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH, "
                   "int-log:LOW:HIGH, choice:A,B,C, one-minus-log:LOW:HIGH (repeatable)")
    p.add_argument("--space", metavar="FILE", help="a TOML file with [params] (and [fixed])")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a train option every trial uses, e.g. epochs=2 (repeatable)")
    p.add_argument("--trials", type=positive_int(), default=10, help="trials per round (10)")
    p.add_argument("--rounds", type=positive_int(), default=1,
                   help="coarse-to-fine rounds (1)")
    p.add_argument("--keep", type=fraction(), default=0.25,
                   help="the next round samples the span of the best KEEP x TRIALS trials so "
                   "far (0.25)")
    p.add_argument("--sampler", choices=("random", "tpe"), default="random",
                   help="random search, as the course teaches (default), or Optuna's TPE")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="the same seed draws the same parameters (0)")
    p.add_argument("--optimize", default="val_accuracy",
                   help="dev metric to optimize (val_accuracy; also val_loss, dev_error, ...)")
    p.add_argument("--satisfice", action="append", default=[], metavar="CONSTRAINT",
                   help="a constraint a trial must meet, e.g. 'parameters<=50000' (repeatable)")
    p.add_argument("--prune", action="store_true",
                   help="stop trials whose dev metric is below the median at the same epoch")
    p.add_argument("--workers", type=positive_int(), default=1,
                   help="trials at once, each in its own process (1)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL, e.g. postgresql://user@host/db "
                   "(default sqlite STUDY_DIR/study.db)")
    p.add_argument("--study", default=None, help="study name in the storage (default: the "
                   "folder's name); the same name on several machines shares one study")
    p.add_argument("--heartbeat", type=positive_int(), default=10,
                   help="seconds between a trial's heartbeats; 3 missed: its process is dead")
    p.add_argument("--resume", metavar="STUDY_DIR", default=None,
                   help="continue the study in STUDY_DIR")
    p.set_defaults(func=run)


def _direction(metric: str) -> str:
    return "minimize" if ("loss" in metric or "error" in metric or metric == "seconds"
                          or metric == "parameters") else "maximize"


def _fixed(items, table_fixed: dict) -> dict:
    fixed = dict(table_fixed)
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CLIError(f"--set {item!r} is not NAME=VALUE (e.g. epochs=2)")
        fixed[key.strip()] = value.strip()
    return fixed


def _check_params(params, fixed: dict) -> dict:
    """Every tuned name is a train setting and its values are ones the option accepts; the
    fixed settings likewise. Returns the fixed settings, typed."""
    from cnnlab.cli.train import _DEFAULT_LR, SCHEDULES
    from cnnlab.cli.train_config import convert, options_to_namespace, train_actions

    table = train_actions()
    names = {"optimizer": tuple(_DEFAULT_LR), "schedule": SCHEDULES}
    for p in params:
        action = table.get(p.name)
        if action is None:
            raise CLIError(f"parameter {p.name!r} is not a cnnlab train setting; settings: "
                           f"{', '.join(sorted({a.dest for a in table.values()}))}")
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        if p.kind != "choice" and action.type is None:
            raise CLIError(f"parameter {p.name!r}: --{p.name.replace('_', '-')} takes text; "
                           "tune it with choice:A,B,...")
        for v in values:
            try:
                convert(action, v, f"parameter {p.name!r}:")
            except ValueError as e:
                raise CLIError(str(e)) from None
            if action.dest in names and v not in names[action.dest]:
                raise CLIError(f"parameter {p.name!r}: unknown {action.dest} {v!r}; valid: "
                               f"{', '.join(names[action.dest])}")
        if action.dest in fixed or p.name in fixed:
            raise CLIError(f"parameter {p.name!r} is both tuned and fixed (--set)")
    try:
        ns = options_to_namespace(fixed, "--set")
    except ValueError as e:
        raise CLIError(str(e)) from None
    typed = {}
    for key in fixed:
        dest = table[key.replace("-", "_")].dest
        value = getattr(ns, dest)
        if dest in ("data_dir", "from_checkpoint") and value is not None:
            value = str(Path(value).expanduser().absolute())
        typed[dest] = value
    return typed


def build_settings(args) -> dict:
    """The study's settings from the command line (validated; CLIError on a mistake)."""
    from cnnlab.analysis import parse_constraint
    from cnnlab.cli.tune_worker import METRICS
    from cnnlab.tune.space import SpaceError, load_space_file, parse_params

    try:
        params, table_fixed = parse_params(args.param), {}
        if args.space:
            file_params, table_fixed = load_space_file(args.space)
            params = file_params + params
            parse_params([f"{p.name}={p.spec}" for p in params])  # a name given twice
    except SpaceError as e:
        raise CLIError(str(e)) from None
    if not params:
        raise CLIError("nothing to tune: give --param NAME=SPEC (e.g. lr=log:1e-4:1e-1) or "
                       "--space FILE")
    fixed = _check_params(params, _fixed(args.set, table_fixed))
    if args.optimize not in METRICS:
        raise CLIError(f"--optimize {args.optimize!r}: unknown metric; known: "
                       f"{', '.join(METRICS)}")
    for c in args.satisfice:
        try:
            parse_constraint(c, known=METRICS)
        except ValueError as e:
            raise CLIError(f"--satisfice: {e}") from None
    return {"params": [p.to_json() for p in params], "fixed": fixed, "trials": args.trials,
            "rounds": args.rounds, "keep": args.keep, "sampler": args.sampler,
            "seed": args.seed, "optimize": args.optimize,
            "direction": _direction(args.optimize), "satisfice": list(args.satisfice),
            "prune": bool(args.prune), "version": 1}


def _where(args) -> tuple[Path, str, str, int, dict | None]:
    """(study dir, storage URL, study name, heartbeat, settings or None when resuming)."""
    if args.resume:
        if args.study_dir:
            raise CLIError("give STUDY_DIR or --resume STUDY_DIR, not both")
        folder = Path(args.resume)
        meta_path = folder / "tune.json"
        if not meta_path.is_file():
            raise CLIError(f"--resume {folder}: no tune.json there (not a cnnlab tune folder)")
        defaults = {"param": [], "space": None, "set": [], "satisfice": [], "storage": None,
                    "study": None, "trials": 10, "rounds": 1, "keep": 0.25, "sampler": "random",
                    "seed": 0, "optimize": "val_accuracy", "prune": False, "heartbeat": 10}
        given = [f"--{k}" for k, v in defaults.items() if getattr(args, k) != v]
        if given:
            raise CLIError(f"--resume {folder} continues the study with its own settings; "
                           f"only --workers may be given (received {', '.join(given)})")
        meta = json.loads(meta_path.read_text())
        return folder, meta["storage"], meta["study"], meta.get("heartbeat", 10), None
    if not args.study_dir:
        raise CLIError("give the study's folder: cnnlab tune STUDY_DIR --param ... "
                       "(or --resume STUDY_DIR)")
    folder = Path(args.study_dir)
    if (folder / "tune.json").exists():
        raise CLIError(f"{folder} already holds a study (tune.json); continue it with "
                       f"--resume {folder} or choose another folder")
    settings = build_settings(args)
    url = args.storage or f"sqlite:///{(folder / 'study.db').absolute()}"
    name = args.study or folder.absolute().name
    return folder, url, name, args.heartbeat, settings


def run(args) -> int:
    from cnnlab.cli.common import write_json
    from cnnlab.tune import study as st
    from cnnlab.tune.search import default_command, run_search

    folder, url, name, heartbeat, settings = _where(args)
    with user_errors():
        try:
            if settings is not None:
                folder.mkdir(parents=True, exist_ok=True)
            storage = st.open_storage(url, heartbeat)
            if settings is None:
                study, settings = st.load(storage, name)
            else:
                study = st.create_or_join(storage, name, settings)
                write_json(folder / "tune.json", {"storage": url, "study": name,
                                                  "heartbeat": heartbeat})
        except (ValueError, ConnectionError) as e:
            raise CLIError(str(e)) from None
        print(f"study {name!r} in {st._safe(url)}: {settings['rounds']} round(s) of "
              f"{settings['trials']} trials, {args.workers} worker(s), optimizing "
              f"{settings['optimize']} ({settings['direction']})")
        try:
            summary = run_search(study, settings, folder, workers=args.workers,
                                 command=default_command(), url=url, name=name,
                                 heartbeat=heartbeat)
        except RuntimeError as e:
            raise CLIError(str(e)) from None
        except KeyboardInterrupt:
            print(f"stopped; continue with: cnnlab tune --resume {folder}")
            return 130
    best = summary["best"] if summary else None
    if best is None:
        print("no trial completed" + (" meeting the constraints" if settings["satisfice"]
                                      else "") + "; no best.json written")
        return 1
    print(f"best: trial {best['trial']} (round {best['round']}) "
          f"{settings['optimize']}={best[settings['optimize']]:.4f}")
    print(f"files in {folder}: trials.csv, best.json, summary.json, plots/; train it with: "
          f"cnnlab train --config {folder / 'best.json'}")
    return 0
