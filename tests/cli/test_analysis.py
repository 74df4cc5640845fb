"""After training, on the command line: train-dev and other-source splits, diagnose, errors,
tally, compare, report. Every command is run for real (a subprocess) on tiny runs.

The data: the 4-class synthetic task of tests/cli (a bright square per class); the dev and
test sets are its test images blurred, blocky and noisy (data.shift_images), written as IDX
files: a mismatched dev set, on which the model makes errors."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import shift_images
from tests.cli.conftest import SMALL
from tests.cli.helpers import assert_ok, assert_user_error, read_json, run_cli
from tests.data.helpers import idx_bytes

PIL = pytest.importorskip("PIL.Image")


def _read_idx_images(path):
    raw = path.read_bytes()
    n, h, w = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw[16:], np.uint8).reshape(n, h, w)


def _shifted_folder(folder, data4, seed):
    """data4's test images, shifted hard, as one IDX pair (100 images, 25 per class)."""
    folder.mkdir()
    x = _read_idx_images(data4 / "t10k-images-idx3-ubyte")[..., None] / 255.0
    labels = (data4 / "t10k-labels-idx1-ubyte").read_bytes()
    shifted = shift_images(x, seed=seed, downscale=4, blur=1.5, noise=0.35)
    (folder / "dev-images-idx3-ubyte").write_bytes(
        idx_bytes(np.round(shifted[..., 0] * 255).astype(np.uint8)))
    (folder / "dev-labels-idx1-ubyte").write_bytes(labels)
    return folder


@pytest.fixture(scope="module")
def mismatch(tmp_path_factory, data4):
    """A run: train on data4 with a 20% training-dev set, dev and test from shifted images."""
    cwd = tmp_path_factory.mktemp("mismatch")
    dev = _shifted_folder(cwd / "dev", data4, 1)
    test = _shifted_folder(cwd / "test", data4, 2)
    result = run_cli("train", "--data-dir", data4, "--epochs", "2", "--num-classes", "4",
                     "--train-dev-fraction", "0.2", "--dev-data", dev, "--test-data", test,
                     "--out", "run", *SMALL, cwd=cwd)
    assert_ok(result)
    return cwd, cwd / "run", result


