"""Error analysis by hand: a spreadsheet of misclassified examples, tagged, then tallied.

The course's procedure: take the dev examples the model gets wrong, look at each one and tick
the categories it falls in (blurry, mislabeled, a dog mistaken for a cat, ...); the share of
the errors in a category is the *ceiling* of what fixing that category can give. With E errors
among N examples (error rate E/N) and c errors tagged with a category, fixing every one of them
lowers the error rate by at most c/N, to (E - c)/N. When a person reviews only a sample of
R of the E errors (the course: look at about 100), c/R estimates the category's share and the
ceiling is (c/R)(E/N).

``write_errors`` writes ``errors.csv`` (one row per misclassified example: its index, its file
where there is one, the true and predicted labels, the probability of each, the loss
-log p_true, the thumbnail's path, one empty column per tag, a comment), ``errors.json`` (the
split's size and error count, needed for the ceilings) and the thumbnails. ``tally`` reads the
filled-in file back; any edit it cannot read (a missing or renamed column, a tag that is not
0, 1 or blank) is a ValueError naming the row and column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.analysis.png import encode_png, upscale

__all__ = ["COLUMNS", "error_rows", "write_errors", "tally", "Tally", "TagCount",
           "softmax"]

# the fixed columns, in order; the tag columns go between "thumbnail" and "comment"
COLUMNS = ("index", "file", "true", "predicted", "p_true", "p_predicted", "loss", "thumbnail")
COMMENT = "comment"
DEFAULT_TAGS = ("blurry", "mislabeled")


def softmax(logits) -> np.ndarray:
    """exp(z - max z) / sum exp(z - max z) along the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _check_tags(tags) -> list[str]:
    tags = [str(t).strip() for t in tags]
    bad = [t for t in tags if not t or t in COLUMNS or t == COMMENT or "," in t]
    if bad:
        raise ValueError(f"tags must be non-empty names other than the fixed columns "
                         f"({', '.join(COLUMNS)}, {COMMENT}); received {bad}")
    if len(set(tags)) != len(tags):
        raise ValueError(f"tags must be distinct; received {tags}")
    return tags


def error_rows(probs, labels, files=None, classes=None) -> list[dict]:
    """One dict per misclassified example (argmax of ``probs`` != label), in index order."""
    probs = np.asarray(probs, dtype=np.float64)  # (N, K)
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    name = (lambda k: str(k)) if classes is None else (lambda k: str(classes[k]))
    rows = []
    for i in np.flatnonzero(pred != labels):
        t, p = int(labels[i]), int(pred[i])
        p_true = float(probs[i, t])
        rows.append({
            "index": int(i), "file": "" if files is None else str(files[i]),
            "true": name(t), "predicted": name(p), "p_true": p_true,
            "p_predicted": float(probs[i, p]),
            "loss": -math.log(max(p_true, 1e-300)),
        })
    return rows


def write_errors(folder, images, probs, labels, *, files=None, classes=None,
                 tags=DEFAULT_TAGS, split="dev", scale: int = 2) -> dict:
    """Write ``errors.csv``, ``errors.json`` and ``thumbnails/NNNNNN.png`` into ``folder``.

    images (N, H, W, C) in [0, 1]; probs (N, K); labels (N,). Returns the summary written to
    errors.json: ``split``, ``examples`` (N), ``errors``, ``error_rate``, ``tags``.
    """
    from cnnlab.train.checkpoint import atomic_write

    tags = _check_tags(tags)
    folder = Path(folder)
    thumbs = folder / "thumbnails"
    thumbs.mkdir(parents=True, exist_ok=True)
    rows = error_rows(probs, labels, files, classes)
    for row in rows:
        rel = f"thumbnails/{row['index']:06d}.png"
        png = encode_png(upscale(np.asarray(images[row["index"]]), scale))
        atomic_write(folder / rel, lambda f, png=png: f.write(png))
        row["thumbnail"] = rel
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*COLUMNS, *tags, COMMENT])
    for row in rows:
        writer.writerow([row["index"], row["file"], row["true"], row["predicted"],
                         f"{row['p_true']:.6f}", f"{row['p_predicted']:.6f}",
                         f"{row['loss']:.6f}", row["thumbnail"], *([""] * len(tags)), ""])
    atomic_write(folder / "errors.csv", lambda f: f.write(text.getvalue().encode()))
    n = int(len(labels))
    summary = {"split": split, "examples": n, "errors": len(rows),
               "error_rate": len(rows) / n if n else 0.0, "tags": tags}
    atomic_write(folder / "errors.json",
                 lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()))
    return summary


