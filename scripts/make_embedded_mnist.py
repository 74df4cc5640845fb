"""Build the MNIST subset shipped inside cnnlab (src/cnnlab/data/embedded/).

Usage (from the repository root)::

    python scripts/make_embedded_mnist.py DIR [--train 15000] [--test 2500] [--seed 0]

DIR holds the four standard MNIST IDX files (raw or .gz): train-images-idx3-ubyte,
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte. The subset is
stratified (each digit keeps its share of the split, by largest remainders so the totals are
exact) and seeded (the same seed gives the same files, byte for byte). It is written as IDX gzip
files with the standard names, so cnnlab.data.mnist reads it with the same reader as the full
set, next to the licence and attribution (README.md, LICENSE). The script prints the class
counts and the size of the files; the whole folder must stay under 3 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from cnnlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, write_idx

OUT = Path(__file__).resolve().parent.parent / "src" / "cnnlab" / "data" / "embedded"
LIMIT = 3_000_000  # bytes, the whole embedded folder

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find(src: Path, name: str) -> Path:
    for candidate in (src / name, src / (name + ".gz")):
        if candidate.exists():
            return candidate
    sys.exit(f"make_embedded_mnist: no {name} or {name}.gz in {src}")


def stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices, each class getting its share of ``n`` (largest remainder), sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n - take.sum()]] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take)
    ]
    return np.sort(np.concatenate(chosen))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder with the four standard MNIST IDX files")
    parser.add_argument("--train", type=int, default=15000, help="training images to keep")
    parser.add_argument("--test", type=int, default=2500, help="test images to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", args.train), ("test", args.test)):
        images_name, labels_name = FILES[split]
        images = read_idx(find(args.src, images_name), IMAGES_MAGIC)
        labels = read_idx(find(args.src, labels_name), LABELS_MAGIC)
        keep = stratified_indices(labels, n, rng)
        write_idx(args.out / (images_name + ".gz"), images[keep])
        write_idx(args.out / (labels_name + ".gz"), labels[keep])
        counts = np.bincount(labels[keep], minlength=10)
        print(f"{split}: {len(keep)} images; per digit {' '.join(map(str, counts))}")

    total = 0
    for path in sorted(args.out.iterdir()):
        size = os.path.getsize(path)
        total += size
        print(f"  {path.name:32s} {size:>10,d} bytes")
    print(f"  {'total':32s} {total:>10,d} bytes (limit {LIMIT:,d})")
    if total > LIMIT:
        print(
            "make_embedded_mnist: the subset is over the limit; pass smaller --train/--test",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
