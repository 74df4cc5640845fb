"""Bad input through the command line: one line ``cnnlab: error: ...``, exit 2, no traceback.

Each message is pinned by its key words: what was wrong, and the file or value concerned.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil

import numpy as np
import pytest

from tests.cli.helpers import IDX_NAMES, assert_ok, assert_user_error, read_npz, run_cli

TRAIN = ("train", "--epochs", "1", "--batch-size", "16", "--quiet")


def _train(data, tmp_path, *args):
    return run_cli(*TRAIN, "--data-dir", data, *args, cwd=tmp_path)


# ------------------------------------------------------------------ names
def test_unknown_model_lists_the_valid_ones(data4, tmp_path):
    line = assert_user_error(_train(data4, tmp_path, "--model", "lenet7"),
                             "unknown model 'lenet7'", "valid models", "lenet5", "resnet18",
                             "vgg16")
    assert not (tmp_path / "runs").exists()  # nothing written for a run that never started
    assert "lenet7" in line


def test_unknown_dataset_lists_the_valid_ones(tmp_path):
    assert_user_error(run_cli(*TRAIN, "--dataset", "imagenet", cwd=tmp_path),
                      "unknown dataset 'imagenet'", "mnist", "fashion_mnist", "cifar10")


def test_unknown_model_in_summary_and_gradcheck(tmp_path):
    for command in ("summary", "gradcheck"):
        assert_user_error(run_cli(command, "nonet", cwd=tmp_path), "unknown model 'nonet'",
                          "lenet5")


def test_unknown_optimizer(data4, tmp_path):
    assert_user_error(_train(data4, tmp_path, "--optimizer", "adagrad"),
                      "unknown optimizer 'adagrad'", "sgd", "adam", "rmsprop")


def test_unknown_schedule(data4, tmp_path):
    assert_user_error(_train(data4, tmp_path, "--schedule", "triangle"),
                      "unknown schedule 'triangle'", "cosine", "step")


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--epochs", "0", ["--epochs", ">= 1", "0"]),
        ("--epochs", "-3", ["--epochs", ">= 1", "-3"]),
        ("--epochs", "two", ["--epochs", "integer", "'two'"]),
        ("--lr", "-1", ["--lr", ">= 0", "-1"]),
        ("--lr", "nan", ["--lr", ">= 0", "nan"]),
        ("--batch-size", "0", ["--batch-size", ">= 1", "0"]),
        ("--val-fraction", "1.5", ["--val-fraction", "[0, 1)", "1.5"]),
        ("--dropout", "1", ["--dropout", "[0, 1)"]),
        ("--l2", "-0.1", ["--l2", ">= 0"]),
        ("--seed", "-1", ["--seed", ">= 0", "-1"]),
        ("--seed", "1.5", ["--seed", "integer", "'1.5'"]),
    ],
)
def test_nonsensical_numbers(flag, value, words, tmp_path):
    assert_user_error(run_cli(*TRAIN, f"{flag}={value}", cwd=tmp_path), *words)
    assert not (tmp_path / "runs").exists()


def test_negative_lr_as_separate_argument(tmp_path):
    assert_user_error(run_cli(*TRAIN, "--lr", "-1", cwd=tmp_path), "--lr", ">= 0")


def test_unknown_flag(tmp_path):
    assert_user_error(run_cli(*TRAIN, "--epocs", "3", cwd=tmp_path), "unrecognized", "--epocs")


def test_bad_input_shape(tmp_path):
    assert_user_error(run_cli("summary", "lenet5", "--input-shape", "28,28", cwd=tmp_path),
                      "--input-shape", "H,W,C", "'28,28'")


# ------------------------------------------------------------------ data files
def test_missing_data_dir(tmp_path):
    missing = tmp_path / "no-such-folder"
    assert_user_error(run_cli(*TRAIN, "--data-dir", missing, cwd=tmp_path), str(missing),
                      "no such directory")


def test_missing_data_file(data4, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data4, data)
    (data / IDX_NAMES["test"][1]).unlink()
    assert_user_error(_train(data, tmp_path), str(data / IDX_NAMES["test"][1]), "no such file")


def test_corrupt_idx_file_bad_magic(data4, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data4, data)
    path = data / IDX_NAMES["train"][0]
    raw = bytearray(path.read_bytes())
    raw[2:4] = b"\x08\x01"  # the labels magic in the images file
    path.write_bytes(bytes(raw))
    assert_user_error(_train(data, tmp_path), str(path), "bad magic number", "2049", "2051")


def test_corrupt_idx_file_not_idx_at_all(data4, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data4, data)
    path = data / IDX_NAMES["train"][1]
    path.write_bytes(b"GIF89a" + bytes(100))
    assert_user_error(_train(data, tmp_path), str(path), "bad magic number")


def test_truncated_idx_file(data4, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data4, data)
    path = data / IDX_NAMES["train"][0]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 1000])
    assert_user_error(_train(data, tmp_path), str(path), "truncated", str(len(raw)))


def test_truncated_gzip_idx_file(data3, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data3, data)
    path = data / (IDX_NAMES["test"][0] + ".gz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert_user_error(_train(data, tmp_path), str(path), "truncated")


def test_labels_and_images_disagree(data4, data3, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data4, data)
    # 200 labels of the other task, but in a file holding 100 images' labels -> counts differ
    (data / IDX_NAMES["test"][1]).write_bytes((data4 / IDX_NAMES["train"][1]).read_bytes())
    assert_user_error(_train(data, tmp_path), str(data / IDX_NAMES["test"][1]), "200 labels",
                      "100 images")


# ------------------------------------------------------------------ checkpoints
def test_missing_checkpoint(tmp_path):
    for command in (["evaluate", "--checkpoint"], ["predict", "x.png", "--checkpoint"]):
        assert_user_error(run_cli(*command, "nothere.npz", cwd=tmp_path), "nothere.npz",
                          "no such checkpoint file")


def test_missing_checkpoint_for_transfer(data4, tmp_path):
    assert_user_error(_train(data4, tmp_path, "--from", "gone.npz"), "gone.npz",
                      "no such checkpoint file")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(bytes(range(256)) * 10)
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "not a cnnlab checkpoint", "not an .npz")


def test_empty_checkpoint(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "empty")


def test_truncated_checkpoint(run4, tmp_path):
    out, _ = run4
    raw = (out / "best.npz").read_bytes()
    path = tmp_path / "half.npz"
    path.write_bytes(raw[: len(raw) // 2])
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "corrupt or truncated")
    assert_user_error(run_cli("predict", "--checkpoint", path, "a.png", cwd=tmp_path),
                      str(path), "corrupt or truncated")


def test_npz_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "not a cnnlab checkpoint")


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array([{"a": 1}], dtype=object))
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "pickle")
    marker = tmp_path / "ran"
    raw = tmp_path / "raw.npz"  # a bare pickle that would create a file if it were loaded
    raw.write_bytes(pickle.dumps(_Touch(str(marker)), protocol=2))
    assert_user_error(run_cli("evaluate", "--checkpoint", raw, cwd=tmp_path), str(raw), "pickle")
    assert not marker.exists()


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _rewrite(src, dst, change):
    arrays = read_npz(src)
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    dst.write_bytes(buf.getvalue())
    return dst


def test_checkpoint_of_the_wrong_shapes(run4, tmp_path):
    out, _ = run4

    def shrink(arrays):
        arrays["model/features.0.weight"] = np.zeros((3, 3, 1, 6), np.float32)

    path = _rewrite(out / "best.npz", tmp_path / "wrong.npz", shrink)
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "does not match", "features.0.weight", "(3, 3, 1, 6)", "(5, 5, 1, 6)")


def test_checkpoint_with_a_missing_parameter(run4, tmp_path):
    out, _ = run4
    path = _rewrite(out / "best.npz", tmp_path / "short.npz",
                    lambda a: a.pop("model/classifier.4.bias"))
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "classifier.4.bias")


def test_checkpoint_with_corrupt_metadata(run4, tmp_path):
    out, _ = run4

    def spoil(arrays):
        arrays["__meta__"] = np.frombuffer(b"{not json", dtype=np.uint8)

    path = _rewrite(out / "best.npz", tmp_path / "meta.npz", spoil)
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path), str(path),
                      "metadata is corrupt")


def test_checkpoint_of_an_unknown_model(run4, tmp_path):
    out, _ = run4

    def rename(arrays):
        meta = json.loads(arrays["__meta__"].tobytes())
        meta["extra"]["model"]["name"] = "lenet99"
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    path = _rewrite(out / "best.npz", tmp_path / "other.npz", rename)
    assert_user_error(run_cli("evaluate", "--checkpoint", path, cwd=tmp_path),
                      "unknown model 'lenet99'", "lenet5")


# ------------------------------------------------------------------ run folders
def test_out_pointing_at_an_existing_run(run4, data4, tmp_path):
    out, _ = run4
    before = (out / "last.npz").read_bytes()
    assert_user_error(_train(data4, tmp_path, "--out", out), str(out), "already holds a run",
                      "--resume")
    assert (out / "last.npz").read_bytes() == before  # nothing overwritten


def test_out_pointing_at_a_file(data4, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert_user_error(_train(data4, tmp_path, "--out", "afile"), "afile", "not a folder")


def test_resume_on_a_folder_without_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("train", "--resume", "empty", cwd=tmp_path), "--resume empty",
                      "no config.json")
    assert_user_error(run_cli("train", "--resume", "absent", cwd=tmp_path), "--resume absent",
                      "no config.json")


def test_resume_without_a_checkpoint(run4, tmp_path):
    out, _ = run4
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(out / "config.json", run / "config.json")
    assert_user_error(run_cli("train", "--resume", run, cwd=tmp_path), "no last.npz")


def test_freeze_matching_nothing(run4, data3, tmp_path):
    out, _ = run4
    line = assert_user_error(
        run_cli(*TRAIN, "--data-dir", data3, "--from", out / "best.npz", "--freeze", "encoder",
                "--num-classes", "3", "--out", "t", cwd=tmp_path),
        "--freeze 'encoder'", "matches no parameter", "features", "classifier",
    )
    assert "Traceback" not in line
    assert not (tmp_path / "t" / "last.npz").exists()


def test_from_checkpoint_with_other_image_size(run4, tmp_path):
    """A 28x28 model cannot fine-tune on 32x32x3 CIFAR images: said before anything runs."""
    out, _ = run4
    folder = tmp_path / "cifar"
    folder.mkdir()
    record = bytes([1]) + bytes(3072)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record * 4)
    assert_user_error(run_cli(*TRAIN, "--dataset", "cifar10", "--data-dir", folder, "--from",
                              out / "best.npz", "--val-fraction", "0", cwd=tmp_path),
                      "--from", "(28, 28, 1)", "(32, 32, 3)")


def test_evaluate_bad_split(run4, tmp_path):
    out, _ = run4
    assert_user_error(run_cli("evaluate", "--checkpoint", out / "best.npz", "--split", "dev",
                              cwd=tmp_path), "--split", "'dev'")


def test_num_classes_smaller_than_the_labels(data4, tmp_path):
    assert_user_error(_train(data4, tmp_path, "--num-classes", "2", "--out", "t"),
                      "--num-classes 2", "labels up to 3", "at least 4")
    assert not (tmp_path / "t" / "last.npz").exists()


def test_errors_do_not_hide_a_good_run(data4, tmp_path):
    """Control: the same command line without the mistake works (the tests above are fair)."""
    assert_ok(_train(data4, tmp_path, "--out", "ok", "--num-classes", "4"))


def test_from_checkpoint_of_another_model(run4, data4, tmp_path):
    out, _ = run4
    assert_user_error(_train(data4, tmp_path, "--model", "resnet20", "--from", out / "best.npz"),
                      "holds a 'lenet5' model", "not 'resnet20'")


def test_dropout_on_a_model_without_dropout(data4, tmp_path):
    assert_user_error(_train(data4, tmp_path, "--dropout", "0.3"), "--dropout",
                      "'lenet5' has no dropout setting")


def test_input_shape_too_small_for_the_model(tmp_path):
    assert_user_error(run_cli("summary", "lenet5", "--input-shape", "4,4,1", cwd=tmp_path),
                      "cannot build model 'lenet5'", "too small")