@dataclass
class TagCount:
    tag: str
    count: int  # errors tagged with it
    share: float  # count / errors
    ceiling: float | None  # the most the error rate can fall: count / examples
    error_rate_if_fixed: float | None  # (errors - count) / examples


@dataclass
class Tally:
    errors: int  # rows tallied (the errors a person reviewed)
    examples: int | None
    tags: list[TagCount]
    untagged: int  # rows with no tag ticked
    total_errors: int | None = None  # all the split's errors (errors.json), when more than rows

    @property
    def error_rate(self) -> float | None:
        if not self.examples:
            return None
        return (self.total_errors or self.errors) / self.examples

    def table(self) -> str:
        """The tally as aligned text: tag, count, share, ceiling, error rate if fixed."""
        lines = [f"{'tag':16s} {'count':>6s} {'share':>7s} {'ceiling':>8s} {'if fixed':>9s}"]
        for t in self.tags:
            ceil = "-" if t.ceiling is None else f"{100 * t.ceiling:.2f}%"
            after = "-" if t.error_rate_if_fixed is None else f"{100 * t.error_rate_if_fixed:.2f}%"
            lines.append(f"{t.tag:16s} {t.count:6d} {100 * t.share:6.1f}% {ceil:>8s} "
                         f"{after:>9s}")
        rate = ("" if self.error_rate is None
                else f", error rate {100 * self.error_rate:.2f}% of {self.examples} examples")
        if self.total_errors and self.total_errors > self.errors:
            lines.append(f"{self.errors} of {self.total_errors} errors reviewed (shares and "
                         f"ceilings estimated from them){rate}; {self.untagged} with no tag")
        else:
            lines.append(f"{self.errors} errors{rate}; {self.untagged} with no tag")
        return "\n".join(lines)


def _read_summary(path: Path) -> dict:
    side = path.with_name("errors.json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{side}: unreadable ({e})") from None
    return data if isinstance(data, dict) else {}


def tally(path, examples: int | None = None) -> Tally:
    """Count the ticked tags of a filled-in ``errors.csv``.

    ``examples``: the split's size, for the ceilings; default the ``examples`` in the
    ``errors.json`` beside the file (without either, ceilings are None). A tag cell is 1
    (ticked), 0 or blank (not).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets often add a BOM
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable ({e})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path}: empty; expected a header row with columns "
                         f"{', '.join(COLUMNS)}, the tags, {COMMENT}")
    header = [h.strip() for h in header]
    for col in (*COLUMNS, COMMENT):
        if col not in header:
            raise ValueError(f"{path}: row 1 (the header): column {col!r} is missing or was "
                             f"renamed; expected columns {', '.join(COLUMNS)}, the tags, "
                             f"{COMMENT}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: row 1 (the header): column {dup[0]!r} appears twice")
    tags = [h for h in header if h not in COLUMNS and h != COMMENT and h]
    if not tags:
        raise ValueError(f"{path}: row 1 (the header): no tag columns (between 'thumbnail' "
                         f"and 'comment'); write errors.csv with cnnlab errors --tags ...")
    where = {h: i for i, h in enumerate(header)}
    counts = dict.fromkeys(tags, 0)
    errors = untagged = 0
    for r, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # a blank line a spreadsheet left at the end
        errors += 1
        ticked = False
        for tag in tags:
            i = where[tag]
            value = cells[i].strip() if i < len(cells) else ""
            if value not in ("", "0", "1"):
                raise ValueError(f"{path}: row {r}, column {tag!r}: {value!r} is not 0, 1 or "
                                 f"blank")
            if value == "1":
                counts[tag] += 1
                ticked = True
        untagged += not ticked
    summary = _read_summary(path)
    if examples is None:
        examples = summary.get("examples")
    total = summary.get("errors")
    if not isinstance(total, int) or total < errors:
        total = errors  # every error is in the file (or no errors.json to say otherwise)
    if examples is not None and (not isinstance(examples, int) or examples < total):
        raise ValueError(f"{path}: the split's size must be an int >= the {total} errors; "
                         f"received {examples!r}")
    rows = []
    for tag in tags:
        c = counts[tag]
        share = c / errors if errors else 0.0
        # the share of the reviewed errors, times the error rate: c / N when all were reviewed
        ceil = None if not examples else share * total / examples
        after = None if not examples else total / examples - ceil
        rows.append(TagCount(tag, c, share, ceil, after))
    return Tally(errors, examples, rows, untagged, total)
