"""``cnnlab tune`` end to end: real trainings (tiny), worker processes, SQLite and a real
PostgreSQL server, SIGKILL of the tuner or of a worker mid-trial, --resume, best.json back into
``cnnlab train --config``, and bad specs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from tests.cli.helpers import (
    assert_ok,
    assert_user_error,
    cli_env,
    cnnlab_args,
    make_idx_dataset,
    read_json,
    run_cli,
    show,
)

TIMEOUT = 240


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 4-class synthetic task: 80 train (72 train + 8 dev) and 20 test images."""
    return make_idx_dataset(tmp_path_factory.mktemp("tune-data"), num_classes=4, n_train=80,
                            n_test=20, seed=3)


def fixed(data, epochs=1):
    return ["--set", f"data_dir={data}", "--set", "num_classes=4", "--set", f"epochs={epochs}"]


SPACE = ["--param", "lr=log:1e-4:1e-1", "--param", "beta=one-minus-log:0.9:0.999",
         "--param", "batch_size=choice:16,32"]


def rows(folder):
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def trials_of(url, name):
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    return sorted(study.get_trials(), key=lambda t: t.number)


def sqlite(folder):
    return f"sqlite:///{folder.absolute() / 'study.db'}"


def assert_every_slot_complete_once(trials, rounds, per_round):
    slots = sorted((t.user_attrs["round"], t.user_attrs["slot"]) for t in trials
                   if t.state.name == "COMPLETE")
    assert slots == [(r, s) for r in range(1, rounds + 1) for s in range(per_round)], slots


