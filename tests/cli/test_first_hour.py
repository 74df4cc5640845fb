"""A new user's first hour (issue 17), as it was found: each command typed as a user types it,
in a subprocess, on tiny data.

Oracles: the source checkpoint's bytes (what is frozen stays), batch norm's initial running
statistics (0 and 1), MNIST's own test digits drawn back black on white, hand counts.
"""

from __future__ import annotations

import re
import select
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.cli.conftest import SMALL
from tests.cli.helpers import (
    TIMEOUT,
    assert_ok,
    assert_user_error,
    cli_env,
    cnnlab_args,
    read_json,
    read_npz,
    run_cli,
    show,
)

Image = pytest.importorskip("PIL.Image")


def image_folder(root, classes=("circle", "square", "stripe"), n_train=12, n_test=6,
                 size=(40, 36), rgb=True, seed=0):
    """DIR/train/CLASS/*.png and DIR/test/CLASS/*.png: each class a bright shape of its own on
    dark noise, RGB (or grayscale) at ``size`` (not 28x28: the command brings them there)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for split, n in (("train", n_train), ("test", n_test)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, size=(h, w)).astype(np.float64)
                cy, cx = h // 2 + rng.integers(-3, 4), w // 2 + rng.integers(-3, 4)
                if k % 3 == 0:
                    img[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 230
                elif k % 3 == 1:
                    img[cy - 8:cy + 8, cx - 8:cx + 8] = 230
                else:
                    img[:, (xx[0] // 4) % 2 == 0] += 150
                pixels = np.clip(img, 0, 255).astype(np.uint8)
                if rgb:
                    pixels = np.stack([pixels, pixels // 2, 255 - pixels], axis=-1)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """LeNet-5, one epoch on the bundled MNIST subset (what ``cnnlab train`` does, shorter)."""
    cwd = tmp_path_factory.mktemp("mnist_run")
    result = run_cli("train", "--epochs", "1", "--quiet", "--out", "run", cwd=cwd)
    assert_ok(result)
    return cwd / "run", result


@pytest.fixture(scope="module")
def folder3(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("folder3"))


# ------------------------------------------------------------------ 1. fine-tuning on a folder
def test_the_readmes_fine_tuning_command_on_an_rgb_folder(mnist_run, folder3, tmp_path):
    """``cnnlab train --from runs/lenet5-mnist/best.npz --freeze features --num-classes 3
    --data-dir DIR`` with DIR an RGB image folder of another size: it trains (the images are
    brought to the checkpoint's 28x28 grayscale), the features stay bitwise as they were."""
    source, _ = mnist_run
    result = run_cli("train", "--from", source / "best.npz", "--freeze", "features",
                     "--num-classes", "3", "--data-dir", folder3, "--epochs", "1", "--out", "ft",
                     "--quiet", cwd=tmp_path)
    assert_ok(result)
    before, after = read_npz(source / "best.npz"), read_npz(tmp_path / "ft" / "last.npz")
    for name in [k for k in before if k.startswith("model/features.")]:
        assert after[name].tobytes() == before[name].tobytes(), name
    assert after["model/classifier.4.weight"].shape == (84, 3)
    config = read_json(tmp_path / "ft" / "config.json")
    assert config["dataset"] == "folder"  # found from DIR/train and DIR/test
    m = read_json(tmp_path / "ft" / "metrics.json")
    assert m["num_classes"] == 3 and sum(m["support"]) == 18
    # the fine-tuned checkpoint reads its own folder again in evaluate and predict
    assert_ok(run_cli("evaluate", "--checkpoint", tmp_path / "ft" / "best.npz", cwd=tmp_path))
    pred = run_cli("predict", "--checkpoint", tmp_path / "ft" / "best.npz",
                   folder3 / "test" / "square", cwd=tmp_path)
    assert_ok(pred)
    assert pred.stdout.splitlines()[0].startswith("file\tclass probability")
    assert len(pred.stdout.splitlines()) == 7


def test_a_folder_trains_from_scratch_at_the_models_size(folder3, tmp_path):
    result = run_cli("train", "--data-dir", folder3, "--model", "lenet5", "--epochs", "1",
                     "--out", "s", *SMALL, cwd=tmp_path)
    assert_ok(result)
    config = read_json(tmp_path / "s" / "config.json")
    assert config["input_shape"] == [28, 28, 1]  # lenet5's, recorded for --resume
    rgb = run_cli("train", "--data-dir", folder3, "--input-shape", "32,32,3", "--epochs", "1",
                  "--out", "rgb", *SMALL, cwd=tmp_path)
    assert_ok(rgb)
    weights = read_npz(tmp_path / "rgb" / "last.npz")
    assert weights["model/features.0.weight"].shape == (5, 5, 3, 6)  # 3 input channels


def test_a_one_class_folder_is_refused(tmp_path):
    one = image_folder(tmp_path / "one", classes=("cat",))
    assert_user_error(run_cli("train", "--data-dir", one, "--epochs", "1", *SMALL, cwd=tmp_path),
                      "dataset 'folder'", "one class only (cat)", "at least two classes")
    assert not (tmp_path / "runs").exists()


def test_train_and_test_folders_with_other_classes_are_refused(tmp_path):
    a = image_folder(tmp_path / "a", classes=("cat", "dog"))
    image_folder(tmp_path / "b", classes=("cat", "dog", "fox"))
    (a / "test").rename(tmp_path / "a_test_old")
    (tmp_path / "b" / "test").rename(a / "test")
    assert_user_error(run_cli("train", "--data-dir", a, "--epochs", "1", *SMALL, cwd=tmp_path),
                      "different classes", "cat, dog vs cat, dog, fox")


# ------------------------------------------------------------------ 2. --freeze and batch norm
def test_freeze_stops_batch_norm_statistics_on_the_command_line(data4, tmp_path):
    """``--freeze layer1`` on ResNet-20: layer 1's batch norms keep their initial statistics
    (mean 0, variance 1); layer 2's, not frozen, learn theirs."""
    result = run_cli("train", "--model", "resnet20", "--data-dir", data4, "--freeze", "layer1",
                     "--epochs", "1", "--val-fraction", "0", "--out", "r", *SMALL, cwd=tmp_path)
    assert_ok(result)
    w = read_npz(tmp_path / "r" / "last.npz")
    means = [k for k in w if k.startswith("model/layer1.") and k.endswith("running_mean")]
    assert means, sorted(w)
    for name in means:
        np.testing.assert_array_equal(w[name], 0.0, err_msg=name)
        np.testing.assert_array_equal(w[name.replace("mean", "var")], 1.0, err_msg=name)
    assert not np.allclose(w["model/layer2.0.bn1.running_mean"], 0.0)


# ------------------------------------------------------------------ 3. GoogLeNet on 28x28
@pytest.mark.parametrize("command", [("summary", "googlenet", "--input-shape", "28,28,1"),
                                     ("gradcheck", "googlenet", "--input-shape", "28,28,1"),
                                     ("train", "--model", "googlenet", "--epochs", "1")])
def test_googlenet_on_mnist_sized_inputs_is_a_clean_error(command, tmp_path):
    assert_user_error(run_cli(*command, cwd=tmp_path), "googlenet", "input_size is too small",
                      "28x28", "the smallest is 31x31")


# ------------------------------------------------------------------ 4. evaluate checks the fit
def test_evaluate_refuses_a_model_that_does_not_fit_the_data(folder3, tmp_path):
    assert_ok(run_cli("train", "--data-dir", folder3, "--input-shape", "32,32,3", "--epochs",
                      "1", "--out", "rgb", *SMALL, cwd=tmp_path))
    # an RGB 32x32 model on MNIST: the bundled subset, not the folder recorded in the checkpoint
    assert_user_error(run_cli("evaluate", "--checkpoint", tmp_path / "rgb" / "best.npz",
                              "--dataset", "mnist", cwd=tmp_path),
                      "takes 32x32x3 images", "mnist (the bundled subset) has 28x28x1")
    five = image_folder(tmp_path / "five", classes=tuple("abcde"), n_train=2, n_test=2)
    assert_user_error(run_cli("evaluate", "--checkpoint", tmp_path / "rgb" / "best.npz",
                              "--data-dir", five, cwd=tmp_path),
                      "has 3 classes", "labels up to 4")


def test_evaluate_a_grayscale_model_on_an_rgb_folder(mnist_run, folder3, tmp_path):
    """LeNet-5 (28x28x1) on an RGB folder of 40x36 images: brought to what it takes."""
    source, _ = mnist_run
    result = run_cli("evaluate", "--checkpoint", source / "best.npz", "--dataset", "folder",
                     "--data-dir", folder3, cwd=tmp_path)
    assert_ok(result)
    assert "(18 images)" in result.stdout


# ------------------------------------------------------------------ 6. hand-drawn digits
def _drawn_digits(folder, count=20):
    """MNIST test digits drawn back as a user draws: black on white, 4x larger, off-centre."""
    from cnnlab import data

    test = data.mnist("test")
    labels = []
    for i in range(count):
        page = np.zeros((160, 140))
        page[20:132, 10:122] = np.kron(test.x[i, :, :, 0], np.ones((4, 4)))
        pixels = ((1.0 - page) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
        labels.append(str(int(test.y[i])))
    return labels


def _top1(stdout):
    return [line.split("\t")[1].split()[0] for line in stdout.splitlines()[1:]]


def test_predict_reads_digits_drawn_black_on_white(mnist_run, tmp_path):
    source, _ = mnist_run
    labels = _drawn_digits(tmp_path)
    result = run_cli("predict", "--checkpoint", source / "best.npz", tmp_path, cwd=tmp_path)
    assert_ok(result)
    right = sum(a == b for a, b in zip(_top1(result.stdout), labels))
    assert right >= 18, show(result)  # one epoch reads ~96% of MNIST's test digits
    raw = run_cli("predict", "--checkpoint", source / "best.npz", "--preprocess", "none",
                  tmp_path, cwd=tmp_path)
    assert raw.returncode == 0 and "Traceback" not in raw.stderr
    warnings = raw.stderr.splitlines()
    assert len(warnings) == 20 and all("dark on a light background" in w for w in warnings)
    assert sum(a == b for a, b in zip(_top1(raw.stdout), labels)) < right


# ------------------------------------------------------------------ 8. wording
def test_a_folder_as_checkpoint_is_named_as_a_folder(mnist_run, tmp_path):
    source, _ = mnist_run
    for command in (("evaluate", "--checkpoint", source), ("predict", "--checkpoint", source,
                                                            "x.png")):
        assert_user_error(run_cli(*command, cwd=tmp_path), f"{source} is a folder",
                          "not a checkpoint file", "best.npz and last.npz")


def test_download_advice_names_the_flag(tmp_path):
    (tmp_path / "empty").mkdir()
    line = assert_user_error(run_cli("train", "--dataset", "fashion_mnist", "--data-dir",
                                     tmp_path / "empty", cwd=tmp_path), "add --download")
    assert "download=True" not in line


def test_a_skipped_file_is_named_once(mnist_run, tmp_path):
    source, _ = mnist_run
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    result = run_cli("predict", "--checkpoint", source / "best.npz", bad, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"cnnlab: skipped {bad}: ") and line.count(str(bad)) == 1, line


def test_the_end_of_training_names_every_file_and_which_weights(mnist_run):
    out, result = mnist_run
    files = result.stdout.strip().splitlines()[-1]
    expected = ["config.json", "last.npz", "best.npz", "history.csv", "history.jsonl",
                "metrics.json"]
    try:
        import matplotlib  # noqa: F401

        expected += ["learning_curves.png", "confusion_matrix.png"]
    except ImportError:
        pass
    assert files == f"files in {out.name}: " + ", ".join(expected), files
    assert all((out / f).is_file() for f in expected)
    assert "the test figures are those of the final weights (last.npz, epoch 1)" in result.stdout
    assert "best.npz holds epoch 1 (lowest val_loss)" in result.stdout
    assert read_json(out / "metrics.json")["weights"] == "last.npz"


def test_interrupted_starts_on_a_new_line(tmp_path):
    """Ctrl-C outside training (here in gradcheck, after its first lines): exit 130 and the
    message on a line of its own, never glued to a half-drawn line."""
    proc = subprocess.Popen(cnnlab_args("gradcheck", "resnet18", "--max-elements", "50"),
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # the first line within a deadline (a build that prints nothing must fail, not hang)
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "gradcheck printed nothing"
        first = proc.stdout.readline()
        assert first.startswith("checking"), first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert stderr == "\ncnnlab: interrupted\n", stderr


# ------------------------------------------------------------------ friction
def test_version_and_help_on_every_option(tmp_path):
    import argparse

    from cnnlab import __version__, models
    from cnnlab.cli.main import build_parser

    version = run_cli("--version", cwd=tmp_path)
    assert_ok(version)
    assert version.stdout.strip() == f"cnnlab {__version__}"
    helps = run_cli("train", "--help", cwd=tmp_path).stdout
    flat = " ".join(helps.split())
    assert all(name in flat for name in models.names()), helps
    assert "DIR/train/CLASS/*.png and DIR/test/CLASS/*.png" in flat
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_gradcheck_reports_each_parameter_as_it_goes(tmp_path):
    result = run_cli("gradcheck", "lenet5", "--max-elements", "3", cwd=tmp_path)
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("checking 10 parameters of lenet5, up to 3 randomly chosen "
                               "entries of each (--max-elements; 30 of 61706 entries")
    # features.0.weight is 5x5x1x6 = 150 entries, its bias 6
    assert re.match(r"features\.0\.weight\s+\S+\s+3 of 150\s+\[1/10\]$", lines[2]), lines[2]
    assert re.match(r"features\.0\.bias\s+\S+\s+3 of 6\s+\[2/10\]$", lines[3]), lines[3]


def test_summary_explains_rf_and_jump(tmp_path):
    result = run_cli("summary", "lenet5", cwd=tmp_path)
    assert_ok(result)
    assert "RF: receptive field" in result.stdout and "Jump: input pixels" in result.stdout


def test_resume_of_a_finished_run_evaluates_again(mnist_run, tmp_path):
    out, first = mnist_run
    metrics = read_json(out / "metrics.json")
    result = run_cli("train", "--resume", out, "--quiet", cwd=tmp_path)
    assert_ok(result)
    assert f"the run in {out} has finished its 1 epoch" in result.stdout
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stdout
    assert read_json(out / "metrics.json") == metrics
