"""The search without training: an injected objective whose optimum is known. Coarse-to-fine
narrowing, seeding, pruning (against the median rule computed here), satisficing, and the
bookkeeping that fails and re-runs a trial whose process died."""

from __future__ import annotations

import math
import time

import pytest

from cnnlab.tune import results as res
from cnnlab.tune import study as st
from cnnlab.tune.search import run_search
from cnnlab.tune.space import parse_params
from cnnlab.tune.worker import run_one, run_worker

LR_BEST, BETA_BEST, UNITS_BEST = 1e-3, 0.99, 100


def settings_for(specs, **kw) -> dict:
    s = {"params": [p.to_json() for p in parse_params(specs)], "fixed": {}, "trials": 12,
         "rounds": 1, "keep": 0.25, "sampler": "random", "seed": 0, "optimize": "score",
         "direction": "minimize", "satisfice": [], "prune": False, "version": 1}
    s.update(kw)
    return s


def new_study(tmp_path, settings, name="s"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = st.open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=1)
    return st.create_or_join(storage, name, settings)


def bowl(params, report, number):
    """A bowl in the sampling coordinates whose bottom is (LR_BEST, BETA_BEST, UNITS_BEST)."""
    score = ((math.log10(params["lr"]) - math.log10(LR_BEST)) ** 2
             + (math.log10(1 - params["beta"]) - math.log10(1 - BETA_BEST)) ** 2
             + ((params.get("units", UNITS_BEST) - UNITS_BEST) / 300) ** 2)
    report(1, score)
    return {"score": score}


SPACE = ["lr=log:1e-6:1", "beta=one-minus-log:0.5:0.99999", "units=int:1:1000"]


def params_by_slot(study, settings):
    rows = res.trial_rows(study, settings)
    return {(row["round"], row["slot"]): (row["lr"], row["beta"], row["units"]) for row in rows
            if row["state"] == "COMPLETE"}


def test_coarse_to_fine_narrows_to_the_known_optimum(optuna, tmp_path):
    settings = settings_for(SPACE, rounds=3, trials=16)
    study = new_study(tmp_path, settings)
    lines = []
    summary = run_search(study, settings, tmp_path, objective=bowl, out=lines.append)
    spaces = [{p.name: p for p in st.get_space(study, r)} for r in (1, 2, 3)]
    for name, best in (("lr", LR_BEST), ("beta", BETA_BEST), ("units", UNITS_BEST)):
        widths = [s[name].to_t(s[name].high) - s[name].to_t(s[name].low) for s in spaces]
        widths = [abs(w) for w in widths]
        assert widths[0] > widths[1] > widths[2], (name, widths)  # each round zooms in
        for s in spaces:  # never outside the original range, and the optimum stays inside
            assert spaces[0][name].low <= s[name].low < s[name].high <= spaces[0][name].high
            assert s[name].low <= best <= s[name].high, (name, s[name])
    # the next round's ranges hold every kept trial (the best so far)
    for r in (1, 2):
        for k in res.kept_trials(study, settings, r):
            for name, p in spaces[r].items():
                v = res._params(k, [p])[name]
                assert p.low <= v <= p.high
    rounds = summary["rounds"]
    assert [r["complete"] for r in rounds] == [16, 16, 16]
    best_per_round = [min(t.value for t in st.round_trials(study, r)) for r in (1, 2, 3)]
    assert best_per_round[2] < best_per_round[0]
    assert summary["best"]["score"] == min(best_per_round)
    assert abs(math.log10(summary["best"]["options"]["lr"]) - math.log10(LR_BEST)) < 0.5
    # what it printed: each round's ranges and its kept trials
    text = "\n".join(lines)
    assert "round 2/3: 16 trials in lr=log:" in text and "kept (best so far)" in text
    assert (tmp_path / "trials.csv").read_text().count("\n") == 1 + 48
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"lr.png", "beta.png",
                                                                  "units.png"}


