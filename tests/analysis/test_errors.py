"""errors.csv: what write_errors writes (read with the csv module), and tally by hand."""

import csv
import json
import math

import numpy as np
import pytest

from cnnlab.analysis import tally, write_errors
from cnnlab.analysis.errors import COLUMNS

# 5 examples of 3 classes; examples 1 and 3 are misclassified
PROBS = np.array([[0.8, 0.1, 0.1],
                  [0.2, 0.7, 0.1],   # label 0, predicted 1
                  [0.1, 0.1, 0.8],
                  [0.05, 0.05, 0.9],  # label 1, predicted 2
                  [0.3, 0.6, 0.1]])
LABELS = np.array([0, 0, 2, 1, 1])


def _write(tmp_path, **kw):
    images = np.linspace(0, 1, 5 * 4 * 3).reshape(5, 4, 3, 1)
    return write_errors(tmp_path, images, PROBS, LABELS, classes=["cat", "dog", "bird"],
                        files=[f"img{i}.png" for i in range(5)], **kw)


def test_write_errors(tmp_path):
    summary = _write(tmp_path, tags=("blurry", "mislabeled"))
    assert summary == {"split": "dev", "examples": 5, "errors": 2, "error_rate": 0.4,
                       "tags": ["blurry", "mislabeled"]}
    assert json.loads((tmp_path / "errors.json").read_text()) == summary
    with open(tmp_path / "errors.csv", newline="") as f:
        rows = list(csv.DictReader(f))
        f.seek(0)
        header = next(csv.reader(f))
    assert header == [*COLUMNS, "blurry", "mislabeled", "comment"]
    assert [r["index"] for r in rows] == ["1", "3"]
    r = rows[0]
    assert (r["file"], r["true"], r["predicted"]) == ("img1.png", "cat", "dog")
    assert float(r["p_true"]) == pytest.approx(0.2) and float(r["p_predicted"]) == 0.7
    assert float(r["loss"]) == pytest.approx(-math.log(0.2), abs=1e-6)
    assert r["blurry"] == r["mislabeled"] == r["comment"] == ""
    assert rows[1]["thumbnail"] == "thumbnails/000003.png"
    PIL = pytest.importorskip("PIL.Image")
    with PIL.open(tmp_path / rows[1]["thumbnail"]) as im:
        assert im.size == (6, 8)  # 3 wide, 4 high, scaled 2x


def _fill(path, cells):
    """Tick tag cells: {(row number in the file, column): value}, as a spreadsheet would."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for (r, col), value in cells.items():
        rows[r - 1][rows[0].index(col)] = value
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_tally_by_hand(tmp_path):
    _write(tmp_path, tags=("blurry", "mislabeled", "dog"))
    _fill(tmp_path / "errors.csv", {(2, "blurry"): "1", (2, "mislabeled"): "1",
                                    (3, "blurry"): " 1 ", (3, "dog"): "0"})
    t = tally(tmp_path / "errors.csv")
    assert (t.errors, t.examples, t.untagged) == (2, 5, 0)
    by = {c.tag: c for c in t.tags}
    # blurry: both errors -> share 100%, ceiling 2/5, error 0.4 -> 0.0
    assert (by["blurry"].count, by["blurry"].share) == (2, 1.0)
    assert by["blurry"].ceiling == pytest.approx(0.4)
    assert by["blurry"].error_rate_if_fixed == pytest.approx(0.0)
    assert (by["mislabeled"].count, by["mislabeled"].share) == (1, 0.5)
    assert by["mislabeled"].error_rate_if_fixed == pytest.approx(0.2)
    assert by["dog"].count == 0 and by["dog"].ceiling == 0.0
    assert "blurry" in t.table() and "40.00%" in t.table()
    # without errors.json, and without a size given, there are no ceilings
    (tmp_path / "errors.json").unlink()
    assert tally(tmp_path / "errors.csv").tags[0].ceiling is None
    assert tally(tmp_path / "errors.csv", examples=100).tags[0].ceiling == pytest.approx(0.02)


def test_tally_of_the_course_example(tmp_path):
    # 100 misclassified dev examples out of 1,000 (10% error), 5 of them dogs: fixing dogs
    # takes the error to 9.5% at best; 50 great cats: to 5%
    path = tmp_path / "errors.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, "dog", "great_cat", "comment"])
        for i in range(100):
            w.writerow([i, "", "cat", "dog", 0.1, 0.9, 2.3, "", int(i < 5), int(i >= 50), ""])
    t = tally(path, examples=1000)
    by = {c.tag: c for c in t.tags}
    assert by["dog"].share == 0.05 and by["dog"].error_rate_if_fixed == pytest.approx(0.095)
    assert by["great_cat"].error_rate_if_fixed == pytest.approx(0.05)
    assert t.untagged == 45


def test_tally_of_a_reviewed_sample(tmp_path):
    # 200 errors among 1,000 examples (errors.json); a person reviewed 50 of them, 10 blurry:
    # share 20%, so blurry errors are about 0.2 * 200 / 1000 = 4% of the examples
    path = tmp_path / "errors.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, "blurry", "comment"])
        for i in range(50):
            w.writerow([i, "", "cat", "dog", 0.1, 0.9, 2.3, "", int(i < 10), ""])
    (tmp_path / "errors.json").write_text(json.dumps({"examples": 1000, "errors": 200}))
    t = tally(path)
    (blurry,) = t.tags
    assert (t.errors, t.total_errors, t.error_rate) == (50, 200, 0.2)
    assert blurry.share == 0.2 and blurry.ceiling == pytest.approx(0.04)
    assert blurry.error_rate_if_fixed == pytest.approx(0.16)
    assert "50 of 200 errors reviewed" in t.table()


@pytest.mark.parametrize("edit, match", [
    (lambda rows: rows[0].__setitem__(3, "pred"),
     r"row 1 \(the header\): column 'predicted' is missing or was renamed"),
    (lambda rows: [r.pop() for r in rows],
     r"column 'comment' is missing or was renamed"),
    (lambda rows: rows[2].__setitem__(8, "yes"),
     r"row 3, column 'blurry': 'yes' is not 0, 1 or blank"),
    (lambda rows: rows[1].__setitem__(9, "2"),
     r"row 2, column 'mislabeled': '2' is not 0, 1 or blank"),
    (lambda rows: [r.__delitem__(slice(8, 10)) for r in rows], "no tag columns"),
])
def test_tally_names_the_bad_row_and_column(tmp_path, edit, match):
    _write(tmp_path)
    path = tmp_path / "errors.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(ValueError, match=match):
        tally(path)


def test_bad_tags(tmp_path):
    with pytest.raises(ValueError, match="tags must be non-empty names other than the fixed"):
        _write(tmp_path, tags=("blurry", "loss"))
    with pytest.raises(ValueError, match="tags must be distinct"):
        _write(tmp_path, tags=("a", "a"))
