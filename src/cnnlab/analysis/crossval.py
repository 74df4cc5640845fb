"""Out-of-sample probabilities by k-fold cross-validation, and labels flipped on purpose.

Finding mislabelled *training* examples needs, for every example, probabilities from a model
that did not train on it (a model that saw a wrong label learns to agree with it): split the
data into k folds, train a fresh model on k-1 of them, predict the held-out one, k times
(Northcutt et al. 2021, section 2). ``flip_labels`` makes a test of a detector: flip a known
fraction of the labels to another class, at random, and see how many of them it finds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["out_of_sample_probs", "flip_labels", "precision_at_k"]


def flip_labels(labels, fraction: float, num_classes: int, seed=0):
    """(noisy labels, indices flipped): ``round(fraction * N)`` examples, chosen at random,
    each moved to a different class drawn uniformly from the other K-1."""
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"flip_labels: fraction must be in [0, 1); received {fraction!r}")
    if num_classes < 2:
        raise ValueError(f"flip_labels: num_classes must be >= 2; received {num_classes!r}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    idx = np.sort(rng.choice(n, size=round(fraction * n), replace=False))
    noisy = labels.copy()
    shift = rng.integers(1, num_classes, size=len(idx))  # 1..K-1: never the same class
    noisy[idx] = (labels[idx] + shift) % num_classes
    return noisy, idx


def precision_at_k(ranking, truth_idx, k: int) -> float:
    """Share of the first ``k`` ranked examples that are in ``truth_idx``."""
    if k < 1:
        raise ValueError(f"precision_at_k: k must be >= 1; received {k!r}")
    top = np.asarray(ranking)[:k]
    return float(np.isin(top, np.asarray(truth_idx)).mean())


def out_of_sample_probs(make_model, make_optimizer, x, y, *, folds: int = 2, epochs: int = 2,
                        batch_size: int = 64, seed: int = 0, verbose: bool = False
                        ) -> np.ndarray:
    """(N, K) softmax probabilities, each row from the model of the fold that held it out.

    make_model(fold) -> a fresh Module; make_optimizer(params) -> its optimizer. Folds are
    stratified and seeded.
    """
    from cnnlab.analysis.errors import softmax
    from cnnlab.data.splits import split_indices
    from cnnlab.train import fit, predict

    x, y = np.asarray(x), np.asarray(y, dtype=np.int64)
    if folds < 2:
        raise ValueError(f"out_of_sample_probs: folds must be >= 2; received {folds!r}")
    n = len(y)
    sizes = [n // folds] * (folds - 1)
    parts = split_indices(y, sizes, seed=seed, stratify=True)  # folds disjoint index arrays
    probs = None
    for f, held in enumerate(parts):
        rest = np.setdiff1d(np.arange(n), held)
        model = make_model(f)
        fit(model, (x[rest], y[rest]), optimizer=make_optimizer(model.parameters()),
            epochs=epochs, batch_size=batch_size, seed=seed + f, verbose=verbose)
        p = softmax(predict(model, x[held]))
        if probs is None:
            probs = np.zeros((n, p.shape[1]))
        probs[held] = p
    return probs
