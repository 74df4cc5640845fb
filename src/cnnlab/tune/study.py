"""The study in Optuna's storage: settings, the trial slots of every round, claiming a slot,
and failing a trial whose process died (so that no trial is lost and none is run twice).

How a study is laid out (SQLite ``STUDY_DIR/study.db`` or PostgreSQL, same either way):

* study user attribute ``cnnlab_tune``: the settings (space, trials per round, rounds, keep,
  sampler, seed, objective, constraints, pruning) -- a tuner that joins the study with other
  settings is refused; ``space:R``: round R's ranges (round 1: the space as given).
* ``rounds x trials`` *slots*, enqueued once when the study is created: WAITING trials with
  user attributes ``round`` and ``slot``. A worker claims one with an atomic
  WAITING -> RUNNING transition of the storage (:func:`claim`), so two workers, on one machine
  or many, never run the same slot, and a round runs exactly ``trials`` slots.
* The parameters of slot s of round r are drawn by a sampler seeded from (seed, r, s), so the
  same ``--seed`` draws the same parameters whatever the number of workers or machines and
  whatever the order in which slots finish, and a resumed study draws what it would have.
* A trial whose process died mid-trial (SIGKILL of the worker or of the tuner, a machine that
  went away) is set FAIL and its slot enqueued again with the same parameters by Optuna's
  ``RetryHeartbeatStaleTrialCallback`` (up to ``MAX_RETRIES`` times): the failed
  trial stays in the study as a record, the re-run gets a new trial number and the user
  attribute ``retry_of``. Three paths lead there, all through the storage's atomic state
  change, so a trial is failed and re-enqueued once: the tuner sees its worker exit mid-trial;
  a worker sees its tuner's pipe close; or, when both died, the trial's heartbeat (recorded by
  the worker every ``heartbeat`` seconds) goes stale and :func:`optuna.storages.fail_stale_trials`
  fails it (called by any tuner working on the study, e.g. ``cnnlab tune --resume``).
* Trials that fail for a reason of their own (the loss diverged, an error in training) are
  recorded FAIL with the reason and not re-run: they would fail again.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

__all__ = ["MAX_RETRIES", "SETTINGS_KEY", "open_storage", "create_or_join", "claim",
           "fail_and_retry", "round_trials", "make_sampler", "make_pruner", "get_space",
           "set_space", "import_optuna"]

MAX_RETRIES = 2  # re-runs of a slot whose process died (a trial that kills its worker stops)
SETTINGS_KEY = "cnnlab_tune"
_READY_KEY = "cnnlab_slots_ready"


def import_optuna():
    """Optuna, quiet, or an ImportError naming the extra."""
    try:
        import optuna
    except ImportError:
        raise ImportError('cnnlab tune needs Optuna: pip install "cnnlab[tune]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: str, heartbeat: int = 10):
    """Optuna's RDBStorage for ``url`` (sqlite:///... or postgresql://...), with heartbeats
    every ``heartbeat`` seconds and a trial declared dead after 3 missed ones."""
    optuna = import_optuna()
    from optuna.storages import RDBStorage

    url = _driver(url)
    engine_kwargs = {}
    if url.startswith("sqlite"):  # several processes write: wait for the lock, do not fail
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs,
                             heartbeat_interval=int(heartbeat), grace_period=3 * int(heartbeat),
                             heartbeat_stale_trial_callback=_retry())
        if url.startswith("sqlite"):
            _sqlite_wal(storage)
        return storage
    except (ImportError, ModuleNotFoundError) as e:
        extra = "tune-postgres" if "psycopg" in str(e) else "tune"
        raise ImportError(f"storage {_safe(url)} needs a driver ({e}): pip install "
                          f'"cnnlab[{extra}]"') from None
    except optuna.exceptions.StorageInternalError as e:
        raise ConnectionError(f"storage {_safe(url)}: cannot open it ({e})") from None
    except Exception as e:  # SQLAlchemy's connection errors: one line, no password
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConnectionError(f"storage {_safe(url)}: cannot open it ({first})") from None


def _sqlite_wal(storage) -> None:
    """SQLite for several processes: every transaction starts with BEGIN IMMEDIATE, in
    write-ahead-log mode, with synchronous=NORMAL.

    BEGIN IMMEDIATE takes the write lock before the transaction's first read, so Optuna's
    read-check-write state changes (WAITING -> RUNNING when a slot is claimed, RUNNING ->
    FAIL) are atomic: SQLite ignores the SELECT ... FOR UPDATE that makes them atomic on
    PostgreSQL, and without this two workers could claim the same slot (seen). WAL lets
    readers go on while one writes; synchronous=NORMAL makes a commit no fsync (a crash of a
    process loses nothing committed; only a power cut may lose the last transactions)."""
    import sqlalchemy

    engine = storage.engine

    def on_connect(connection, record):
        connection.isolation_level = None  # pysqlite's own BEGIN off: we say when
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    sqlalchemy.event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened before the listeners get the settings too


def _driver(url: str) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed: psycopg 3 (the
    tune-postgres extra; SQLAlchemy 2.1's default) or else psycopg2. An explicit
    ``postgresql+DRIVER://`` is left alone."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://" + url[len("postgresql://"):]
    raise ImportError(f"storage {_safe(url)} needs a PostgreSQL driver: pip install "
                      '"cnnlab[tune-postgres]"')


def _retry():
    """Optuna's callback that enqueues a failed trial's slot again with its parameters."""
    from optuna import storages

    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
    return (retry or storages.RetryFailedTrialCallback)(max_retry=MAX_RETRIES)


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"
    return url


def _direction(settings: dict) -> str:
    return settings["direction"]


def create_or_join(storage, name: str, settings: dict):
    """The study ``name``: created with its settings and slots, or joined when it exists with
    the same settings (another machine, or ``--resume``). Raises ValueError on other settings."""
    optuna = import_optuna()
    try:
        study = optuna.create_study(storage=storage, study_name=name,
                                    direction=_direction(settings))
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        created = False
    if created:
        study.set_user_attr(SETTINGS_KEY, settings)
        study.set_user_attr("space:1", settings["params"])
        for r in range(1, settings["rounds"] + 1):
            for s in range(settings["trials"]):
                study.enqueue_trial({}, user_attrs={"round": r, "slot": s})
        study.set_user_attr(_READY_KEY, True)
    else:
        import time

        for _ in range(600):  # another tuner is creating it right now: its slots come soon
            attrs = study.user_attrs
            if attrs.get(_READY_KEY):
                break
            time.sleep(0.1)
        else:
            raise ValueError(f"study {name!r} exists but its slots were never written (its "
                             "creator died while creating it); delete it or choose another "
                             "--study")
        theirs = attrs.get(SETTINGS_KEY)
        if theirs is None:
            raise ValueError(f"study {name!r} exists and was not made by cnnlab tune")
        if theirs != settings:
            diff = sorted(k for k in set(theirs) | set(settings)
                          if theirs.get(k) != settings.get(k))
            raise ValueError(f"study {name!r} exists with other settings ({', '.join(diff)} "
                             "differ); join it with the same settings, or use --resume")
    study.pruner = make_pruner(settings)
    return study


def load(storage, name: str):
    """An existing study and its settings (for --resume and the workers)."""
    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ValueError(f"no study {name!r} in the storage") from None
    settings = study.user_attrs.get(SETTINGS_KEY)
    if settings is None:
        raise ValueError(f"study {name!r} was not made by cnnlab tune")
    study.pruner = make_pruner(settings)
    return study, settings


def get_space(study, r: int):
    """Round r's Params, or None when it has not been decided yet."""
    from cnnlab.tune.space import Param

    space = study.user_attrs.get(f"space:{r}")
    return None if space is None else [Param.from_json(d) for d in space]


