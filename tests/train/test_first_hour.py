"""What a new user tries first, in Python (issue 17): fit with arrays, evaluate keeping each
part's mode, one LR scheduler, the progress line in 80 columns, the confusion-matrix and
learning-curve pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cnnlab import nn, optim
from cnnlab.train import LRScheduler, evaluate, fit, predict
from cnnlab.train.progress import Progress
from tests.train.helpers import bars, small_cnn


def test_fit_with_arrays_as_in_keras():
    """fit(model, x, y) trains exactly as fit(model, (x, y)), the documented pair form."""
    x, y = bars(32)
    xv, yv = bars(16, seed=1)
    a, b = small_cnn(seed=0), small_cnn(seed=0)
    ha = fit(a, x, y, validation_data=(xv, yv), optimizer=optim.SGD(a.parameters(), lr=0.1),
             epochs=2, batch_size=8, verbose=False)
    hb = fit(b, (x, y), (xv, yv), optimizer=optim.SGD(b.parameters(), lr=0.1), epochs=2,
             batch_size=8, verbose=False)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    assert ha.history == hb.history and "val_loss" in ha.history
    with pytest.raises(ValueError, match=r"fit: train is an array of inputs, so the labels must "
                                         r"come next: fit\(model, x, y\); received NoneType"):
        fit(a, x, optimizer=optim.SGD(a.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"fit: give the validation data once"):
        fit(a, (x, y), (xv, yv), validation_data=(xv, yv),
            optimizer=optim.SGD(a.parameters(), lr=0.1))


def test_evaluate_and_predict_restore_each_modules_own_mode():
    model = small_cnn(seed=0, dropout=0.5)
    model.train()
    dropout = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    dropout.eval()  # the user keeps this part in eval mode on purpose
    x, y = bars(8)
    evaluate(model, (x, y))
    predict(model, x)
    assert model.training is True and dropout.training is False
    model.eval()
    evaluate(model, (x, y))
    assert all(not m.training for m in model.modules())


def test_the_fit_callback_uses_optims_scheduler_and_its_checks():
    """One scheduler: the callback drives optim.LRScheduler, so a schedule returning a negative
    learning rate is refused in fit exactly as in a hand-written loop."""
    x, y = bars(8)
    model = small_cnn(seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"^LRScheduler: the schedule returned lr=-0.1 at "
                                         r"epoch 0; a learning rate must be a number >= 0$"):
        fit(model, x, y, optimizer=opt, epochs=1, verbose=False,
            callbacks=[LRScheduler(lambda epoch: -0.1)])
    with pytest.raises(TypeError, match=r"^LRScheduler: a schedule must be callable; "
                                        r"received 0.1$"):
        LRScheduler(0.1)
    sched = LRScheduler([lambda e: 0.5 ** e])  # a list, one per group, as optim's takes
    fit(model, x, y, optimizer=opt, epochs=2, verbose=False, callbacks=[sched])
    assert opt.param_groups[0]["lr"] == 0.5 and sched.scheduler.epoch == 1


def test_tqdm_line_fits_80_columns_whole():
    tqdm = pytest.importorskip("tqdm")
    del tqdm
    bar = Progress(total=938, epoch=9, epochs=20, stream=io.StringIO(), use_tqdm=True)
    logs = {"loss": 0.123456, "accuracy": 0.987654}
    for _ in range(100):
        bar.update(64, logs)
    line = bar.bar.format_meter(**{**bar.bar.format_dict, "ncols": 80})
    assert len(line) <= 80, line
    assert "loss=0.1235 accuracy=0.9877" in line and "img/s" in line, line
    bar.bar.close()


def _captured_plots(monkeypatch, tmp_path, epochs: int, classes: int):
    """Run the CLI's _plots and keep the figures it would close."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from cnnlab.cli.train import _plots
    from cnnlab.train import History

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    history = History({"loss": [1.0] * epochs, "val_loss": [1.1] * epochs,
                       "accuracy": [0.5] * epochs, "val_accuracy": [0.4] * epochs})
    cm = np.full((classes, classes), 123) + np.diag(np.full(classes, 876))
    written = _plots(tmp_path, history, {"confusion_matrix": cm.tolist()})
    assert written == ["learning_curves.png", "confusion_matrix.png"]
    assert all((tmp_path / f).stat().st_size > 0 for f in written)
    return figures


def test_one_epoch_curve_has_whole_epoch_ticks(monkeypatch, tmp_path):
    curves, _ = _captured_plots(monkeypatch, tmp_path, epochs=1, classes=3)
    for ax in curves.axes:
        assert list(ax.get_xticks()) == [1.0]
    curves, _ = _captured_plots(monkeypatch, tmp_path, epochs=25, classes=3)
    ticks = curves.axes[0].get_xticks()
    assert all(t == int(t) for t in ticks) and len(ticks) <= 13


def test_confusion_matrix_counts_are_readable(monkeypatch, tmp_path):
    """10 classes (MNIST): every count is drawn, at 10 points or more (it was 7)."""
    _, matrix = _captured_plots(monkeypatch, tmp_path, epochs=2, classes=10)
    texts = matrix.axes[0].texts
    assert len(texts) == 100 and {t.get_text() for t in texts} == {"123", "999"}
    assert min(t.get_fontsize() for t in texts) >= 10
