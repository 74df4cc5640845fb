"""fit(eval_sets=...): more data evaluated after every epoch, logged under its own name."""

import numpy as np
import pytest

from cnnlab import nn, optim
from cnnlab.train import fit, predict


def test_eval_sets_are_logged_every_epoch_and_never_trained_on():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    xh, yh = x[48:], y[48:]
    model = nn.Sequential(nn.Dense(6, 2, seed=0))
    history = fit(model, (x[:48], y[:48]), optimizer=optim.SGD(model.parameters(), lr=0.1),
                  epochs=3, batch_size=16, verbose=False, eval_sets={"train_dev": (xh, yh)})
    assert len(history["train_dev_loss"]) == len(history["train_dev_accuracy"]) == 3
    assert "val_loss" not in history.history
    # the last epoch's numbers are the final model's, computed by hand from its logits
    z = predict(model, xh).astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert history["train_dev_loss"][-1] == pytest.approx(-logp[np.arange(16), yh].mean(),
                                                          rel=1e-5)
    assert history["train_dev_accuracy"][-1] == pytest.approx(np.mean(z.argmax(1) == yh))
    # a model trained with the extra set equals one trained without it (evaluation only)
    other = nn.Sequential(nn.Dense(6, 2, seed=0))
    fit(other, (x[:48], y[:48]), optimizer=optim.SGD(other.parameters(), lr=0.1), epochs=3,
        batch_size=16, verbose=False)
    np.testing.assert_array_equal(predict(other, xh), predict(model, xh))


@pytest.mark.parametrize("name", ["val", "train dev", 3])
def test_eval_set_names_must_not_clash(name):
    model = nn.Sequential(nn.Dense(2, 2, seed=0))
    data = (np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="eval_sets names must be identifiers other than 'val'"):
        fit(model, data, optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=False,
            eval_sets={name: data})
