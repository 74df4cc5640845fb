"""How well cnnlab finds mislabelled training examples: MNIST with 2% of labels flipped.

Flip a fraction of the training labels to another class at random (seeded), get out-of-sample
probabilities by k-fold cross-validation of a model trained on the noisy labels, rank the
examples with confident learning (and with self-confidence alone), and report the precision
of the first k of the ranking, k = the number flipped (and k = half of it), plus the
precision and recall of the confident-learning flags.

    python benchmarks/label_noise.py                # bundled subset, LeNet-5, 2 folds, 3 epochs
    python benchmarks/label_noise.py --data-dir ~/mnist    # full MNIST (60,000)
    python benchmarks/label_noise.py --model dense --epochs 3 --limit 3000   # seconds
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def make_model(name: str, seed: int):
    from cnnlab import models, nn

    if name == "dense":  # softmax regression: fast, for the test-sized version
        return nn.Sequential(nn.Flatten(), nn.Dense(784, 10, seed=seed))
    return models.get(name, seed=seed)


def run(model="lenet5", fraction=0.02, folds=2, epochs=3, limit=None, data_dir=None,
        seed=0, lr=1e-3, verbose=False) -> dict:
    from cnnlab import data, optim
    from cnnlab.analysis import label_issues, rank_label_issues
    from cnnlab.analysis.crossval import flip_labels, out_of_sample_probs, precision_at_k

    ds = data.mnist("train", root=data_dir)
    x, y = ds.x, ds.y
    if limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
        x, y = x[keep], y[keep]
    noisy, flipped = flip_labels(y, fraction, 10, seed=seed)
    start = time.perf_counter()
    probs = out_of_sample_probs(lambda f: make_model(model, seed + f),
                                lambda p: optim.Adam(p, lr=lr), x, noisy, folds=folds,
                                epochs=epochs, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - start
    k = len(flipped)
    out = {"model": model, "examples": int(len(y)), "flipped": int(k), "folds": folds,
           "epochs": epochs, "seconds": round(seconds, 1),
           "held_out_accuracy_vs_true_labels": float(np.mean(probs.argmax(1) == y))}
    for method in ("confident_learning", "self_confidence"):
        ranking = rank_label_issues(probs, noisy, method=method)
        out[f"{method}_precision_at_{k}"] = precision_at_k(ranking, flipped, k)
        out[f"{method}_precision_at_{k // 2}"] = precision_at_k(ranking, flipped, max(k // 2, 1))
    flags = label_issues(probs, noisy)
    hits = np.isin(np.flatnonzero(flags), flipped).sum()
    out["cl_flagged"] = int(flags.sum())
    out["cl_flag_precision"] = float(hits / max(flags.sum(), 1))
    out["cl_flag_recall"] = float(hits / max(k, 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet5", help="a zoo model, or 'dense' (softmax "
                   "regression)")
    p.add_argument("--fraction", type=float, default=0.02)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="use this many training images")
    p.add_argument("--data-dir", default=None, help="full MNIST IDX files (default: bundled)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args()
    result = run(a.model, a.fraction, a.folds, a.epochs, a.limit, a.data_dir, a.seed,
                 verbose=False)
    for key, v in result.items():
        print(f"{key:42s} {v:.4f}" if isinstance(v, float) else f"{key:42s} {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