def test_two_workers_on_sqlite_and_best_json_trains_again(optuna, data, tmp_path):
    # 2 epochs a trial: both workers are up before the first one could take every slot
    r = run_cli("tune", "st", *SPACE, *fixed(data, epochs=2), "--trials", "4", "--workers", "2",
                cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    folder = tmp_path / "st"
    table = rows(folder)
    assert [row["state"] for row in table] == ["COMPLETE"] * 4
    trials = trials_of(sqlite(folder), "st")
    assert_every_slot_complete_once(trials, 1, 4)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # two processes ran trials
    # each with its share of the cores, so that together they do not oversubscribe them
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {t.user_attrs["threads"] for t in trials} == {share}
    assert r.stdout.count("trial ") >= 4 and "val_accuracy=" in r.stdout  # progress lines
    best = read_json(folder / "best.json")
    top = max(float(row["val_accuracy"]) for row in table)
    row = next(row for row in table if float(row["val_accuracy"]) == top)
    assert best == {"lr": float(row["lr"]), "beta": float(row["beta"]),
                    "batch_size": int(row["batch_size"]), "data_dir": str(data),
                    "num_classes": 4, "epochs": 2}
    assert {p.name for p in (folder / "plots").iterdir()} == {"lr.png", "beta.png",
                                                              "batch_size.png"}
    summary = read_json(folder / "summary.json")
    assert summary["rounds"][0]["complete"] == 4
    # the trial's own run folder is a cnnlab train run
    assert (folder / "trials" / f"{summary['best']['trial']:05d}" / "last.npz").is_file()
    r = run_cli("train", "--config", folder / "best.json", "--out", "again", "--quiet",
                cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    config = read_json(tmp_path / "again" / "config.json")
    assert {k: config[k] for k in best} == best


def _start(tmp_path, *args):
    return subprocess.Popen(cnnlab_args("tune", *args), cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _frozen_mid_trial(url, name, deadline=90.0):
    """Wait until a trial (not the first) RUNS in a worker, and freeze that worker (SIGSTOP)
    while the trial is still RUNNING: (trial, worker pid). The caller kills or thaws it."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            running = [t for t in trials_of(url, name)
                       if t.state.name == "RUNNING" and "pid" in t.user_attrs and t.number >= 1]
        except Exception:  # the study is being created
            running = []
        for t in running:
            pid = t.user_attrs["pid"]
            os.kill(pid, signal.SIGSTOP)
            now = {u.number: u for u in trials_of(url, name)}[t.number]
            if now.state.name == "RUNNING":  # frozen mid-trial
                return now, pid
            os.kill(pid, signal.SIGCONT)  # it had just finished: try again
        time.sleep(0.1)
    raise AssertionError("no trial started running")


def _gone(pid, deadline=20.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _check_after_kill(folder, killed, before, per_round=3):
    trials = trials_of(sqlite(folder), "st")
    by_number = {t.number: t for t in trials}
    assert by_number[killed.number].state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == by_number[killed.number].params  # the same slot, re-run
    assert_every_slot_complete_once(trials, 1, per_round)
    for number, value in before.items():  # completed trials kept as they were
        assert by_number[number].state.name == "COMPLETE" and by_number[number].value == value
    table = rows(folder)
    assert [row["state"] for row in table].count("FAIL") == 1
    assert next(row for row in table if row["trial"] == str(retry[0].number))["retry_of"] == \
        str(killed.number)


def _completed(folder):
    return {t.number: t.value for t in trials_of(sqlite(folder), "st")
            if t.state.name == "COMPLETE"}


def test_sigkill_of_the_tuner_then_resume(optuna, data, tmp_path):
    proc = _start(tmp_path, "st", "--param", "lr=log:1e-4:1e-2", *fixed(data, epochs=3),
                  "--trials", "3", "--set", "batch_size=16")
    try:
        killed, worker = _frozen_mid_trial(sqlite(tmp_path / "st"), "st")
        before = _completed(tmp_path / "st")
        proc.kill()  # SIGKILL: the tuner says nothing, its worker sees its pipe close
        proc.wait(30)
        os.kill(worker, signal.SIGCONT)
    finally:
        proc.kill()
    assert _gone(worker), "the worker outlived its tuner"
    states = {t.number: t.state.name for t in trials_of(sqlite(tmp_path / "st"), "st")}
    assert states[killed.number] == "FAIL"  # recorded by the worker before it exited
    r = run_cli("tune", "--resume", "st", cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    _check_after_kill(tmp_path / "st", killed, before)


def test_sigkill_of_a_worker_mid_trial(optuna, data, tmp_path):
    proc = _start(tmp_path, "st", "--param", "lr=log:1e-4:1e-2", *fixed(data, epochs=3),
                  "--trials", "3", "--set", "batch_size=16")
    try:
        killed, worker = _frozen_mid_trial(sqlite(tmp_path / "st"), "st")
        before = _completed(tmp_path / "st")
        os.kill(worker, signal.SIGKILL)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert f"trial {killed.number}: worker 1 died mid-trial (exit status -9)" in out
    _check_after_kill(tmp_path / "st", killed, before)


def test_sigkill_of_everything_then_resume_finds_the_stale_trial(optuna, data, tmp_path):
    proc = _start(tmp_path, "st", "--param", "lr=log:1e-4:1e-2", *fixed(data, epochs=3),
                  "--trials", "3", "--set", "batch_size=16", "--heartbeat", "1")
    try:
        killed, worker = _frozen_mid_trial(sqlite(tmp_path / "st"), "st")
        before = _completed(tmp_path / "st")
        os.kill(proc.pid, signal.SIGSTOP)  # frozen, so it cannot notice its worker die
        os.kill(worker, signal.SIGKILL)
        proc.kill()  # a machine that went away: nobody recorded anything
        proc.wait(30)
    finally:
        proc.kill()
    states = {t.number: t.state.name for t in trials_of(sqlite(tmp_path / "st"), "st")}
    assert states[killed.number] == "RUNNING"
    r = run_cli("tune", "--resume", "st", cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    _check_after_kill(tmp_path / "st", killed, before)


def test_ctrl_c_stops_the_workers_and_resume_finishes(optuna, data, tmp_path):
    proc = _start(tmp_path, "st", "--param", "lr=log:1e-4:1e-2", *fixed(data, epochs=3),
                  "--trials", "3", "--set", "batch_size=16")
    try:
        killed, worker = _frozen_mid_trial(sqlite(tmp_path / "st"), "st")
        before = _completed(tmp_path / "st")
        proc.send_signal(signal.SIGINT)
        os.kill(worker, signal.SIGCONT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "stopped; continue with: cnnlab tune --resume st" in out
    assert _gone(worker)
    r = run_cli("tune", "--resume", "st", cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    _check_after_kill(tmp_path / "st", killed, before)


def test_two_workers_on_postgresql(optuna, postgres_url, data, tmp_path):
    r = run_cli("tune", "st", *SPACE, *fixed(data, epochs=2), "--trials", "4", "--workers",
                "2", "--storage", postgres_url, "--study", "pg-two", cwd=tmp_path,
                timeout=TIMEOUT)
    assert_ok(r)
    trials = trials_of(postgres_url, "pg-two")
    assert_every_slot_complete_once(trials, 1, 4)
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    assert len(rows(tmp_path / "st")) == 4
    assert read_json(tmp_path / "st" / "tune.json")["storage"] == postgres_url


def test_two_machines_share_one_postgresql_study(optuna, postgres_url, data, tmp_path):
    """Two tuners (as on two machines) with the same --study: the rounds' slots are shared
    out, each runs once, and round 2 starts from the same narrowed ranges on both."""
    args = [*SPACE, *fixed(data), "--trials", "3", "--rounds", "2", "--storage",
            postgres_url, "--study", "pg-shared"]
    a = _start(tmp_path, "a", *args)
    b = _start(tmp_path, "b", *args)
    outs = [p.communicate(timeout=TIMEOUT) for p in (a, b)]
    for p, (out, err) in zip((a, b), outs):
        assert p.returncode == 0, out + err
    trials = trials_of(postgres_url, "pg-shared")
    assert_every_slot_complete_once(trials, 2, 3)
    ran = [{int(d.name) for d in (tmp_path / m / "trials").iterdir()} for m in ("a", "b")]
    assert not ran[0] & ran[1]  # no trial ran on both
    assert ran[0] | ran[1] == {t.number for t in trials if t.state.name == "COMPLETE"}
    round2 = [line for out, _ in outs for line in out.splitlines() if "round 2/2" in line]
    assert len(round2) == 2 and round2[0] == round2[1]


def test_joining_with_other_settings_is_an_error(optuna, data, tmp_path):
    r = run_cli("tune", "st", "--param", "lr=log:1e-4:1e-2", *fixed(data), "--trials", "1",
                cwd=tmp_path, timeout=TIMEOUT)
    assert_ok(r)
    url = sqlite(tmp_path / "st")
    r = run_cli("tune", "other", "--param", "lr=log:1e-4:1e-1", *fixed(data), "--trials", "1",
                "--storage", url, "--study", "st", cwd=tmp_path, timeout=TIMEOUT)
    assert_user_error(r, "study 'st' exists with other settings (params differ)")
    r = run_cli("tune", "st", "--param", "lr=log:1e-4:1e-2", cwd=tmp_path)
    assert_user_error(r, "st already holds a study (tune.json)", "--resume st")
    r = run_cli("tune", "--resume", "st", "--trials", "3", "--param", "lr=log:1e-4:1e-2",
                cwd=tmp_path)
    assert_user_error(r, "only --workers may be given (received --param, --trials)")
    r = run_cli("tune", "--resume", "st", cwd=tmp_path, timeout=TIMEOUT)  # nothing left to do
    assert_ok(r)
    assert "round 1: 1 complete" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--param", "lr=log:0:1"], ["parameter 'lr'", "log range needs low > 0"]),
    (["--param", "lr=log:1e-2"], ["parameter 'lr'", "needs two bounds"]),
    (["--param", "lr=gauss:0:1"], ["parameter 'lr'", "kind one of log"]),
    (["--param", "nosuch=log:1e-3:1"], ["parameter 'nosuch' is not a cnnlab train setting"]),
    (["--param", "out=choice:a,b"], ["parameter 'out' is not a cnnlab train setting"]),
    (["--param", "optimizer=log:1e-3:1"], ["parameter 'optimizer'", "choice:a,b"]),
    (["--param", "optimizer=choice:adam,adamx"], ["parameter 'optimizer'", "unknown "
                                                  "optimizer 'adamx'"]),
    (["--param", "batch_size=choice:16,0"], ["parameter 'batch_size'", "--batch-size must "
                                             "be an integer >= 1; received 0"]),
    (["--param", "dropout=uniform:0:1.5"], ["parameter 'dropout'", "--dropout must be in "
                                            "[0, 1)"]),
    (["--param", "lr=log:1e-4:1e-1", "--param", "lr=uniform:0:1"], ["'lr' is given twice"]),
    (["--param", "lr=log:1e-4:1e-1", "--set", "lr=0.1"], ["'lr' is both tuned and fixed"]),
    (["--param", "lr=log:1e-4:1e-1", "--set", "epochs=0"], ["--set epochs", "--epochs must "
                                                           "be an integer >= 1"]),
    (["--param", "lr=log:1e-4:1e-1", "--satisfice", "latency~3"], ["--satisfice",
                                                                    "not metric op number"]),
    (["--param", "lr=log:1e-4:1e-1", "--optimize", "test_accuracy"], ["--optimize",
                                                                     "unknown metric"]),
    ([], ["nothing to tune"]),
])
def test_bad_specs_are_one_line_naming_the_parameter(args, words, tmp_path):
    r = run_cli("tune", "st", *args, cwd=tmp_path)
    assert_user_error(r, *words)
    assert not (tmp_path / "st").exists(), show(r)


def test_bad_space_file(tmp_path):
    (tmp_path / "space.toml").write_text('[params]\nbeta = "one-minus-log:0.9:1.5"\n')
    r = run_cli("tune", "st", "--space", "space.toml", cwd=tmp_path)
    assert_user_error(r, "parameter 'beta'", "0 <= low < high < 1")


def test_space_file_and_fixed_settings(optuna, data, tmp_path):
    (tmp_path / "space.toml").write_text(
        '[params]\nlr = "log:1e-3:1e-2"\n\n'
        f'[fixed]\nepochs = 1\ndata_dir = "{data}"\nnum_classes = 4\nbatch_size = 32\n')
    r = run_cli("tune", "st", "--space", "space.toml", "--trials", "2", cwd=tmp_path,
                timeout=TIMEOUT)
    assert_ok(r)
    best = read_json(tmp_path / "st" / "best.json")
    assert set(best) == {"lr", "epochs", "data_dir", "num_classes", "batch_size"}
    assert 1e-3 <= best["lr"] <= 1e-2 and best["batch_size"] == 32
    config = read_json(tmp_path / "st" / "trials" / "00000" / "config.json")
    assert config["batch_size"] == 32 and config["epochs"] == 1
    assert json.loads((tmp_path / "st" / "tune.json").read_text())["study"] == "st"


def test_without_optuna_the_error_names_the_extra(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "optuna.py").write_text("raise ImportError('No module named optuna')\n")
    env = cli_env()
    env["PYTHONPATH"] = f"{blocker}{os.pathsep}{env['PYTHONPATH']}"
    r = subprocess.run(cnnlab_args("tune", "st", "--param", "lr=log:1e-4:1e-1"), cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert_user_error(r, 'cnnlab tune needs Optuna: pip install "cnnlab[tune]"')
