"""The progress display: tqdm's bar when tqdm is installed, one plain line per epoch otherwise."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from cnnlab.train.progress import Progress


def test_plain_line_without_a_terminal(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    out = io.StringIO()
    bar = Progress(total=3, epoch=1, epochs=5, stream=out)
    for _ in range(3):
        bar.update(32, {"loss": 0.5, "accuracy": 0.75})
    bar.close({"loss": 0.25, "accuracy": 0.875})
    text = out.getvalue()
    assert text.startswith("epoch 2/5 loss=0.2500 accuracy=0.8750 ")
    assert text.endswith(" img/s\n") and text.count("\n") == 1


def test_log_files_get_plain_lines_even_with_tqdm():
    out = io.StringIO()  # not a terminal
    bar = Progress(total=2, epoch=0, epochs=1, stream=out)
    assert bar.bar is None
    bar.update(8, {"loss": 1.0})
    bar.close({"loss": 0.5})
    assert out.getvalue().startswith("epoch 1/1 loss=0.5000 ") and out.getvalue().count("\n") == 1


def test_tqdm_bar_shows_loss_metrics_and_rate():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = Progress(total=4, epoch=0, epochs=2, stream=out, use_tqdm=True)
    assert bar.bar is not None
    for _ in range(4):
        bar.update(16, {"loss": 1.0, "accuracy": 0.5})
    bar.close({"loss": 0.125, "accuracy": 0.9})
    text = out.getvalue()
    assert "epoch 1/2" in text and "4/4" in text
    assert "loss=0.1250" in text and "accuracy=0.9000" in text and "img/s" in text
    assert np.isfinite(bar.rate()) and bar.images == 64