def test_train_dev_and_other_source_splits(mismatch):
    cwd, run, result = mismatch
    m = read_json(run / "metrics.json")
    # 200 training images: 20% (40, stratified) held out as training-dev; no --val-fraction
    # cut (the dev set comes from --dev-data); dev and test: 100 shifted images each
    assert (m["train_size"], m["train_dev_size"], m["dev_size"], m["test_size"]) == (160, 40,
                                                                                     100, 100)
    for split in ("train", "train_dev", "dev", "test"):
        assert m[f"{split}_error"] == pytest.approx(1 - m[f"{split}_accuracy"])
        # an accuracy on n images is a multiple of 1/n
        n = m[f"{split}_size"]
        assert m[f"{split}_accuracy"] * n == pytest.approx(round(m[f"{split}_accuracy"] * n))
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert {"train_dev_loss", "train_dev_accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    # the last epoch's training-dev accuracy is the final model's, as in metrics.json
    assert float(rows[-1]["train_dev_accuracy"]) == pytest.approx(m["train_dev_accuracy"])
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(m["dev_accuracy"])
    config = read_json(run / "config.json")
    assert config["val_fraction"] == 0.0 and config["train_dev_fraction"] == 0.2
    assert config["dev_data"] == str(cwd / "dev")
    # the dev set really is the shifted one: harder than the training distribution
    assert m["dev_error"] > m["train_dev_error"]


def test_mnist_shifted_halves_the_runs_own_mnist_test_split(tmp_path, data4):
    # with --data-dir, mnist-shifted shifts that MNIST's test split: its dev half is 50 of
    # the 100; the test set stays the plain test split
    result = run_cli("train", "--data-dir", data4, "--epochs", "1", "--num-classes", "4",
                     "--dev-data", "mnist-shifted", "--out", "run", *SMALL, cwd=tmp_path)
    assert_ok(result)
    m = read_json(tmp_path / "run" / "metrics.json")
    assert (m["train_size"], m["dev_size"], m["test_size"]) == (200, 50, 100)
    assert "train_dev_size" not in m
    assert read_json(tmp_path / "run" / "config.json")["dev_data"] == "mnist-shifted"
    # dev from elsewhere, test from the dataset: diagnose says they should match
    result = run_cli("diagnose", "run", cwd=tmp_path)
    assert_ok(result)
    assert "note: dev (mnist-shifted) and test (the training data's own split) come from " \
           "different sources" in result.stdout
    assert "different sources" in read_json(tmp_path / "run" / "diagnosis.json")["notes"][
        "dev_test"]


def test_diagnose_writes_the_table_and_json(mismatch):
    cwd, run, _ = mismatch
    result = run_cli("diagnose", "run", "--human-error", "1%", cwd=cwd)
    assert_ok(result)
    m = read_json(run / "metrics.json")
    d = read_json(run / "diagnosis.json")
    assert d["human"] == 0.01
    for split in ("train", "train_dev", "dev", "test"):
        assert d[split] == pytest.approx(1 - m[f"{split}_accuracy"])
    # the gaps by hand from metrics.json
    assert d["avoidable_bias"] == pytest.approx(m["train_error"] - 0.01)
    assert d["variance"] == pytest.approx(m["train_dev_error"] - m["train_error"])
    assert d["data_mismatch"] == pytest.approx(m["dev_error"] - m["train_dev_error"])
    assert d["dev_overfitting"] == pytest.approx(m["test_error"] - m["dev_error"])
    assert d["sizes"] == {"train": 160, "train_dev": 40, "dev": 100, "test": 100}
    assert d["focus"] in ("bias", "variance", "data_mismatch", "dev_overfitting", "none")
    assert f"focus: {d['focus']}" in result.stdout
    for word in ("human", "train-dev", "data mismatch", "dev overfitting", "significant"):
        assert word in result.stdout
    assert "note:" not in result.stdout  # dev and test both from other sources



def test_diagnose_without_a_training_dev_set_says_which_option(run4):
    run, _ = run4
    result = run_cli("diagnose", run, cwd=run.parent)
    assert_ok(result)
    d = read_json(run / "diagnosis.json")
    assert d["data_mismatch"] is None and d["avoidable_bias"] is None  # absent, not 0
    assert d["variance_from"] == "dev" and d["variance"] is not None
    assert "train with --train-dev-fraction F" in result.stdout
    assert "give --human-error" in result.stdout
    assert d["notes"]["data_mismatch"] == "not measured: train with --train-dev-fraction F"
    assert "note:" not in result.stdout


def test_errors_tally_and_mislabelled(mismatch):
    cwd, run, _ = mismatch
    result = run_cli("errors", "run", "--tags", "blurry,dark,mislabeled", cwd=cwd)
    assert_ok(result)
    m = read_json(run / "metrics.json")
    folder = run / "errors-dev"
    with open(folder / "errors.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    n_errors = round(m["dev_error"] * 100)
    assert len(rows) == n_errors > 0
    assert f"{n_errors} errors among 100 dev examples" in result.stdout
    assert list(rows[0]) == ["index", "file", "true", "predicted", "p_true", "p_predicted",
                             "loss", "thumbnail", "blurry", "dark", "mislabeled", "comment"]
    for r in rows:
        assert r["true"] != r["predicted"]
        assert float(r["p_predicted"]) >= float(r["p_true"])
        assert float(r["loss"]) == pytest.approx(-np.log(float(r["p_true"])), abs=1e-4)
        with PIL.open(folder / r["thumbnail"]) as im:
            assert im.size == (56, 56)  # 28x28 shown 2x
    with open(folder / "mislabelled.csv", newline="") as f:
        mis = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in mis] == list(range(1, len(mis) + 1))

    # a person ticks tags in a spreadsheet; the tally counts them
    with open(folder / "errors.csv", newline="") as f:
        table = list(csv.reader(f))
    for r in table[1:]:
        r[8] = "1"  # every error blurry
    table[1][10] = "1"  # the first one mislabelled
    buf = io.StringIO()
    csv.writer(buf).writerows(table)
    (folder / "errors.csv").write_text(buf.getvalue())
    result = run_cli("errors", "--tally", folder / "errors.csv", cwd=cwd)
    assert_ok(result)
    lines = {ln.split()[0]: ln.split() for ln in result.stdout.splitlines()[1:4]}
    rate = n_errors / 100
    assert lines["blurry"][1:] == [str(n_errors), "100.0%", f"{100 * rate:.2f}%", "0.00%"]
    assert lines["mislabeled"][1:3] == ["1", f"{100 / n_errors:.1f}%"]
    assert lines["mislabeled"][4] == f"{100 * (n_errors - 1) / 100:.2f}%"
    assert lines["dark"][1] == "0"
    # a second errors run would overwrite the tags: refused
    assert_user_error(run_cli("errors", "run", cwd=cwd), "exists", "--force")


@pytest.mark.parametrize("edit, words", [
    (lambda t: t[0].__setitem__(2, "truth"), ["row 1", "'true' is missing or was renamed"]),
    (lambda t: t[1].__setitem__(8, "x"), ["row 2", "column 'blurry'", "'x' is not 0, 1 or blank"]),
])
def test_tally_bad_edits(tmp_path, mismatch, edit, words):
    cwd, run, _ = mismatch
    out = tmp_path / "e"
    if not (cwd / "pristine").exists():  # one errors.csv for every case, copied
        assert_ok(run_cli("errors", run, "--out", cwd / "pristine", cwd=cwd))
    shutil.copytree(cwd / "pristine", out)
    with open(out / "errors.csv", newline="") as f:
        table = list(csv.reader(f))
    edit(table)
    buf = io.StringIO()
    csv.writer(buf).writerows(table)
    (out / "errors.csv").write_text(buf.getvalue())
    assert_user_error(run_cli("errors", "--tally", out / "errors.csv", cwd=cwd), *words)


def test_errors_from_a_checkpoint_and_data_folder(mismatch):
    cwd, run, _ = mismatch
    result = run_cli("errors", "--checkpoint", run / "last.npz", "--data", cwd / "test",
                     "--out", "ck", cwd=cwd)
    assert_ok(result)
    m = read_json(run / "metrics.json")
    with open(cwd / "ck" / "errors.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == round(m["test_error"] * 100)


def test_compare_selects_among_the_satisficing_runs(mismatch, run4):
    cwd, run, _ = mismatch
    other, _ = run4
    result = run_cli("compare", "run", other, "--satisfice", "latency_ms<=100000",
                     "--repeats", "3", cwd=cwd)
    assert_ok(result)
    m1, m2 = read_json(run / "metrics.json"), read_json(other / "metrics.json")
    best = "run" if m1["dev_accuracy"] >= m2["dev_accuracy"] else str(other)
    assert "train_seconds" in result.stdout.splitlines()[0]  # from each run's timing.json
    assert read_json(run / "timing.json")["train_seconds"] > 0
    assert f"among the runs meeting latency_ms<=100000: {best} " in result.stdout
    # LeNet-5 with 4 classes: 5*5*1*6+6 + 5*5*6*16+16 + 400*120+120 + 120*84+84 + 84*4+4
    assert "61,196" in result.stdout
    # a constraint no run meets: each says what it broke, exit 1
    result = run_cli("compare", "run", other, "--satisfice", "params<1000", "--repeats", "1",
                     cwd=cwd)
    assert result.returncode == 1
    assert result.stdout.count("rejected: params<1000 (has 61196)") == 2
    assert "no run meets every constraint (params<1000)" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--satisfice", "speed<=1"], ["unknown metric 'speed'", "known metrics:", "latency_ms",
                                   "dev_accuracy"]),
    (["--satisfice", "latency_ms=<1"], ["not METRIC OP NUMBER", "known metrics:"]),
    (["--optimize", "acc"], ["unknown optimizing metric 'acc'", "known metrics:"]),
])
def test_compare_bad_constraints(mismatch, args, words):
    cwd, _, _ = mismatch
    assert_user_error(run_cli("compare", "run", "--repeats", "1", *args, cwd=cwd), *words)


