"""``cnnlab errors``: the error-analysis spreadsheet of a run, its tally, the likely mislabelled.

    cnnlab errors RUN_DIR [--split dev] [--tags blurry,mislabeled] [--out DIR]
    cnnlab errors --checkpoint FILE (--data DIR | --dataset NAME [--data-dir DIR] --split test)
    cnnlab errors --tally errors.csv [--examples N]

The first two write, into ``--out`` (default ``RUN_DIR/errors-SPLIT``, or ``errors-SPLIT``):
``errors.csv`` (a row per misclassified example, an empty column per tag, a comment column),
``errors.json`` (the split's size), ``thumbnails/`` and ``mislabelled.csv`` (the examples most
likely labelled wrong, by confident learning then self-confidence). An existing errors.csv is
never overwritten (it may hold a person's tags) unless ``--force``. ``--tally`` prints, per tag,
the count, the share of the errors and the ceiling: how far the error rate falls if the whole
category is fixed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from cnnlab.cli.common import CLIError, positive_int, user_errors

__all__ = ["register", "run", "write_mislabelled"]


def register(sub) -> None:
    p = sub.add_parser("errors", help="error analysis: errors.csv to tag by hand, its tally, "
                       "and the examples most likely mislabelled")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None,
                   help="a folder written by cnnlab train")
    p.add_argument("--split", default=None,
                   help="train, train_dev, dev or test (default dev; test with --checkpoint)")
    p.add_argument("--tags", default="blurry,mislabeled",
                   help="comma-separated tag columns (default blurry,mislabeled)")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/errors-SPLIT)")
    p.add_argument("--force", action="store_true", help="overwrite an existing errors.csv")
    p.add_argument("--top", type=positive_int(), default=50,
                   help="likely-mislabelled examples listed (default 50)")
    p.add_argument("--checkpoint", default=None, help="a checkpoint instead of a run folder")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="with --checkpoint: the examples (a folder as --dev-data, or "
                   "mnist-shifted)")
    p.add_argument("--dataset", default=None, help="with --checkpoint: a dataset name")
    p.add_argument("--data-dir", default=None, help="with --checkpoint and --dataset")
    p.add_argument("--tally", metavar="CSV", default=None,
                   help="count the tags of a filled-in errors.csv instead")
    p.add_argument("--examples", type=positive_int(), default=None,
                   help="with --tally: the split's size (default from errors.json beside it)")
    p.set_defaults(func=run)


def _tally(args) -> int:
    from cnnlab.analysis.errors import tally

    if args.run_dir or args.checkpoint:
        raise CLIError("--tally reads a filled-in errors.csv; give no RUN_DIR or --checkpoint")
    try:
        with user_errors():
            t = tally(args.tally, examples=args.examples)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(t.table())
    if t.examples is None:
        print("(ceilings need the split's size: --examples N, or errors.json beside the file)")
    return 0


def _data(args):
    """(name of the split, dataset, model, classes)."""
    from cnnlab.cli.loaders import load_dataset, model_from_checkpoint
    from cnnlab.cli.rundata import load_source, read_run, run_model, split_of

    if args.checkpoint:
        if args.run_dir:
            raise CLIError("give RUN_DIR or --checkpoint, not both")
        with user_errors():
            model, info = model_from_checkpoint(args.checkpoint)
        classes = info.get("classes") or [str(i) for i in range(info["num_classes"])]
        if args.data:
            ds = load_source(args.data, "--data", args.split or "dev", info["input_shape"],
                             classes)
            return args.split or "data", ds, model, classes
        split = args.split or "test"
        if split not in ("train", "test"):
            raise CLIError(f"--split with --checkpoint and a dataset must be 'train' or "
                           f"'test'; received {split!r}")
        dataset = args.dataset or info.get("dataset", "mnist")
        data_dir = args.data_dir if args.data_dir is not None else info.get("data_dir")
        with user_errors():
            ds = load_dataset(dataset, data_dir, split)
        return split, ds, model, classes
    if not args.run_dir:
        raise CLIError("give a RUN_DIR, --checkpoint FILE, or --tally errors.csv")
    if args.data or args.dataset or args.data_dir:
        raise CLIError("--data, --dataset and --data-dir go with --checkpoint; a run folder "
                       "knows its data")
    out, settings, _ = read_run(args.run_dir)
    split = args.split or "dev"
    ds = split_of(out, settings, split)
    model, info = run_model(out)
    classes = info.get("classes") or [str(i) for i in range(info["num_classes"])]
    return split, ds, model, classes


def write_mislabelled(folder: Path, images, probs, labels, classes, files, top: int) -> dict:
    """``mislabelled.csv``: the ``top`` examples most likely labelled wrong, with thumbnails.
    Returns {"flagged": count of confident-learning label issues, "rows": the rows}."""
    from cnnlab.analysis.labels import label_issues, rank_label_issues, self_confidence
    from cnnlab.analysis.png import encode_png, upscale
    from cnnlab.train.checkpoint import atomic_write

    issues = label_issues(probs, labels)
    order = rank_label_issues(probs, labels)[:top]
    conf = self_confidence(probs, labels)
    rows = []
    for rank, i in enumerate(order, start=1):
        rel = f"thumbnails/{int(i):06d}.png"
        if not (folder / rel).exists():
            png = encode_png(upscale(np.asarray(images[i]), 2))
            atomic_write(folder / rel, lambda f, png=png: f.write(png))
        p = int(probs[i].argmax())
        rows.append({"rank": rank, "index": int(i), "file": "" if files is None else files[i],
                     "label": str(classes[labels[i]]), "model_says": str(classes[p]),
                     "p_label": float(conf[i]), "p_model": float(probs[i, p]),
                     "label_issue": int(issues[i]), "thumbnail": rel})
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["rank"],
                       lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "p_label": f"{r['p_label']:.6f}", "p_model": f"{r['p_model']:.6f}"})
    atomic_write(folder / "mislabelled.csv", lambda f: f.write(text.getvalue().encode()))
    return {"flagged": int(issues.sum()), "rows": rows}


def run(args) -> int:
    from cnnlab.analysis.errors import write_errors
    from cnnlab.cli.rundata import arrays_of, probabilities

    if args.tally:
        return _tally(args)
    split, ds, model, classes = _data(args)
    default = (Path(args.run_dir) if args.run_dir else Path(".")) / f"errors-{split}"
    out = Path(args.out) if args.out else default
    if (out / "errors.csv").exists() and not args.force:
        raise CLIError(f"{out / 'errors.csv'} exists (it may hold your tags); use --force to "
                       "overwrite it or --out for another folder")
    tags = [t for t in (s.strip() for s in args.tags.split(",")) if t]
    if not tags:
        raise CLIError(f"--tags needs at least one tag name, e.g. blurry,mislabeled; received "
                       f"{args.tags!r}")
    x, y = arrays_of(ds)
    probs = probabilities(model, x)
    if probs.shape[1] < int(y.max()) + 1:
        raise CLIError(f"the model has {probs.shape[1]} classes but the {split} labels go up "
                       f"to {int(y.max())}")
    files = getattr(ds, "files", None)
    try:
        summary = write_errors(out, x, probs, y, files=files, classes=classes, tags=tags,
                               split=split)
    except ValueError as e:
        raise CLIError(f"--tags {args.tags!r}: {e}") from None
    mis = write_mislabelled(out, x, probs, y, classes, files, args.top)
    print(f"{summary['errors']} errors among {summary['examples']} {split} examples (error "
          f"{100 * summary['error_rate']:.2f}%)")
    print(f"wrote {out / 'errors.csv'} (tag columns: {', '.join(tags)}), "
          f"{out / 'thumbnails'}/, {out / 'mislabelled.csv'}")
    print(f"likely mislabelled: {mis['flagged']} flagged by confident learning; first "
          f"{min(5, len(mis['rows']))}:")
    for r in mis["rows"][:5]:
        print(f"  #{r['index']}: labelled {r['label']} (p={r['p_label']:.3f}), the model says "
              f"{r['model_says']} (p={r['p_model']:.3f})")
    if split == "train":
        print("note: the model trained on these examples, so its probabilities agree with "
              "their labels, wrong ones too; to rank training labels use out-of-sample "
              "probabilities (cnnlab.analysis.crossval.out_of_sample_probs)")
    print(f"next: tick the tag columns in a spreadsheet, then cnnlab errors --tally "
          f"{out / 'errors.csv'}")
    return 0