def test_the_same_seed_draws_the_same_parameters(optuna, tmp_path):
    settings = settings_for(SPACE, trials=4, rounds=2, seed=7)
    a = new_study(tmp_path / "a", settings)
    run_search(a, settings, tmp_path / "a", objective=bowl, out=lambda s: None)
    # the same seed, slots run in another order: slot 0 of round 1 is held back and run last
    b = new_study(tmp_path / "b", settings)
    first = st.claim(b, 1)
    assert first.user_attrs["slot"] == 0
    run_worker(b, settings, 1, bowl)
    run_one(b, settings, first, st.get_space(b, 1), bowl, "0", lambda e: None, {})
    run_search(b, settings, tmp_path / "b", objective=bowl, out=lambda s: None)
    assert params_by_slot(a, settings) == params_by_slot(b, settings)
    assert len(params_by_slot(a, settings)) == 8
    other = settings_for(SPACE, trials=4, rounds=2, seed=8)
    c = new_study(tmp_path / "c", other)
    run_search(c, other, tmp_path / "c", objective=bowl, out=lambda s: None)
    assert not set(params_by_slot(a, settings).values()) & set(params_by_slot(c, other).values())


def test_pruning_follows_the_median_rule(optuna, tmp_path):
    """A trial reports 0.1 each epoch when its lr is above 1e-2, else 0.9 (maximized). The
    median pruner (after 3 complete trials) stops a trial at an epoch where it is below the
    median of the complete trials' values at that epoch; here computed by hand."""
    epochs = 4

    def objective(params, report, number):
        value = 0.1 if params["lr"] > 1e-2 else 0.9
        for e in range(1, epochs + 1):
            if report(e, value):
                return {"acc": value, "epochs": e}
        return {"acc": value, "epochs": epochs}

    settings = settings_for(["lr=log:1e-4:1"], trials=14, optimize="acc",
                            direction="maximize", prune=True)
    study = new_study(tmp_path, settings)
    run_search(study, settings, tmp_path, objective=objective, out=lambda s: None)
    complete_values, expected = [], []
    for t in sorted(study.get_trials(), key=lambda t: t.number):
        if t.state.name == "WAITING":
            continue
        value = 0.1 if t.params["lr"] > 1e-2 else 0.9
        median = sorted(complete_values)[len(complete_values) // 2] if complete_values else None
        if len(complete_values) >= 3 and len(complete_values) % 2 == 0:
            s = sorted(complete_values)
            median = (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
        pruned = len(complete_values) >= 3 and value < median
        expected.append("PRUNED" if pruned else "COMPLETE")
        if not pruned:
            complete_values.append(value)
    got = [t.state.name for t in sorted(study.get_trials(), key=lambda t: t.number)]
    assert got == expected
    assert "PRUNED" in got and "COMPLETE" in got
    rows = res.trial_rows(study, settings)
    assert all(row["epochs"] == 1 for row in rows if row["pruned"])  # stopped at once
    assert all(row["epochs"] == epochs for row in rows if not row["pruned"])


def test_satisficing_constraints_pick_the_best_feasible_trial(optuna, tmp_path):
    def objective(params, report, number):
        return {"score": -params["units"], "latency_ms": params["units"] * 0.5}

    settings = settings_for(["units=int:1:1000"], trials=10, satisfice=["latency_ms<=200"])
    study = new_study(tmp_path, settings)
    summary = run_search(study, settings, tmp_path, objective=objective, out=lambda s: None)
    units = [t.params["units"] for t in study.get_trials() if t.state.name == "COMPLETE"]
    feasible = [u for u in units if u * 0.5 <= 200]
    assert feasible and len(feasible) < len(units)  # the constraint bites
    assert summary["best"]["options"]["units"] == max(feasible)
    for t in study.get_trials():
        if t.state.name == "COMPLETE":  # Optuna's constraint value: <= 0 when it holds
            v = t.system_attrs["constraints"][0]
            assert (v <= 0) == (t.params["units"] * 0.5 <= 200)


def test_a_trial_whose_process_died_is_failed_once_and_its_slot_reruns(optuna, tmp_path):
    settings = settings_for(["lr=log:1e-4:1"], trials=3)
    study = new_study(tmp_path, settings)
    dead = st.claim(study, 1)  # claimed, then its process "died" without a word
    # the sampler drew its parameters as a worker does, before it died
    study.sampler = st.make_sampler(settings, 1, dead.user_attrs["slot"])
    trial = optuna.Trial(study, dead._trial_id)
    lr = trial.suggest_float("lr", 1e-4, 1, log=True)
    assert st.fail_and_retry(study, dead._trial_id)
    assert not st.fail_and_retry(study, dead._trial_id)  # a second path finds it failed
    run_search(study, settings, tmp_path, objective=bowl_lr, out=lambda s: None)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert trials[0].state.name == "FAIL"
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["slot"] for t in complete) == [0, 1, 2]  # each slot once
    retry = [t for t in complete if t.user_attrs.get("retry_of") == trials[0].number]
    assert len(retry) == 1 and retry[0].params["lr"] == lr  # re-run with its parameters


def bowl_lr(params, report, number):
    return {"score": (math.log10(params["lr"]) + 3) ** 2}


def test_a_failing_objective_is_recorded_and_not_rerun(optuna, tmp_path):
    def objective(params, report, number):
        if params["lr"] > 0.1:
            raise FloatingPointError("the loss became nan")
        return {"score": params["lr"]}

    settings = settings_for(["lr=log:1e-4:1"], trials=8)
    study = new_study(tmp_path, settings)
    run_search(study, settings, tmp_path, objective=objective, out=lambda s: None)
    trials = [t for t in study.get_trials()]
    assert len(trials) == 8  # no re-runs
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all(t.params["lr"] > 0.1 for t in failed)
    assert all("FloatingPointError: the loss became nan" == t.user_attrs["error"]
               for t in failed)


def test_joining_a_study_with_other_settings_is_refused(optuna, tmp_path):
    settings = settings_for(["lr=log:1e-4:1"], trials=3)
    new_study(tmp_path, settings)
    with pytest.raises(ValueError, match=r"study 's' exists with other settings \(trials "
                                         r"differ\)"):
        new_study(tmp_path, settings_for(["lr=log:1e-4:1"], trials=4))
    study = new_study(tmp_path, settings)  # the same settings: joins, no new slots
    assert len(study.get_trials()) == 3


def test_tpe_sampler_with_a_seed(optuna, tmp_path):
    settings = settings_for(SPACE, trials=14, sampler="tpe", seed=3)
    a = new_study(tmp_path / "a", settings)
    run_search(a, settings, tmp_path / "a", objective=bowl, out=lambda s: None)
    b = new_study(tmp_path / "b", settings)
    run_search(b, settings, tmp_path / "b", objective=bowl, out=lambda s: None)
    assert params_by_slot(a, settings) == params_by_slot(b, settings)  # sequential: same
    assert len(params_by_slot(a, settings)) == 14


def test_threads_per_worker_share_the_cores(monkeypatch):
    from cnnlab.tune import search

    monkeypatch.setattr(search.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [search.threads_per_worker(n) for n in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]


def _claim_all(url: str, name: str, start, out) -> None:
    """A process that claims slots of round 1 until none is left (run by the test below)."""
    storage = st.open_storage(url, heartbeat=10)
    study, _ = st.load(storage, name)
    start.wait()
    got = []
    while (t := st.claim(study, 1)) is not None:
        got.append(t.number)
    out.put(got)


def claim_race(url: str, name: str, processes: int = 4, slots: int = 40) -> list[list[int]]:
    import multiprocessing as mp

    settings = settings_for(["lr=log:1e-4:1"], trials=slots)
    st.create_or_join(st.open_storage(url, heartbeat=10), name, settings)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, name, start, out))
             for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(2)  # all of them waiting at the start line
    start.set()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return got