def test_report_is_self_contained(mismatch):
    cwd, run, _ = mismatch
    result = run_cli("report", "run", cwd=cwd)
    assert_ok(result)
    page = (run / "report.html").read_text()
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # the svg namespace is a name, not a fetch
    assert "https://" not in page
    srcs = [s.split('"', 1)[0] for s in page.split(' src="')[1:]]
    assert srcs and all(s.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,"))
                        for s in srcs)
    m = read_json(run / "metrics.json")
    assert f"dev: 100 images, accuracy {100 * m['dev_accuracy']:.2f}%" in page


@pytest.mark.parametrize("args, words", [
    (["train", "--data-dir", "{data4}", "--dev-data", "{cwd}/nowhere", "--num-classes", "4"],
     ["--dev-data", "no such folder", "mnist-shifted"]),
    (["train", "--data-dir", "{data4}", "--dev-data", "mnist-shifted", "--val-fraction", "0.2",
      "--num-classes", "4"], ["--dev-data", "drop --val-fraction 0.2", "--train-dev-fraction"]),
    (["train", "--data-dir", "{data4}", "--train-dev-fraction", "1.5"],
     ["--train-dev-fraction", "must be in [0, 1)"]),
    (["train", "--data-dir", "{data4}", "--train-dev-fraction", "0.5", "--val-fraction", "0.5"],
     ["leave no training images"]),
    (["diagnose", "{cwd}"], ["no config.json", "not a finished cnnlab train run"]),
    (["diagnose", "{run}", "--human-error", "abc"], ["--human-error", "0.2%"]),
    (["errors", "{run4}", "--split", "train_dev"], ["no train_dev split",
                                                    "--train-dev-fraction"]),
    (["errors", "{run4}", "--split", "val"], ["--split must be one of"]),
    (["errors", "--tally", "{cwd}/missing.csv"], ["missing.csv", "no such file"]),
    (["errors", "{run}", "--tags", ",", "--out", "{cwd}/e"], ["--tags needs at least one tag"]),
    (["errors", "{run}", "--tags", "a,loss", "--out", "{cwd}/e"],
     ["--tags", "other than the fixed columns"]),
    (["report", "{cwd}/nothing"], ["no such run folder"]),
])
def test_bad_input_is_one_line(tmp_path, data4, mismatch, run4, args, words):
    cwd, run, _ = mismatch
    fill = {"data4": data4, "cwd": tmp_path, "run": run, "run4": run4[0]}
    args = [a.format(**fill) for a in args]
    if args[0] == "train":
        args += ["--quiet", "--out", str(tmp_path / "never")]
    assert_user_error(run_cli(*args, cwd=tmp_path), *words)


