"""Resuming a run ends bitwise where an uninterrupted run ends; Ctrl-C and NaN lose nothing."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from cnnlab import functional as F
from cnnlab import optim
from cnnlab.data.transforms import RandomShift
from cnnlab.train import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    NonFiniteLossError,
    fit,
    load_checkpoint,
)
from tests.train.helpers import assert_bitwise_equal, bars, small_cnn, weights

EPOCHS = 4


def _run(
    model,
    directory,
    epochs,
    resume=None,
    val=None,
    callbacks=(),
    loss="cross_entropy",
    transform=None,
    data_seed=0,
    opt_hook=None,
):
    x, y = bars(96, seed=data_seed)
    opt = optim.Adam(model.parameters(), lr=0.01)
    if opt_hook is not None:
        opt_hook(opt)
    cbs = [ModelCheckpoint(directory, monitor="val_loss" if val else "loss"), *callbacks]
    history = fit(
        model,
        (x, y),
        val,
        loss=loss,
        optimizer=opt,
        epochs=epochs,
        batch_size=16,
        seed=11,
        transform=transform,
        resume=resume,
        callbacks=cbs,
        verbose=False,
    )
    return history, opt


@pytest.mark.parametrize("augment", [False, True], ids=["plain", "augmented"])
def test_resume_after_epoch_2_is_bitwise_identical(tmp_path, augment):
    def transform():
        return RandomShift(1, seed=123) if augment else None

    full = small_cnn(seed=0, dropout=0.5)
    h_full, opt_full = _run(full, tmp_path / "full", EPOCHS, transform=transform())

    first = small_cnn(seed=0, dropout=0.5)
    _run(first, tmp_path / "split", 2, transform=transform())
    assert load_checkpoint(tmp_path / "split" / "last.npz")["meta"]["epoch"] == 2
    # A new model (other initial weights, other dropout seed) and a new optimizer.
    second = small_cnn(seed=99, dropout=0.5)
    assert not np.array_equal(weights(second)["0.weight"], weights(full)["0.weight"])
    h_res, opt_res = _run(
        second, tmp_path / "split", EPOCHS, resume=tmp_path / "split", transform=transform()
    )
    assert_bitwise_equal(weights(second), weights(full))
    assert h_res.history == h_full.history  # exact floats, epochs 1-2 from the checkpoint
    s_full, s_res = opt_full.state_dict(), opt_res.state_dict()
    assert s_full["groups"] == s_res["groups"]
    assert_bitwise_equal(s_full["state"], s_res["state"])


def test_augmentation_and_dropout_matter(tmp_path):
    """Guard for the test above: with another transform seed or dropout the run differs."""
    a = small_cnn(seed=0, dropout=0.5)
    _run(a, tmp_path / "a", 2, transform=RandomShift(1, seed=0))
    b = small_cnn(seed=0, dropout=0.5)
    x, y = bars(96)
    fit(
        b,
        (x, y),
        optimizer=optim.Adam(b.parameters(), lr=0.01),
        epochs=2,
        batch_size=16,
        seed=12,
        transform=RandomShift(1, seed=0),
        verbose=False,
    )
    assert not np.array_equal(weights(a)["5.weight"], weights(b)["5.weight"])


def test_resume_with_batch_norm_validation_and_callback_state(tmp_path):
    val = bars(40, seed=5)

    def callbacks():
        return [EarlyStopping("val_loss", patience=10)]

    full = small_cnn(seed=1, dropout=0.25, batch_norm=True)
    cb_full = callbacks()
    h_full, _ = _run(full, tmp_path / "full", EPOCHS, val=val, callbacks=cb_full)

    part = small_cnn(seed=1, dropout=0.25, batch_norm=True)
    _run(part, tmp_path / "split", 3, val=val, callbacks=callbacks())
    resumed = small_cnn(seed=7, dropout=0.25, batch_norm=True)
    cb_res = callbacks()
    h_res, _ = _run(
        resumed,
        tmp_path / "split",
        EPOCHS,
        resume=tmp_path / "split" / "last.npz",
        val=val,
        callbacks=cb_res,
    )
    w = weights(resumed)
    assert any("running" in k or "mean" in k for k in w)  # batch-norm buffers are compared too
    assert_bitwise_equal(w, weights(full))
    assert h_res.history == h_full.history
    es_full, es_res = cb_full[0], cb_res[0]
    assert (es_res.best, es_res.best_epoch, es_res.wait) == (
        es_full.best,
        es_full.best_epoch,
        es_full.wait,
    )
    # best.npz holds the epoch with the lowest val_loss, in both runs.
    best_epoch = int(np.argmin(h_full["val_loss"])) + 1
    for d in ("full", "split"):
        assert load_checkpoint(tmp_path / d / "best.npz")["meta"]["epoch"] == best_epoch


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    model = small_cnn(seed=0)
    h, _ = _run(model, tmp_path, 2)
    before = weights(model)
    again = small_cnn(seed=5)
    h2, _ = _run(again, tmp_path, 2, resume=tmp_path)
    assert_bitwise_equal(weights(again), before)
    assert h2.history == h.history


# ------------------------------------------------------------------------ Ctrl-C
class InterruptAt:
    """A loss that raises KeyboardInterrupt at global step ``k`` (counted from 1), once."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, logits, y):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt
        return F.cross_entropy(logits, y)


