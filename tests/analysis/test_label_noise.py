"""Finding labels flipped on purpose: the small, fast version of benchmarks/label_noise.py.

3,000 bundled MNIST training images, 2% of their labels (60) moved to another class at random;
out-of-sample probabilities from 2-fold cross-validation of a softmax regression (5 epochs);
the ground truth is which labels were flipped. Measured (seed 0): precision of the first 60 of
the confident-learning ranking 0.72, of the first 30 0.87 (seeds 0-4: 0.53-0.72 and
0.77-0.87); a random ranking gets 0.02. The bar: 0.4 and 0.6.
"""

import numpy as np
import pytest

from cnnlab import data, nn, optim
from cnnlab.analysis import label_issues, rank_label_issues
from cnnlab.analysis.crossval import flip_labels, out_of_sample_probs, precision_at_k


def test_flip_labels_moves_exactly_the_chosen_ones():
    y = np.arange(1000) % 10
    noisy, idx = flip_labels(y, 0.02, 10, seed=3)
    assert len(idx) == 20 and len(set(idx.tolist())) == 20
    assert (noisy[idx] != y[idx]).all()
    rest = np.setdiff1d(np.arange(1000), idx)
    assert (noisy[rest] == y[rest]).all()
    assert precision_at_k(idx, idx, 20) == 1.0 and precision_at_k(rest, idx, 20) == 0.0
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\)"):
        flip_labels(y, 1.5, 10)


def test_two_percent_flipped_mnist_labels_are_found():
    ds = data.mnist("train")
    keep = np.sort(np.random.default_rng(0).choice(len(ds), size=3000, replace=False))
    x, y = ds.x[keep], ds.y[keep]
    noisy, flipped = flip_labels(y, 0.02, 10, seed=0)
    probs = out_of_sample_probs(
        lambda f: nn.Sequential(nn.Flatten(), nn.Dense(784, 10, seed=f)),
        lambda p: optim.Adam(p, lr=0.01), x, noisy, folds=2, epochs=5, seed=0)
    assert probs.shape == (3000, 10)
    assert np.allclose(probs.sum(axis=1), 1.0)
    ranking = rank_label_issues(probs, noisy)
    assert precision_at_k(ranking, flipped, 60) >= 0.4
    assert precision_at_k(ranking, flipped, 30) >= 0.6
    # most flipped labels are among the confident-learning flags
    flags = np.flatnonzero(label_issues(probs, noisy))
    assert np.isin(flipped, flags).mean() >= 0.5
