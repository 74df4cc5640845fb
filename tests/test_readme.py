"""The README's every command and snippet, run as written (issue 17).

How the README is read (the convention, for whoever adds a section):

* Every fenced code block whose language is ``bash``, ``sh``, ``console`` or ``python`` is run,
  in the README's order, in one temporary folder (so ``runs/...`` written by one command is
  there for the next), with this source tree's ``cnnlab`` on the path.
* A ``bash``/``sh``/``console`` block: every line (a line ending in ``\\`` goes on in the
  next) that is not blank and not a comment must be a ``cnnlab`` command (a trailing
  ``# comment`` is ignored); it runs as ``python -m cnnlab ...`` and must exit 0 without a
  traceback. Any other command line fails the test: mark such a block as not run (next
  point).
* A block is skipped when the line just before its opening fence (blank lines allowed between)
  is ``<!-- readme-test: skip (REASON) -->``. The reason is required (say why it cannot run
  in a test: it installs packages, needs the network, takes minutes, ...).
* A ``python`` block runs in a fresh interpreter (``python -c``), in the same folder.
* Placeholders a user replaces with their own files are provided here, small: ``MNIST_DIR``
  (MNIST's four IDX files: a synthetic 4-class task), ``MY_IMAGES`` (an image folder,
  ``MY_IMAGES/train/CLASS/*.png`` and ``MY_IMAGES/test/...``, 3 classes of RGB 40x36 images),
  ``digit.png`` and ``more_digits/`` (MNIST test digits drawn black on white). A new
  placeholder needs a line in ``_placeholders`` below.
* What is made shorter, as a user in a hurry would: ``cnnlab train`` runs one epoch
  (``--epochs N`` becomes ``--epochs 1``, or ``--epochs 1`` is added), so the whole module stays
  under a minute. Python snippets run as written.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.cli.helpers import cli_env, make_idx_dataset, show

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
SHELL = ("bash", "sh", "console", "shell")
TIMEOUT = 120


def blocks(text: str) -> list[dict]:
    """Every fenced block: {"lang", "code", "line" (1-based, of the fence), "skip" (reason)}."""
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m or not m.group(2):
            i += 1
            continue
        start, lang = i, m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = SKIP.search(lines[k]) if k >= 0 else None
        found.append({"lang": lang, "code": "\n".join(lines[start + 1 : j]),
                      "line": start + 1, "skip": marker.group("reason") if marker else None})
        i = j + 1
    return found


def test_the_block_reader_itself():
    text = ("a\n<!-- readme-test: skip (needs the network) -->\n\n```bash\npip x\n```\n"
            "```python\nprint(1)\n```\n```\nplain\n```\n")
    got = blocks(text)
    assert [(b["lang"], b["code"], b["skip"]) for b in got] == [
        ("bash", "pip x", "needs the network"), ("python", "print(1)", None)]


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for k, name in enumerate(("circle", "square", "stripes")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, size=(40, 36)).astype(np.uint8)
                img[8 + 8 * k : 20 + 8 * k, 6:30] = 230
                Image.fromarray(np.stack([img, img // 2, 255 - img], -1)).save(folder / f"{i}.png")
    return root


def _digits(cwd: Path) -> None:
    from PIL import Image

    from cnnlab import data

    test = data.mnist("test")
    (cwd / "more_digits").mkdir()
    for i, path in enumerate([cwd / "digit.png", *(cwd / "more_digits" / f"{k}.png"
                                                   for k in range(3))]):
        page = np.zeros((150, 130))
        page[20:132, 10:122] = np.kron(test.x[i, :, :, 0], np.ones((4, 4)))
        Image.fromarray(((1.0 - page) * 255).astype(np.uint8)).save(path)


def _placeholders(cwd: Path) -> dict:
    pytest.importorskip("PIL")
    _digits(cwd)
    return {"MNIST_DIR": str(make_idx_dataset(cwd / "mnist_dir", num_classes=4, n_train=120,
                                              n_test=40)),
            "MY_IMAGES": str(_image_folder(cwd / "my_images"))}


def _command(line: str, values: dict) -> list[str]:
    words = shlex.split(line, comments=True)
    words = [values.get(w, w) for w in words]
    assert words[0] == "cnnlab", f"not a cnnlab command (mark the block skip): {line!r}"
    if len(words) > 1 and words[1] == "train":
        if "--epochs" in words:
            words[words.index("--epochs") + 1] = "1"
        else:
            words += ["--epochs", "1"]
    return [sys.executable, "-m", "cnnlab", *words[1:]]


def _run(args, cwd) -> subprocess.CompletedProcess:
    env = cli_env()
    env["MPLBACKEND"] = "Agg"
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def test_every_command_and_snippet_of_the_readme_runs(tmp_path):
    found = blocks(README.read_text())
    runnable = [b for b in found if b["lang"] in SHELL + ("python",)]
    assert len(runnable) >= 5, "the README lost its examples?"
    values = _placeholders(tmp_path)
    ran = 0
    for block in runnable:
        where = f"README.md line {block['line']}"
        if block["skip"]:
            continue
        if block["lang"] == "python":
            code = textwrap.dedent(block["code"])  # a block inside a list item is indented
            result = _run([sys.executable, "-c", code], tmp_path)
            assert result.returncode == 0, f"{where}\n{show(result)}"
            ran += 1
            continue
        for line in re.sub(r"\\\n\s*", " ", block["code"]).splitlines():  # `\` continues
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            result = _run(_command(line, values), tmp_path)
            assert result.returncode == 0, f"{where}: {line}\n{show(result)}"
            assert "Traceback" not in result.stdout + result.stderr, f"{where}: {line}"
            ran += 1
    assert ran >= 10
    # what the commands promised is there
    assert (tmp_path / "runs" / "lenet5-mnist" / "best.npz").is_file()
    assert (tmp_path / "lenet5.npz").is_file()  # cl.save in the Python snippet
    assert os.listdir(tmp_path / "runs")
