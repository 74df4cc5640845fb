"""``cnnlab evaluate``, ``predict``, ``summary`` and ``gradcheck`` through the command line."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.cli.helpers import (
    IDX_NAMES,
    assert_ok,
    read_json,
    run_cli,
    show,
    synthetic_images,
)


def test_evaluate_prints_report_and_confusion_matrix(run4, tmp_path):
    out, _ = run4
    result = run_cli("evaluate", "--checkpoint", out / "last.npz", cwd=tmp_path)
    assert_ok(result)
    text = result.stdout
    for word in ("precision", "recall", "f1-score", "support", "macro avg", "confusion matrix"):
        assert word in text, show(result)
    m = read_json(out / "metrics.json")  # the same weights as last.npz (the final epoch)
    assert f"test_accuracy={m['test_accuracy']:.4f}" in text
    assert f"test_loss={m['test_loss']:.4f}" in text
    assert "(100 images)" in text
    # the confusion matrix printed is the one in metrics.json
    cm = np.array(m["confusion_matrix"])
    printed = [list(map(int, re.findall(r"\d+", line)))
               for line in text.split("confusion matrix")[1].splitlines()[1:1 + len(cm)]]
    assert printed == cm.tolist(), show(result)
    # per class rows: name, precision, recall, f1, support (25 test images per class)
    rows = [line.split() for line in text.splitlines() if re.match(r"\s+[0-3]\s+\d\.\d{4}", line)]
    assert [int(r[4]) for r in rows] == [25, 25, 25, 25]
    assert [float(r[2]) for r in rows] == pytest.approx(m["recall"], abs=1e-4)


def test_evaluate_on_the_train_split(run4, tmp_path):
    out, _ = run4
    result = run_cli("evaluate", "--checkpoint", out / "best.npz", "--split", "train",
                     cwd=tmp_path)
    assert_ok(result)
    assert "train_accuracy=" in result.stdout and "(200 images)" in result.stdout


def _write_pngs(folder, labels, seed=5):
    Image = pytest.importorskip("PIL.Image")
    images = synthetic_images(np.asarray(labels), np.random.default_rng(seed))
    paths = []
    for i, (img, k) in enumerate(zip(images, labels)):
        path = folder / f"img{i}_class{k}.png"
        Image.fromarray(img, mode="L").save(path)
        paths.append(path)
    return paths


def _predictions(stdout):
    """{file name: (class, probability)} from predict's lines ``PATH<TAB>CLASS PROB``."""
    out = {}
    lines = stdout.splitlines()
    assert lines[0].startswith("file\tclass probability"), stdout  # the header row
    for line in lines[1:]:
        path, shown = line.split("\t")
        label, prob = shown.split()
        out[path.rsplit("/", 1)[-1]] = (label, float(prob))
    return out


def test_predict_prints_class_and_probability(run4, tmp_path):
    out, _ = run4
    labels = [0, 1, 2, 3, 0, 1, 2, 3]
    paths = _write_pngs(tmp_path, labels)
    result = run_cli("predict", "--checkpoint", out / "best.npz", *paths, cwd=tmp_path)
    assert_ok(result)
    preds = _predictions(result.stdout)
    assert sorted(preds) == sorted(p.name for p in paths)
    assert all(0.0 < prob <= 1.0 for _, prob in preds.values())
    correct = sum(preds[p.name][0] == str(k) for p, k in zip(paths, labels))
    assert correct >= 5, show(result)  # the model reaches > 60% on this task
    # a folder gives the same lines as its files
    folder = run_cli("predict", "--checkpoint", out / "best.npz", tmp_path, cwd=tmp_path)
    assert_ok(folder)
    assert _predictions(folder.stdout) == preds