def test_claims_are_atomic_on_sqlite(optuna, tmp_path):
    """Processes claiming at once never get the same slot (SQLite ignores SELECT FOR UPDATE;
    cnnlab's BEGIN IMMEDIATE makes the WAITING -> RUNNING change atomic)."""
    got = claim_race(f"sqlite:///{tmp_path / 'race.db'}", "race")
    numbers = [n for g in got for n in g]
    assert sorted(numbers) == list(range(40))  # every slot claimed, none twice


def test_claims_are_atomic_on_postgresql(optuna, postgres_url):
    got = claim_race(postgres_url, "race-pg")
    numbers = sorted(n for g in got for n in g)
    assert numbers == sorted(set(numbers)) and len(numbers) == 40


def test_a_trial_claimed_by_a_process_that_died_at_once_is_rerun(optuna, tmp_path):
    """Claimed, then the process died before its first heartbeat (no pid recorded): the
    heartbeat check cannot see it; the tuner fails it once it is a minute old."""
    import datetime

    settings = settings_for(["lr=log:1e-4:1"], trials=2)
    study = new_study(tmp_path, settings)
    dead = st.claim(study, 1)
    long_ago = datetime.datetime.now() - datetime.timedelta(minutes=2)
    from sqlalchemy import text

    with study._storage._backend.engine.begin() as c:  # its claim, two minutes ago
        c.execute(text("UPDATE trials SET datetime_start = :t WHERE trial_id = :i"),
                  {"t": long_ago, "i": dead._trial_id})
    run_search(study, settings, tmp_path, objective=bowl_lr, out=lambda s: None)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert trials[0].state.name == "FAIL"
    assert_slots = sorted(t.user_attrs["slot"] for t in trials if t.state.name == "COMPLETE")
    assert assert_slots == [0, 1]