def test_dev_data_as_an_image_folder(tmp_path, data4):
    """--dev-data DIR with a subfolder of PNGs per class, named as the training classes (the
    order of the folders does not matter: '3' before '10' sorts differently)."""
    from cnnlab.analysis.png import encode_png

    x = _read_idx_images(data4 / "t10k-images-idx3-ubyte")
    y = np.frombuffer((data4 / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8)
    for i in range(40):
        folder = tmp_path / "dev" / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(encode_png(x[i]))
    result = run_cli("train", "--data-dir", data4, "--epochs", "1", "--num-classes", "4",
                     "--dev-data", "dev", "--out", "run", *SMALL, cwd=tmp_path)
    assert_ok(result)
    assert read_json(tmp_path / "run" / "metrics.json")["dev_size"] == 40
    # the rows name each example's source file, in the folder of its label
    assert_ok(run_cli("errors", "run", cwd=tmp_path))
    with open(tmp_path / "run" / "errors-dev" / "mislabelled.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40
    for row in rows:
        assert Path(row["file"]).parent.name == row["label"]
    (tmp_path / "dev" / "cat").mkdir()
    (tmp_path / "dev" / "cat" / "a.png").write_bytes(encode_png(x[0]))
    assert_user_error(run_cli("train", "--data-dir", data4, "--num-classes", "4", "--dev-data",
                              "dev", "--out", "run2", "--quiet", cwd=tmp_path),
                      "--dev-data", "class folder(s) cat are not training classes")


def test_a_run_without_a_dev_set(tmp_path, data4):
    assert_ok(run_cli("train", "--data-dir", data4, "--epochs", "1", "--num-classes", "4",
                      "--val-fraction", "0", "--out", "run", *SMALL, cwd=tmp_path))
    assert "dev_accuracy" not in read_json(tmp_path / "run" / "metrics.json")
    assert_user_error(run_cli("diagnose", "run", cwd=tmp_path), "no dev_accuracy",
                      "--val-fraction F or --dev-data")
    assert_user_error(run_cli("errors", "run", cwd=tmp_path), "no dev split",
                      "--val-fraction F or --dev-data")
    # the report falls back to the test split and leaves the diagnosis out
    assert_ok(run_cli("report", "run", cwd=tmp_path))
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Per class (test: 100 images" in page and "no diagnosis" in page
