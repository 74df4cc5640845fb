"""The training guard (issue 19): overflowing optimizer state or weights stop training like a
non-finite loss, and the last checkpoint on disk stays the good one."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import models, optim
from cnnlab.train import ModelCheckpoint, NonFiniteStateError, fit, load_checkpoint
from tests.train.helpers import bars


def test_adam_overflow_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = models.get("lenet5", num_classes=4, seed=0)
    opt = optim.Adam(model.parameters(), lr=0.001)
    data = bars(64, size=28)
    fit(model, data, optimizer=opt, epochs=1, batch_size=16, verbose=False,
        callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    good = (tmp_path / "last.npz").read_bytes()
    for group in opt.param_groups:  # the fuzzing's `--lr 1e6`: Adam's v overflows to inf
        group["lr"] = 1e6
    with np.errstate(all="ignore"), pytest.raises(
            NonFiniteStateError, match=r"^fit: the optimizer state v of features\.0\.weight "
            r"became NaN or infinite in this update, at epoch 1, step \d+ \(global step \d+\); "
            r"training stopped, the last checkpoint is intact\. Try a lower learning rate\.$"):
        fit(model, data, optimizer=opt, epochs=3, batch_size=16, verbose=False,
            callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])
    # oracle: the state really did overflow (the guard did not fire on finite numbers)
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)]
    params = [p.data for p in model.parameters()]
    assert any(not np.isfinite(a).all() for a in state + params)
    assert (tmp_path / "last.npz").read_bytes() == good  # the last good checkpoint stays
    load_checkpoint(tmp_path / "last.npz")  # and loads (finite)
