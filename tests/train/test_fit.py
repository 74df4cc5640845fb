"""fit / evaluate / predict: learning, the History's bookkeeping, eval mode and no graph."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import nn, optim
from cnnlab.data.loader import DataLoader
from cnnlab.tensor import is_grad_enabled
from cnnlab.train import History, evaluate, fit, predict
from cnnlab.train.progress import Progress
from tests.train.helpers import bars, small_cnn, softmax_cross_entropy, weights


class Recorder:
    """A loss callable that records what each training batch gave (the oracle for History)."""

    def __init__(self):
        self.batches = []  # (loss value, batch size, correct predictions)

    def __call__(self, logits, y):
        loss = F.cross_entropy(logits, y)
        pred = logits.data.argmax(axis=1)
        self.batches.append((float(loss.data), len(y), int((pred == y).sum())))
        return loss


def test_small_cnn_reaches_99_percent_training_accuracy():
    x, y = bars(400, seed=0)
    model = small_cnn(seed=0)
    history = fit(
        model,
        (x, y),
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        epochs=6,
        batch_size=32,
        seed=0,
        verbose=False,
    )
    assert isinstance(history, History)
    assert history["accuracy"][-1] >= 0.99
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    # Independent of the loop's bookkeeping: the final model's predictions on the training set.
    logits = predict(model, x)
    assert logits.shape == (400, 4)
    assert np.mean(logits.argmax(axis=1) == y) >= 0.99


def test_history_is_the_mean_of_the_batches():
    x, y = bars(100, seed=1)
    model = small_cnn(seed=1)
    rec = Recorder()
    history = fit(
        model,
        (x, y),
        loss=rec,
        optimizer=optim.SGD(model.parameters(), lr=0.05),
        epochs=3,
        batch_size=32,
        seed=3,
        verbose=False,
    )
    assert set(history.history) == {"loss", "accuracy"}
    assert history.epochs == 3 and len(history["loss"]) == 3
    assert not history.interrupted and not history.stopped_early
    assert len(rec.batches) == 3 * 4  # ceil(100 / 32) = 4 batches per epoch
    for e in range(3):
        chunk = rec.batches[4 * e : 4 * (e + 1)]
        assert [n for _, n, _ in chunk] == [32, 32, 32, 4]
        mean_loss = sum(v * n for v, n, _ in chunk) / 100
        assert history["loss"][e] == pytest.approx(mean_loss, rel=1e-12)
        assert history["accuracy"][e] == pytest.approx(sum(c for _, _, c in chunk) / 100)
    assert repr(history).startswith("History(epochs=3, last={'loss': ")


def test_validation_metrics_are_computed_with_the_final_weights_in_eval_mode():
    x, y = bars(120, seed=2)
    xv, yv = bars(50, seed=3)
    model = small_cnn(seed=2, dropout=0.5)
    history = fit(
        model,
        (x, y),
        (xv, yv),
        optimizer=optim.Adam(model.parameters(), lr=0.01),
        epochs=3,
        batch_size=16,
        verbose=False,
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    # The last epoch's val_* used the final weights with dropout off: recompute by hand.
    model.eval()
    with cl.no_grad():
        logits = model(cl.tensor(xv)).data
    assert history["val_loss"][-1] == pytest.approx(softmax_cross_entropy(logits, yv), rel=1e-5)
    assert history["val_accuracy"][-1] == pytest.approx(np.mean(logits.argmax(1) == yv))
    assert model.training is False  # we set it; fit itself leaves it in training mode


def test_fit_accepts_a_dataloader_and_continues_training_mode():
    x, y = bars(64, seed=4)
    model = small_cnn(seed=4)
    loader = DataLoader((x, y), 16, shuffle=True, seed=5)
    history = fit(
        model, loader, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2, verbose=False
    )
    assert history.epochs == 2
    assert model.training is True


class Probe(nn.Module):
    """Wraps a model and records, at each call, the mode, the grad mode and the output."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, x):
        out = self.inner(x)
        self.calls.append(
            {
                "training": self.inner.training,
                "grad": is_grad_enabled(),
                "requires_grad": out.requires_grad,
                "leaf": out._ctx is None,
                "n": len(x.data),
            }
        )
        return out


@pytest.mark.parametrize("which", ["evaluate", "predict"])
def test_evaluate_and_predict_run_in_eval_mode_without_a_graph(which):
    x, y = bars(70, seed=5)
    model = Probe(small_cnn(seed=5, dropout=0.5))
    model.train()
    if which == "evaluate":
        evaluate(model, (x, y), batch_size=32)
    else:
        predict(model, x, batch_size=32)
    assert [c["n"] for c in model.calls] == [32, 32, 6]
    for call in model.calls:
        assert call == {
            **call,
            "training": False,
            "grad": False,
            "requires_grad": False,
            "leaf": True,
        }
    assert model.training is True and model.inner.training is True  # mode restored
    # And the mode is restored when the model starts in eval mode.
    model.eval()
    predict(model, x)
    assert model.training is False