def test_predict_probabilities_are_the_models_own(run4, tmp_path):
    """The command's probabilities are the softmax of the model's eval forward (called through
    cnnlab.train.predict here), image by image, to the 3 decimals printed."""
    from cnnlab.cli.loaders import model_from_checkpoint
    from cnnlab.data.images import load_image
    from cnnlab.train import predict

    out, _ = run4
    paths = _write_pngs(tmp_path, [0, 1, 2, 3])
    result = run_cli("predict", "--checkpoint", out / "best.npz", "--top", "4", *paths,
                     cwd=tmp_path)
    assert_ok(result)
    model, info = model_from_checkpoint(out / "best.npz")
    h, w, c = info["input_shape"]
    printed = {line.split("\t")[0].rsplit("/", 1)[-1]: line.split("\t")[1]
               for line in result.stdout.splitlines()[1:]}  # after the header row
    for path in paths:
        image = load_image(path, size=(h, w), grayscale=(c == 1)).reshape(1, h, w, c)
        logits = predict(model, image.astype(np.float32))[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        shown = {label: float(prob) for label, prob in
                 (item.split() for item in printed[path.name].split(", "))}
        for k, name in enumerate(info.get("classes") or [str(i) for i in range(len(p))]):
            assert shown[name] == pytest.approx(p[k], abs=6e-4), (path.name, name)


def test_predict_top_k_probabilities_sum_to_one(run4, tmp_path):
    out, _ = run4
    (path,) = _write_pngs(tmp_path, [2])
    result = run_cli("predict", "--checkpoint", out / "best.npz", "--top", "4", path,
                     cwd=tmp_path)
    assert_ok(result)
    shown = result.stdout.strip().splitlines()[1].split("\t")[1].split(", ")
    probs = [float(s.split()[1]) for s in shown]
    assert len(probs) == 4 and probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=3e-3)  # printed with 3 decimals


def test_predict_reports_a_file_that_is_not_an_image_and_goes_on(run4, tmp_path):
    out, _ = run4
    good = _write_pngs(tmp_path, [0, 3])
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture\n")
    missing = tmp_path / "missing.png"
    result = run_cli("predict", "--checkpoint", out / "best.npz", good[0], bad, missing, good[1],
                     cwd=tmp_path)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, show(result)  # the lead's rule: 1 when any file failed
    assert sorted(_predictions(result.stdout)) == sorted(p.name for p in good)
    errors = result.stderr.splitlines()
    assert len(errors) == 2, show(result)
    assert str(bad) in errors[0] and "not a readable image" in errors[0]
    assert str(missing) in errors[1] and "no such file" in errors[1]


def test_predict_only_bad_files_exits_1(run4, tmp_path):
    out, _ = run4
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\xff\xd8\xff\x00garbage")
    result = run_cli("predict", "--checkpoint", out / "best.npz", bad, cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == "", show(result)
    assert "Traceback" not in result.stderr and str(bad) in result.stderr


def test_summary_lenet5(tmp_path):
    result = run_cli("summary", "lenet5", cwd=tmp_path)
    assert_ok(result)
    # 156 + 2,416 (convolutions), 48,120 + 10,164 + 850 (dense) = 61,706, counted by hand
    assert "61,706" in result.stdout, show(result)
    for count in ("156", "2,416", "48,120", "10,164", "850"):
        assert count in result.stdout, count


def test_summary_other_head_and_input(tmp_path):
    result = run_cli("summary", "lenet5", "--num-classes", "3", "--input-shape", "32,32,1",
                     cwd=tmp_path)
    assert_ok(result)
    # 32x32: conv 'same' 32 -> pool 16 -> conv valid 12 -> pool 6: 6*6*16 = 576 inputs
    total = 156 + 2416 + (576 * 120 + 120) + 10164 + (84 * 3 + 3)
    assert f"{total:,}" in result.stdout, show(result)


def test_gradcheck_lenet5(tmp_path):
    result = run_cli("gradcheck", "lenet5", "--max-elements", "3", cwd=tmp_path)
    assert_ok(result)
    match = re.search(r"worst relative difference (\S+)", result.stdout)
    assert match, show(result)
    assert float(match.group(1).rstrip(":")) < 1e-7
    # one line per parameter (5 layers, weight and bias)
    assert sum(line.startswith(("features.", "classifier.")) for line in
               result.stdout.splitlines()) == 10, show(result)


def test_python_dash_m_and_help(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert_ok(result)
    for command in ("train", "evaluate", "predict", "summary", "gradcheck"):
        assert command in result.stdout
    no_command = run_cli(cwd=tmp_path)
    assert no_command.returncode == 2 and "usage" in no_command.stdout.lower()


def test_evaluate_other_data_dir(run4, tmp_path):
    """--data-dir picks another copy of the data; its IDX names are MNIST's."""
    out, _ = run4
    config = read_json(out / "config.json")
    src = config["data_dir"]
    copy = tmp_path / "copy"
    copy.mkdir()
    from pathlib import Path

    for name in IDX_NAMES["test"]:
        (copy / name).write_bytes((Path(src) / name).read_bytes())
    result = run_cli("evaluate", "--checkpoint", out / "last.npz", "--data-dir", copy,
                     cwd=tmp_path)
    assert_ok(result)
    assert "(100 images)" in result.stdout