# A worker that is killed (SIGKILL) after it claimed a slot and recorded its pid, before it
# announced the trial on stdout: the first time it builds a sampler (tune.worker.run_one does
# that between the two), then an ordinary worker whose objective is the bowl in lr.
_DIES_AFTER_CLAIM = """
import math, os, signal, sys
from pathlib import Path
from cnnlab.tune import study as st, worker
marker = Path(os.environ["CNNLAB_TEST_MARKER"])
real = st.make_sampler
def make_sampler(*args, **kwargs):
    if not marker.exists():
        marker.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
st.make_sampler = make_sampler
def make_objective(settings, study_dir):
    return lambda params, report, number: {"score": (math.log10(params["lr"]) + 3) ** 2}
sys.exit(worker.serve(make_objective))
"""


def test_a_worker_killed_before_announcing_its_trial_is_rerun(optuna, tmp_path, monkeypatch):
    """The tuner learns a trial's start from the worker's stdout; a worker killed between its
    claim (the store says RUNNING, with its pid) and that line is still a death mid-trial: the
    trial is failed and its slot re-run, not the whole search stopped (CI saw it stop)."""
    import sys

    settings = settings_for(["lr=log:1e-4:1"], trials=2)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = st.create_or_join(st.open_storage(url, heartbeat=1), "s", settings)
    monkeypatch.setenv("CNNLAB_TEST_MARKER", str(tmp_path / "killed"))
    said = []
    run_search(study, settings, tmp_path, workers=1, url=url, name="s", heartbeat=1,
               command=[sys.executable, "-c", _DIES_AFTER_CLAIM], out=said.append)
    assert (tmp_path / "killed").exists()
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["pid"] > 0
    assert "trial 0: worker 1 died mid-trial (exit status -9); recorded as failed, its slot " \
           "runs again" in said
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["slot"] for t in complete) == [0, 1]
    assert [t.user_attrs.get("retry_of") for t in complete].count(0) == 1