def test_predict_is_deterministic_with_dropout_and_equals_the_eval_forward():
    x, _ = bars(40, seed=6)
    model = small_cnn(seed=6, dropout=0.5)
    before = weights(model)
    p1 = predict(model, x, batch_size=7)
    p2 = predict(model, x, batch_size=40)
    assert isinstance(p1, np.ndarray) and p1.shape == (40, 4)
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-6)
    # Oracle: the same network written out in NumPy (nested loops), dropout the identity.
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    w, b = state["0.weight"], state["0.bias"]  # (3, 3, 1, 4) HWIO, (4,)
    wd, bd = state["5.weight"], state["5.bias"]  # after Flatten and Dropout: (100, 4), (4,)
    xv = x.astype(np.float64)
    z = np.zeros((40, 10, 10, 4))
    for i in range(10):
        for j in range(10):
            z[:, i, j, :] = np.einsum("nhwc,hwco->no", xv[:, i : i + 3, j : j + 3, :], w) + b
    a = np.maximum(z, 0).reshape(40, 5, 2, 5, 2, 4).max(axis=(2, 4)).reshape(40, 100)
    np.testing.assert_allclose(p1, a @ wd + bd, rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(v, before[k]) for k, v in weights(model).items())


def test_evaluate_matches_a_hand_computation_with_uneven_batches():
    x, y = bars(50, seed=7)
    model = small_cnn(seed=7, dropout=0.3)
    logits = predict(model, x)
    result = evaluate(model, (x, y), batch_size=16)  # batches of 16, 16, 16, 2
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(softmax_cross_entropy(logits, y), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_fit_argument_errors():
    x, y = bars(8)
    model = small_cnn()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"fit: an optimizer is required"):
        fit(model, (x, y), verbose=False)
    with pytest.raises(ValueError, match=r"fit: epochs must be an int >= 1; received 0"):
        fit(model, (x, y), optimizer=opt, epochs=0)
    with pytest.raises(ValueError, match=r"fit: batch_size must be an int >= 1; received 0"):
        fit(model, (x, y), optimizer=opt, batch_size=0)
    with pytest.raises(ValueError, match=r"fit: unknown loss 'hinge'"):
        fit(model, (x, y), optimizer=opt, loss="hinge")
    with pytest.raises(ValueError, match=r"fit: unknown metric\(s\) \['f1'\]"):
        fit(model, (x, y), optimizer=opt, metrics=("f1",))
    with pytest.raises(TypeError, match=r"fit: callbacks must be Callback instances"):
        fit(model, (x, y), optimizer=opt, callbacks=[print])


def test_progress_prints_a_plain_line_per_epoch_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    stream = io.StringIO()
    bar = Progress(total=3, epoch=1, epochs=5, stream=stream)
    assert bar.bar is None
    for _ in range(3):
        bar.update(10, {"loss": 0.5})
    assert stream.getvalue() == ""  # not a terminal: nothing until the epoch ends
    bar.close({"loss": 0.25, "accuracy": 0.75})
    line = stream.getvalue()
    assert line.startswith("epoch 2/5 loss=0.2500 accuracy=0.7500 ")
    assert line.endswith(" img/s\n") and line.count("\n") == 1
    assert bar.images == 30


def test_fit_verbose_prints_one_line_per_epoch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x, y = bars(32)
    model = small_cnn()
    fit(
        model,
        (x, y),
        (x, y),
        optimizer=optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=16,
        verbose=True,
    )
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out if line.startswith("epoch")] == [
        ["epoch", "1/2"],
        ["epoch", "2/2"],
    ]
    assert sum("val_loss=" in line for line in out) == 2


# ------------------------------------------------------------------ accuracy for binary heads
def test_accuracy_metric_reads_each_kind_of_target():
    from cnnlab.train.fit import _METRICS

    acc = _METRICS["accuracy"]
    logits = np.array([[2.0, -1.0, 0.5], [-1.0, 3.0, 0.0]])
    assert acc(logits, np.array([0, 2])) == 0.5  # integer labels: argmax
    assert acc(logits, np.array([[1.0, 0, 0], [0, 1.0, 0]])) == 1.0  # one-hot rows: argmax
    # multi-label targets (rows are not distributions): each entry is its own yes/no, logit > 0
    assert acc(logits, np.array([[1.0, 0, 1], [0, 1, 1]])) == 5 / 6
    # NaN marks an unknown label: not counted
    assert acc(logits, np.array([[1.0, np.nan, 0], [np.nan, 1, np.nan]])) == 2 / 3
    # one output column: binary, whatever the label's shape
    single = np.array([[1.5], [-0.5], [0.2], [-2.0]])
    assert acc(single, np.array([1, 0, 0, 0])) == 0.75
    assert acc(single, np.array([[1.0], [0.0], [0.0], [0.0]])) == 0.75


def test_fit_reports_binary_accuracy_for_a_single_logit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)  # (N, 1) targets for a (N, 1) logit
    model = nn.Sequential(nn.Dense(2, 1, seed=0))
    h = fit(model, (x, y), loss="binary_cross_entropy", optimizer=optim.Adam(model.parameters(),
            lr=0.1), epochs=20, batch_size=16, verbose=False)
    assert h["accuracy"][-1] >= 0.95  # argmax over one column would say 0.5 (all "class 0")