def set_space(study, r: int, params) -> None:
    # every tuner computes the same narrowed space from the same finished round, so writing
    # it twice (two machines) writes the same value
    study.set_user_attr(f"space:{r}", [p.to_json() for p in params])


def make_pruner(settings: dict):
    optuna = import_optuna()
    if settings.get("prune"):
        # median of the trials so far at the same epoch, after a few trials have finished
        return optuna.pruners.MedianPruner(n_startup_trials=settings.get("prune_startup", 3),
                                           n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def _constraints(frozen) -> list:
    return frozen.system_attrs.get("constraints", [0.0])


def make_sampler(settings: dict, r: int, slot: int):
    """The sampler that draws slot ``slot`` of round ``r``: seeded from (seed, r, slot)."""
    optuna = import_optuna()
    seed = int(np.random.SeedSequence([settings["seed"], r, slot]).generate_state(1)[0])
    if settings["sampler"] == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, constraints_func=_constraints if settings.get("satisfice") else None)
    return optuna.samplers.RandomSampler(seed=seed)


def claim(study, r: int):
    """Atomically take a WAITING slot of round ``r`` (set it RUNNING); its FrozenTrial or None."""
    optuna = import_optuna()
    from optuna.trial import TrialState

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: t.number):
        if t.user_attrs.get("round") != r:
            continue
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return study._storage.get_trial(t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def fail_and_retry(study, trial_id: int) -> bool:
    """Set a RUNNING trial FAIL and enqueue its slot again with the same parameters (Optuna's
    retry callback); False when it had already finished (someone else did it)."""
    optuna = import_optuna()
    from optuna.trial import TrialState

    try:
        if not study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    _retry()(study, study._storage.get_trial(trial_id))
    return True


def round_trials(study, r: int) -> list:
    """Every trial of round ``r`` (all states), by number."""
    return sorted((t for t in study.get_trials(deepcopy=False)
                   if t.user_attrs.get("round") == r), key=lambda t: t.number)


def settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)
