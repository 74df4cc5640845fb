"""Callbacks (early stopping, checkpoints, lr schedule, loggers) and fit's l2 / clip_norm."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from cnnlab import nn, optim
from cnnlab.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LRScheduler,
    ModelCheckpoint,
    fit,
    load_checkpoint,
)
from tests.train.helpers import assert_bitwise_equal, bars, small_cnn, weights


class Inject(Callback):
    """Overwrite ``logs[key]`` with ``values[epoch]`` for the callbacks listed after it."""

    def __init__(self, key, values):
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    def __init__(self):
        self.saved = []

    def on_epoch_end(self, epoch, logs):
        self.saved.append(weights(self.trainer.model))


def _fit(callbacks, epochs, val=True, model=None, resume=None):
    x, y = bars(48, seed=0)
    model = model or small_cnn(seed=0, dropout=0.25)
    history = fit(
        model,
        (x, y),
        bars(24, seed=1) if val else None,
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        epochs=epochs,
        batch_size=16,
        callbacks=callbacks,
        resume=resume,
        verbose=False,
    )
    return model, history


# ------------------------------------------------------------------------ EarlyStopping
def test_early_stopping_stops_after_patience_epochs_without_improvement():
    es = EarlyStopping("val_loss", patience=2)
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3 (Keras, Lightning).
    _, h = _fit([Inject("val_loss", [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0, 1.0]), es], epochs=8)
    assert h.epochs == 4 and h.stopped_early
    assert (es.best, es.best_epoch, es.stopped_epoch, es.wait) == (4.0, 1, 3, 2)


def test_early_stopping_patience_zero_stops_at_the_first_epoch_without_improvement():
    es = EarlyStopping("val_loss", patience=0)
    _, h = _fit([Inject("val_loss", [3.0, 2.0, 2.0, 1.0]), es], epochs=4)
    assert h.epochs == 3 and es.stopped_epoch == 2


@pytest.mark.parametrize("min_delta, epochs", [(0.0, 6), (0.1, 2), (0.045, 3)])
def test_early_stopping_min_delta(min_delta, epochs):
    # Improvements of 0.05, 0.04, 0.06, 0.05, 0.1: an improvement must exceed min_delta.
    values = [1.0, 0.95, 0.91, 0.85, 0.8, 0.7]
    es = EarlyStopping("val_loss", patience=1, min_delta=min_delta)
    _, h = _fit([Inject("val_loss", values), es], epochs=6)
    assert h.epochs == epochs and h.stopped_early == (epochs < 6)


def test_early_stopping_mode_max_for_accuracy():
    es = EarlyStopping("val_accuracy", patience=1)
    assert es.mode == "max"
    _, h = _fit([Inject("val_accuracy", [0.5, 0.7, 0.6, 0.9]), es], epochs=4)
    assert h.epochs == 3 and es.best == 0.7 and es.best_epoch == 1


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restore_best_weights(restore):
    snaps = Snapshots()
    es = EarlyStopping("val_loss", patience=2, restore_best_weights=restore)
    model, h = _fit([snaps, Inject("val_loss", [3.0, 1.0, 2.0, 2.5, 0.1, 0.1]), es], epochs=6)
    assert h.epochs == 4 and len(snaps.saved) == 4
    assert not np.array_equal(snaps.saved[1]["0.weight"], snaps.saved[3]["0.weight"])
    assert_bitwise_equal(weights(model), snaps.saved[1] if restore else snaps.saved[3])


def test_early_stopping_errors():
    with pytest.raises(
        ValueError,
        match=r"EarlyStopping: patience and min_delta must be >= 0; "
        r"received patience=-1, min_delta=0\.0",
    ):
        EarlyStopping(patience=-1)
    with pytest.raises(
        ValueError, match=r"^EarlyStopping: mode must be 'auto', 'min' or 'max'; received 'up'$"
    ):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"^ModelCheckpoint: mode must be 'auto', 'min' or 'max'"):
        ModelCheckpoint("unused", mode="best")
    with pytest.raises(
        KeyError,
        match=r"EarlyStopping: monitor 'val_loss' is not among the "
        r"epoch's metrics \['accuracy', 'loss'\] \(val_\* metrics "
        r"need validation data\)",
    ):
        _fit([EarlyStopping()], epochs=2, val=False)


# ------------------------------------------------------------------------ ModelCheckpoint
def test_model_checkpoint_best_and_last(tmp_path):
    snaps = Snapshots()
    ck = ModelCheckpoint(tmp_path, monitor="val_loss")
    model, h = _fit([snaps, Inject("val_loss", [3.0, 1.0, 2.0, 2.5]), ck], epochs=4)
    best, last = load_checkpoint(tmp_path / "best.npz"), load_checkpoint(tmp_path / "last.npz")
    assert best["meta"]["epoch"] == 2 and last["meta"]["epoch"] == 4
    assert_bitwise_equal({k: best["model"][k] for k in snaps.saved[1]}, snaps.saved[1])
    assert_bitwise_equal({k: last["model"][k] for k in snaps.saved[3]}, weights(model))
    assert ck.best == 1.0
    assert last["meta"]["history"] == h.history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "last.npz"]


def test_model_checkpoint_mode_max_and_switches(tmp_path):
    ck = ModelCheckpoint(tmp_path / "a", monitor="val_accuracy", save_last=False)
    _fit([Inject("val_accuracy", [0.2, 0.9, 0.5]), ck], epochs=3)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["best.npz"]
    assert load_checkpoint(tmp_path / "a" / "best.npz")["meta"]["epoch"] == 2
    _fit([ModelCheckpoint(tmp_path / "b", save_best=False)], epochs=2)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["last.npz"]


# ------------------------------------------------------------------------ LRScheduler
class RecordLR(Callback):
    def __init__(self):
        self.lrs = []

    def on_epoch_begin(self, epoch):
        self.lrs.append([g["lr"] for g in self.trainer.optimizer.param_groups])


def _linear(seed=0):
    """Dense(3, 2) in float64 with known weights, and 4 samples for an MSE regression."""
    model = nn.Dense(3, 2, seed=seed).double()
    rng = np.random.default_rng(seed)
    model.weight.data = rng.normal(size=(3, 2))
    model.bias.data = rng.normal(size=2)
    x = rng.normal(size=(4, 3))
    y = rng.normal(size=(4, 2))
    return model, x, y


def _mse_grads(w, b, x, y):
    """Hand-computed gradients of mean((xW + b - y)^2) over all N*K entries."""
    r = x @ w + b - y  # (N, K)
    scale = 2.0 / r.size
    return scale * x.T @ r, scale * r.sum(axis=0), float(np.mean(r**2))


def test_lr_scheduler_sets_every_group_per_epoch_and_sgd_uses_it():
    model, x, y = _linear()
    opt = optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 7.0}], lr=1.0)
    rec = RecordLR()
    sched = LRScheduler(lambda epoch: 0.1 * 0.5**epoch)
    w, b = model.weight.data.copy(), model.bias.data.copy()
    fit(
        model,
        (x, y),
        loss="mse",
        optimizer=opt,
        epochs=3,
        batch_size=4,
        metrics=(),
        callbacks=[sched, rec],
        verbose=False,
    )
    assert rec.lrs == [[0.1, 0.1], [0.05, 0.05], [0.025, 0.025]]
    for lr in (0.1, 0.05, 0.025):  # one full batch per epoch: W <- W - lr dW
        gw, gb, _ = _mse_grads(w, b, x, y)
        w, b = w - lr * gw, b - lr * gb
    np.testing.assert_allclose(model.weight.data, w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.bias.data, b, rtol=1e-12, atol=1e-14)


def test_lr_scheduler_with_a_schedule_from_optim_and_resume(tmp_path):
    rec = RecordLR()
    sched = optim.ExponentialDecay(lr0=0.02, rate=0.5)
    model = small_cnn(seed=0)
    x, y = bars(32)
    opt = optim.Adam(model.parameters(), lr=1.0)
    fit(
        model,
        (x, y),
        optimizer=opt,
        epochs=2,
        batch_size=16,
        verbose=False,
        callbacks=[LRScheduler(sched), ModelCheckpoint(tmp_path, monitor="loss"), rec],
    )
    model2 = small_cnn(seed=1)
    fit(
        model2,
        (x, y),
        optimizer=optim.Adam(model2.parameters(), lr=1.0),
        epochs=4,
        batch_size=16,
        verbose=False,
        resume=tmp_path,
        callbacks=[LRScheduler(sched), ModelCheckpoint(tmp_path, monitor="loss"), rec],
    )
    assert rec.lrs == [[0.02 * 0.5**e] for e in range(4)]  # epochs 2, 3 after the resume
    with pytest.raises(TypeError, match=r"LRScheduler: a schedule must be callable; received 0\.1"):
        LRScheduler(0.1)


# ------------------------------------------------------------------------ loggers
def test_csv_and_json_loggers_parse_back_to_the_history(tmp_path):
    csv_path, json_path = tmp_path / "logs" / "h.csv", tmp_path / "h.jsonl"
    _, h = _fit([CSVLogger(csv_path), JSONLogger(json_path)], epochs=3)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == list(h.history)
    assert {k: [float(r[k]) for r in rows] for k in rows[0]} == h.history  # exact round trip
    lines = json_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3 and list(records[0]) == list(h.history)
    assert {k: [r[k] for r in records] for k in records[0]} == h.history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl", "logs"]  # no temp files


def test_loggers_hold_the_whole_history_after_a_resume(tmp_path):
    def callbacks():
        return [
            ModelCheckpoint(tmp_path / "ck", monitor="loss"),
            CSVLogger(tmp_path / "h.csv"),
            JSONLogger(tmp_path / "h.jsonl"),
        ]

    _, h1 = _fit(callbacks(), epochs=2, val=False)
    _, h2 = _fit(
        callbacks(),
        epochs=4,
        val=False,
        model=small_cnn(seed=3, dropout=0.25),
        resume=tmp_path / "ck",
    )
    assert h2.epochs == 4 and h2["loss"][:2] == h1["loss"]
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["loss"]) for r in rows] == h2["loss"]
    records = [json.loads(s) for s in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [r["accuracy"] for r in records] == h2["accuracy"]


# ------------------------------------------------------------------------ l2, clip_norm
def test_one_sgd_step_without_regularization():
    model, x, y = _linear()
    w, b = model.weight.data.copy(), model.bias.data.copy()
    h = fit(
        model,
        (x, y),
        loss="mse",
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        batch_size=4,
        metrics=(),
        verbose=False,
    )
    gw, gb, loss = _mse_grads(w, b, x, y)
    np.testing.assert_allclose(model.weight.data, w - 0.1 * gw, rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b - 0.1 * gb, rtol=1e-12)
    assert h["loss"] == [pytest.approx(loss, rel=1e-12)]


def test_l2_adds_lambda_over_m_times_w_to_the_weights_only():
    lam, lr, m = 0.5, 0.1, 4
    model, x, y = _linear()
    w, b = model.weight.data.copy(), model.bias.data.copy()
    h = fit(
        model,
        (x, y),
        loss="mse",
        optimizer=optim.SGD(model.parameters(), lr=lr),
        epochs=1,
        batch_size=m,
        metrics=(),
        l2=lam,
        verbose=False,
    )
    gw, gb, loss = _mse_grads(w, b, x, y)
    # J = mse + lam / (2m) ||W||_F^2 ;  dW = dmse/dW + lam/m W ;  db unchanged (bias excluded).
    np.testing.assert_allclose(model.weight.data, w - lr * (gw + lam / m * w), rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b - lr * gb, rtol=1e-12)
    assert h["loss"] == [pytest.approx(loss + lam / (2 * m) * np.sum(w**2), rel=1e-12)]


def test_l2_uses_each_mini_batch_size_as_m():
    """With mini-batches the cost of batch t is J_t = mse_t + lam / (2 m_t) ||W||^2, m_t its size
    (the course's mini-batch cost): batches of 2, 2 and 1 here, taken in order."""
    lam, lr = 0.5, 0.1
    model, _, _ = _linear()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    w, b = model.weight.data.copy(), model.bias.data.copy()
    fit(
        model,
        (x, y),
        loss="mse",
        optimizer=optim.SGD(model.parameters(), lr=lr),
        epochs=1,
        batch_size=2,
        shuffle=False,
        metrics=(),
        l2=lam,
        verbose=False,
    )
    for lo, hi in [(0, 2), (2, 4), (4, 5)]:
        gw, gb, _ = _mse_grads(w, b, x[lo:hi], y[lo:hi])
        w, b = w - lr * (gw + lam / (hi - lo) * w), b - lr * gb
    np.testing.assert_allclose(model.weight.data, w, rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b, rtol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_clip_norm_scales_the_global_gradient_norm(l2):
    lr, m = 0.1, 4
    model, x, y = _linear()
    w, b = model.weight.data.copy(), model.bias.data.copy()
    gw, gb, _ = _mse_grads(w, b, x, y)
    gw = gw + l2 / m * w  # clipping acts on the whole gradient, the L2 term included
    norm = math.sqrt(np.sum(gw**2) + np.sum(gb**2))
    max_norm = norm / 3
    fit(
        model,
        (x, y),
        loss="mse",
        optimizer=optim.SGD(model.parameters(), lr=lr),
        epochs=1,
        batch_size=m,
        metrics=(),
        l2=l2,
        clip_norm=max_norm,
        verbose=False,
    )
    coef = max_norm / (norm + 1e-6)
    np.testing.assert_allclose(model.weight.data, w - lr * coef * gw, rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b - lr * coef * gb, rtol=1e-12)
    # The step taken has global norm lr * max_norm (up to the 1e-6 guard).
    step = math.sqrt(np.sum((w - model.weight.data) ** 2) + np.sum((b - model.bias.data) ** 2))
    assert step == pytest.approx(lr * max_norm, rel=1e-5)


def test_clip_norm_above_the_norm_changes_nothing():
    model, x, y = _linear()
    w, b = model.weight.data.copy(), model.bias.data.copy()
    gw, gb, _ = _mse_grads(w, b, x, y)
    norm = math.sqrt(np.sum(gw**2) + np.sum(gb**2))
    fit(
        model,
        (x, y),
        loss="mse",
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        batch_size=4,
        metrics=(),
        clip_norm=2 * norm,
        verbose=False,
    )
    np.testing.assert_allclose(model.weight.data, w - 0.1 * gw, rtol=1e-12)
    np.testing.assert_allclose(model.bias.data, b - 0.1 * gb, rtol=1e-12)


@pytest.mark.parametrize("checkpoint_first", [True, False])
def test_early_stopping_best_weights_survive_a_resume(tmp_path, checkpoint_first):
    values = [3.0, 1.0, 2.0, 2.5, 2.6, 2.7]  # best at epoch 1, never stops (patience 10)

    def callbacks(snaps):
        es = EarlyStopping("val_loss", patience=10, restore_best_weights=True)
        ck = ModelCheckpoint(tmp_path / "ck", monitor="loss")
        return [snaps, Inject("val_loss", values), *([ck, es] if checkpoint_first else [es, ck])]

    snaps = Snapshots()
    whole, _ = _fit(callbacks(snaps), epochs=6)
    assert_bitwise_equal(weights(whole), snaps.saved[1])

    _fit(callbacks(Snapshots()), epochs=3)
    resumed, h = _fit(callbacks(Snapshots()), epochs=6, model=small_cnn(seed=5, dropout=0.25),
                      resume=tmp_path / "ck")
    assert h.epochs == 6
    assert_bitwise_equal(weights(resumed), snaps.saved[1])  # the best epoch ran before the resume


def test_resume_matches_callback_states_by_type(tmp_path):
    values = [3.0, 1.0, 2.0, 2.5]
    es = EarlyStopping("val_loss", patience=10)
    _fit([Inject("val_loss", values), es, ModelCheckpoint(tmp_path / "ck", monitor="loss")],
         epochs=2)
    # resumed with the callbacks in another order and one more: each gets its own state back
    es2 = EarlyStopping("val_loss", patience=10)
    _fit([ModelCheckpoint(tmp_path / "ck", monitor="loss"), Snapshots(),
          Inject("val_loss", values), es2], epochs=3, resume=tmp_path / "ck")
    assert (es2.best, es2.best_epoch, es2.wait) == (1.0, 1, 1)
