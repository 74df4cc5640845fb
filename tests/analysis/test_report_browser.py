"""report.html in a real browser: Debian's Chromium driven by Playwright.

The page must load with no console error and no request leaving the file (everything is a
data: URI), every image must decode at its size (thumbnails: the images enlarged 2x; charts:
480x300), and the confusion matrix's counts, read back from the rendered page, must be the
counts of the labels and predictions. A screenshot is kept: under $CNNLAB_TEST_ARTIFACTS when
set, else in pytest's temporary folder. With CNNLAB_REQUIRE_ORACLES=1 a missing Chromium or
Playwright fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.analysis import diagnose
from cnnlab.analysis.report import render_report
from tests.oracles import missing

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _missing(what: str):
    missing(f"{what} (.ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    path = os.environ.get("CNNLAB_CHROMIUM") or next(
        (p for p in CHROMIUM_CANDIDATES if Path(p).exists()), shutil.which("chromium"))
    if not path or not Path(path).exists():
        _missing("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True,
                               args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _artifact_dir(tmp_path) -> Path:
    folder = os.environ.get("CNNLAB_TEST_ARTIFACTS")
    folder = Path(folder) if folder else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page_data():
    """20 images of 10 (H) x 12 (W), 3 classes, with 5 misclassified (by construction)."""
    rng = np.random.default_rng(0)
    labels = np.arange(20) % 3
    pred = labels.copy()
    pred[[1, 4, 7]] = (labels[[1, 4, 7]] + 1) % 3  # three errors true -> true+1
    pred[[2, 11]] = 0  # two errors true 2 -> 0
    probs = np.full((20, 3), 0.1)
    probs[np.arange(20), pred] = 0.8
    images = rng.random((20, 10, 12, 1)).astype(np.float32)
    history = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9],
               "val_loss": [1.1, 0.7, 0.6], "val_accuracy": [0.55, 0.7, 0.75],
               "train_dev_loss": [1.05, 0.6, 0.45], "train_dev_accuracy": [0.6, 0.75, 0.8]}
    d = diagnose(train=0.1, train_dev=0.11, dev=0.25, human=0.01,
                 sizes={"train": 10_000, "train_dev": 2000, "dev": 2000})
    return labels, pred, probs, images, history, d


def test_report_renders_in_chromium(browser, tmp_path):
    labels, pred, probs, images, history, d = _page_data()
    page_text = render_report(title="test <run> & co", settings={"model": "lenet5", "lr": 0.001},
                              history=history, split="dev", classes=["cat", "dog", "bird"],
                              images=images, labels=labels, probs=probs, diagnosis=d,
                              notes={"dev_overfitting": "not measured"})
    path = tmp_path / "report.html"
    path.write_text(page_text, encoding="utf-8")

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    console, failures, requests = [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: failures.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert [m for m in console if m[0] == "error"] == [] and failures == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert page.title() == "test <run> & co"

    imgs = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
    charts = [i for i in imgs if i[0].startswith("learning curve")]
    thumbs = [i for i in imgs if i[0].startswith("#")]
    assert len(charts) == 2 and len(thumbs) == len(imgs) - 2
    assert all(c[1] and (c[2], c[3]) == (480, 300) for c in charts), charts
    # 5 misclassified in the gallery + the likely-mislabelled list (16 first of the ranking)
    assert len(thumbs) == 5 + 16
    assert all(t[1] and (t[2], t[3]) == (24, 20) for t in thumbs), thumbs  # (W, H) x2

    # the confusion matrix as the browser shows it, against a count by hand
    cells = page.eval_on_selector_all(
        "table.cm tr", "rows => rows.slice(1).map(r => [...r.querySelectorAll('td')]"
        ".map(td => parseInt(td.textContent)))")
    expected = np.zeros((3, 3), int)
    for t, q in zip(labels, pred):
        expected[t, q] += 1
    assert cells == expected.tolist()
    assert "focus: data_mismatch" in page.inner_text("body")

    shot = _artifact_dir(tmp_path) / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_cli_report_of_a_real_run_renders(browser, tmp_path):
    """``cnnlab report`` on a one-epoch run (4-class synthetic task, 28x28 images)."""
    from tests.cli.helpers import assert_ok, make_idx_dataset, run_cli

    data = make_idx_dataset(tmp_path / "data", num_classes=4, seed=0)
    assert_ok(run_cli("train", "--data-dir", data, "--epochs", "1", "--num-classes", "4",
                      "--train-dev-fraction", "0.2", "--lr", "0.0003", "--batch-size", "16",
                      "--out", "run", "--quiet", cwd=tmp_path))
    assert_ok(run_cli("report", "run", "--split", "test", cwd=tmp_path))
    page = browser.new_page()
    console = []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("error", str(e))))
    page.goto((tmp_path / "run" / "report.html").as_uri())
    page.wait_for_load_state("load")
    assert [m for m in console if m[0] == "error"] == []
    imgs = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
    charts = [i for i in imgs if i[0].startswith("learning curve")]
    thumbs = [i for i in imgs if i[0].startswith("#")]
    assert len(charts) == 2 and all((c[2], c[3]) == (480, 300) for c in charts)
    assert thumbs and all(t[1] and (t[2], t[3]) == (56, 56) for t in thumbs)
    # the test split: 100 images, the confusion counts add up to them
    cells = page.eval_on_selector_all("table.cm td", "tds => tds.map(t => +t.textContent)")
    assert len(cells) == 16 and sum(cells) == 100
    page.screenshot(path=str(_artifact_dir(tmp_path) / "report-cli.png"), full_page=True)
    page.close()