class InterruptOnEpochBegin(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("batch_norm", [False, True], ids=["dropout", "dropout+batchnorm"])
def test_ctrl_c_mid_epoch_saves_the_position_and_resume_is_bitwise(tmp_path, batch_norm, capsys):
    # 96 images, batches of 16: 6 steps per epoch; step 9 is the 3rd batch of epoch 2.
    full = small_cnn(seed=3, dropout=0.5, batch_norm=batch_norm)
    h_full, _ = _run(full, tmp_path / "full", EPOCHS)

    model = small_cnn(seed=3, dropout=0.5, batch_norm=batch_norm)
    h_int, _ = _run(model, tmp_path / "split", EPOCHS, loss=InterruptAt(9))
    assert h_int.interrupted is True
    assert h_int.epochs == 1
    out = capsys.readouterr().out
    assert f"interrupted: checkpoint saved to {tmp_path / 'split' / 'last.npz'}" in out
    assert "(epoch 2, batch 2)" in out
    meta = load_checkpoint(tmp_path / "split" / "last.npz")["meta"]
    assert (meta["epoch"], meta["step"]) == (1, 8)
    assert meta["extra"]["trainer"]["batch_in_epoch"] == 2

    resumed = small_cnn(seed=8, dropout=0.5, batch_norm=batch_norm)
    h_res, _ = _run(resumed, tmp_path / "split", EPOCHS, resume=tmp_path / "split")
    assert not h_res.interrupted
    assert_bitwise_equal(weights(resumed), weights(full))
    # The interrupted epoch's mean counts each batch once: same history as the full run.
    assert h_res["loss"] == pytest.approx(h_full["loss"], rel=1e-12)
    assert h_res["accuracy"] == h_full["accuracy"]


def test_ctrl_c_between_epochs_resumes_bitwise(tmp_path):
    full = small_cnn(seed=4, dropout=0.5)
    _run(full, tmp_path / "full", 3)
    model = small_cnn(seed=4, dropout=0.5)
    h, _ = _run(model, tmp_path / "split", 3, callbacks=[InterruptOnEpochBegin(2)])
    assert h.interrupted and h.epochs == 2
    meta = load_checkpoint(tmp_path / "split" / "last.npz")["meta"]
    assert (meta["epoch"], meta["extra"]["trainer"]["batch_in_epoch"]) == (2, 0)
    resumed = small_cnn(seed=9, dropout=0.5)
    _run(resumed, tmp_path / "split", 3, resume=tmp_path / "split")
    assert_bitwise_equal(weights(resumed), weights(full))


class SigintAt:
    """A loss that sends this process a real SIGINT (Ctrl-C) at global step ``k``."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, logits, y):
        self.calls += 1
        if self.calls == self.k:
            signal.raise_signal(signal.SIGINT)
        return F.cross_entropy(logits, y)


def _sigint_inside_update(at_step, times=1):
    """An optimizer hook: SIGINT ``times`` times after the first parameter of step ``at_step``
    has been updated (the others not yet)."""

    def hook(opt):
        update, counter = opt._update, {"params": 0}
        n_params = sum(len(g["params"]) for g in opt.param_groups)

        def _update(p, g, group, state):
            update(p, g, group, state)
            counter["params"] += 1
            if counter["params"] == (at_step - 1) * n_params + 1:
                for _ in range(times):
                    signal.raise_signal(signal.SIGINT)

        opt._update = _update

    return hook


@pytest.mark.parametrize("where", ["loss", "update"])
def test_real_sigint_stops_after_the_batch_and_resume_is_bitwise(tmp_path, where, capsys):
    full = small_cnn(seed=5, dropout=0.5, batch_norm=True)
    _run(full, tmp_path / "full", 3)
    model = small_cnn(seed=5, dropout=0.5, batch_norm=True)
    kw = {"loss": SigintAt(9)} if where == "loss" else {"opt_hook": _sigint_inside_update(9)}
    h, _ = _run(model, tmp_path / "split", 3, **kw)
    assert h.interrupted and h.epochs == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back
    # The first Ctrl-C lets the batch finish: 9 steps done, 3 of them in epoch 2.
    assert "(epoch 2, batch 3)" in capsys.readouterr().out
    meta = load_checkpoint(tmp_path / "split" / "last.npz")["meta"]
    assert (meta["epoch"], meta["step"], meta["extra"]["trainer"]["batch_in_epoch"]) == (1, 9, 3)
    resumed = small_cnn(seed=6, dropout=0.5, batch_norm=True)
    _run(resumed, tmp_path / "split", 3, resume=tmp_path / "split")
    assert_bitwise_equal(weights(resumed), weights(full))


def test_second_sigint_inside_an_update_keeps_the_last_good_checkpoint(tmp_path, capsys):
    model = small_cnn(seed=5, dropout=0.5)
    h, _ = _run(model, tmp_path, 3, opt_hook=_sigint_inside_update(9, times=2))
    assert h.interrupted
    assert "interrupted during a parameter update: no checkpoint written" in (
        capsys.readouterr().out
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    meta = load_checkpoint(tmp_path / "last.npz")["meta"]  # the end of epoch 1, untouched
    assert (meta["epoch"], meta["step"], meta["extra"]["trainer"]["batch_in_epoch"]) == (1, 6, 0)


def test_ctrl_c_without_a_checkpoint_callback_returns_cleanly():
    x, y = bars(32)
    model = small_cnn(dropout=0.5)
    h = fit(
        model,
        (x, y),
        loss=InterruptAt(3),
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=8,
        verbose=False,
    )
    assert h.interrupted and h.epochs == 0


# ------------------------------------------------------------------------ NaN / Inf
class NonFiniteAt:
    """A loss that becomes ``value`` (nan or inf) at global step ``k`` (counted from 1)."""

    def __init__(self, k, value):
        self.k, self.value, self.calls = k, value, 0

    def __call__(self, logits, y):
        self.calls += 1
        loss = F.cross_entropy(logits, y)
        return loss * self.value if self.calls == self.k else loss


class Snapshots(Callback):
    def __init__(self):
        self.saved = []

    def on_epoch_end(self, epoch, logs):
        self.saved.append(weights(self.trainer.model))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_mid_epoch_stops_with_epoch_and_step(tmp_path, value):
    snaps = Snapshots()
    model = small_cnn(seed=2, dropout=0.5)
    # 6 steps per epoch: step 16 is the 4th batch of epoch 3.
    word = "nan" if np.isnan(value) else "inf"
    with pytest.raises(
        NonFiniteLossError,
        match=rf"^fit: the loss became {word} at epoch 3, step 4 \(global step 16\)"
        r"; training stopped before this update",
    ):
        _run(model, tmp_path, EPOCHS, loss=NonFiniteAt(16, value), callbacks=[snaps])
    assert len(snaps.saved) == 2
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt["meta"]["epoch"] == 2 and ckpt["meta"]["step"] == 12
    assert all(np.isfinite(v).all() for v in ckpt["model"].values())
    assert_bitwise_equal({k: ckpt["model"][k] for k in snaps.saved[-1]}, snaps.saved[-1])
    assert all(np.isfinite(v).all() for v in weights(model).values())


def test_non_finite_loss_at_an_epoch_start_leaves_the_weights_of_the_checkpoint(tmp_path):
    model = small_cnn(seed=2, dropout=0.5, batch_norm=True)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 3, step 1 \(global step 13\)"):
        _run(model, tmp_path, EPOCHS, loss=NonFiniteAt(13, float("nan")))
    ckpt = load_checkpoint(tmp_path / "last.npz")
    # Stopped before the update: the model in memory is still the checkpoint's, batch-norm
    # statistics and the dropout generator included (the failed forward pass is undone).
    assert_bitwise_equal(weights(model), dict(ckpt["model"]))
    ((name, rng),) = model.named_rngs()
    assert rng.bit_generator.state == ckpt["meta"]["model_rngs"][name]
    assert issubclass(NonFiniteLossError, FloatingPointError)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_learning_rate_raises_non_finite_loss_error(tmp_path):
    x, y = bars(64)
    model = small_cnn(seed=0)
    with pytest.raises(NonFiniteLossError, match=r"the loss became (nan|inf) at epoch \d+, step"):
        fit(
            model,
            (x * 1e3, y),
            loss="cross_entropy",
            optimizer=optim.SGD(model.parameters(), lr=1e30),
            epochs=3,
            batch_size=16,
            callbacks=[ModelCheckpoint(tmp_path, monitor="loss")],
            verbose=False,
        )
