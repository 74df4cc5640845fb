"""A run's report as one self-contained HTML page: nothing loaded from the network.

Every picture is inside the page as a ``data:`` URI: the learning curves as SVG drawn here
(no plotting library needed), the example thumbnails as PNG (:mod:`cnnlab.analysis.png`). The
confusion matrix is an HTML table, so its counts are text (readable at any zoom, searchable).

``render_report(...)`` takes plain data (dicts, arrays) and returns the page's text;
``cnnlab report RUN_DIR`` gathers that data from a run folder.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np

from cnnlab.analysis.png import encode_png, upscale

__all__ = ["render_report", "svg_chart", "CHART_SIZE", "THUMB_SCALE"]

CHART_SIZE = (480, 300)  # width, height of each learning-curve chart, pixels
THUMB_SCALE = 2  # thumbnails are the images enlarged 2x (nearest neighbour)
_COLOURS = {"train": "#1f77b4", "train-dev": "#ff7f0e", "dev": "#2ca02c"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
table.cm td { min-width: 2.4em; text-align: center; font-variant-numeric: tabular-nums; }
.group { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; }
.group img, .mis img { image-rendering: pixelated; border: 1px solid #bbb; margin: 1px; }
.mis { display: inline-block; text-align: center; margin: 0 .6em .6em 0; font-size: .8em; }
.focus { font-weight: bold; } .muted { color: #777; }
"""


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def svg_chart(title: str, series: dict, size=CHART_SIZE) -> str:
    """A line chart as SVG text: ``series`` {name: [value per epoch]}, x = epoch 1..E."""
    w, h = size
    left, right, top, bottom = 56, 100, 28, 36
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    epochs = max((len(ys) for ys in series.values()), default=1)
    def x_of(i):  # epoch i (0-based) -> pixel
        return left + (w - left - right) * (i / max(epochs - 1, 1))
    def y_of(v):
        return top + (h - top - bottom) * (1 - (v - lo) / (hi - lo))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" '
             'stroke="#444"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#444"/>']
    for k in range(5):  # y ticks
        v = lo + (hi - lo) * k / 4
        parts.append(f'<text x="{left - 4}" y="{y_of(v) + 4:.1f}" text-anchor="end">'
                     f'{v:.3g}</text>')
    for i in range(epochs):  # x ticks
        parts.append(f'<text x="{x_of(i):.1f}" y="{h - bottom + 14}" text-anchor="middle">'
                     f'{i + 1}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle">epoch'
                 '</text>')
    for n, (name, ys) in enumerate(series.items()):
        colour = _COLOURS.get(name, "#555")
        pts = [(x_of(i), y_of(v)) for i, v in enumerate(ys) if v is not None and math.isfinite(v)]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{colour}" '
                         'stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                     for x, y in pts)
        ly = top + 16 * n + 6
        parts.append(f'<line x1="{w - right + 10}" y1="{ly}" x2="{w - right + 28}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{w - right + 32}" y="{ly + 4}">{_esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _img_svg(svg: str, alt: str) -> str:
    w, h = CHART_SIZE
    return (f'<img src="{_data_uri("image/svg+xml", svg.encode())}" width="{w}" height="{h}" '
            f'alt="{_esc(alt)}">')


def _img_png(image, alt: str) -> str:
    png = encode_png(upscale(np.asarray(image), THUMB_SCALE))
    return f'<img src="{_data_uri("image/png", png)}" alt="{_esc(alt)}" title="{_esc(alt)}">'


def _table(header, rows, left_cols=1) -> str:
    th = "".join(f'<th class="{"l" if i < left_cols else ""}">{_esc(c)}</th>'
                 for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left_cols else ""}">{c}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _confusion(cm: np.ndarray, classes) -> str:
    peak = max(int(cm.max()), 1)
    head = "".join(f"<th>{_esc(c)}</th>" for c in classes)
    rows = []
    for i, c in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            v = int(cm[i, j])
            a = v / peak
            bg = f"rgba(31, 119, 180, {a:.3f})"
            fg = "white" if a > 0.5 else "#222"
            cells.append(f'<td style="background:{bg};color:{fg}">{v}</td>')
        rows.append(f'<tr><th>{_esc(c)}</th>{"".join(cells)}</tr>')
    return (f'<table class="cm"><tr><th class="l">true \\ predicted</th>{head}</tr>'
            f'{"".join(rows)}</table>')


def _diagnosis(d, notes: dict) -> str:
    rows = []
    for key, name in (("human", "human"), ("train", "train"), ("train_dev", "train-dev"),
                      ("dev", "dev"), ("test", "test")):
        ci = d.intervals.get(key)
        rows.append([_esc(name), _pct(getattr(d, key)),
                     "" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]",
                     _esc(d.sizes.get(key, ""))])
    errors = _table(["error", "rate", "95% interval", "images"], rows)
    rows = []
    for gap, name in (("avoidable_bias", "avoidable bias"), ("variance", "variance"),
                      ("data_mismatch", "data mismatch"), ("dev_overfitting", "dev overfitting")):
        sig = {True: "yes", False: "no", None: "–"}[d.significant.get(gap)]
        rows.append([_esc(name), _pct(getattr(d, gap)), sig,
                     f'<span class="muted">{_esc(notes.get(gap, ""))}</span>'])
    gaps = _table(["gap", "size", "significant", "note"], rows)
    remedies = "".join(f"<li>{_esc(r)}</li>" for r in d.remedies)
    return (f"{errors}{gaps}<p class=\"focus\">focus: {_esc(d.focus)}</p><ul>{remedies}</ul>")


def render_report(*, title: str, settings: dict, history: dict, split: str, classes,
                  images, labels, probs, diagnosis=None, notes=None, per_group: int = 8,
                  mislabelled: int = 16) -> str:
    """The report page as text.

    settings  the run's settings (shown as a table)
    history   {"loss": [...], "val_loss": [...], "train_dev_loss": [...], "accuracy": ...}
    split     the name of the split shown (its images (N, H, W, C), labels (N,), probs (N, K))
    diagnosis a :class:`~cnnlab.analysis.Diagnosis` (with ``notes`` {gap: text}), or None
    """
    from cnnlab import metrics
    from cnnlab.analysis.labels import label_issues, rank_label_issues, self_confidence

    classes = [str(c) for c in classes]
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_esc(title)}</h1>"]

    out.append("<h2>Settings</h2>")
    out.append(_table(["setting", "value"],
                      [[_esc(key), _esc(v)] for key, v in sorted(settings.items())]))

    out.append("<h2>Learning curves</h2>")
    for metric in ("loss", "accuracy"):
        series = {name: history[key] for name, key in (("train", metric),
                                                       ("train-dev", f"train_dev_{metric}"),
                                                       ("dev", f"val_{metric}"))
                  if history.get(key)}
        if series:
            out.append(_img_svg(svg_chart(metric, series), f"learning curve: {metric}"))

    out.append("<h2>Diagnosis</h2>")
    out.append(_diagnosis(diagnosis, notes or {}) if diagnosis is not None
               else '<p class="muted">no diagnosis (the run has no train and dev errors)</p>')

    acc = float(np.mean(pred == labels)) if len(labels) else 0.0
    out.append(f"<h2>Per class ({_esc(split)}: {len(labels)} images, accuracy "
               f"{100 * acc:.2f}%)</h2>")
    p, r, f1 = metrics.precision_recall_f1(labels, pred, num_classes=k)
    support = np.bincount(labels, minlength=k)
    out.append(_table(["class", "precision", "recall", "F1", "support"],
                      [[_esc(classes[c]), f"{p[c]:.3f}", f"{r[c]:.3f}", f"{f1[c]:.3f}",
                        str(int(support[c]))] for c in range(k)]))
    out.append(f"<h2>Confusion matrix ({_esc(split)})</h2>")
    out.append(_confusion(metrics.confusion_matrix(labels, pred, num_classes=k), classes))

    wrong = np.flatnonzero(pred != labels)
    out.append(f"<h2>Misclassified ({len(wrong)}), grouped by (true, predicted)</h2>")
    groups = {}
    for i in wrong:
        groups.setdefault((int(labels[i]), int(pred[i])), []).append(int(i))
    for (t, q), idx in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        thumbs = "".join(_img_png(images[i], f"#{i}: true {classes[t]}, predicted "
                                  f"{classes[q]} (p={probs[i, q]:.2f})")
                         for i in idx[:per_group])
        more = "" if len(idx) <= per_group else f' <span class="muted">+{len(idx) - per_group}'
        more += "</span>" if more else ""
        out.append(f'<div class="group"><div>true {_esc(classes[t])} → predicted '
                   f'{_esc(classes[q])}: {len(idx)}{more}</div>{thumbs}</div>')

    issues = label_issues(probs, labels)
    conf = self_confidence(probs, labels)
    order = rank_label_issues(probs, labels)[:mislabelled]
    out.append(f"<h2>Likely mislabelled ({int(issues.sum())} flagged by confident learning; "
               f"first {len(order)})</h2>")
    for i in order:
        cap = (f"#{i}: labelled {classes[labels[i]]} (p={conf[i]:.2f}), model says "
               f"{classes[pred[i]]}" + (" ⚑" if issues[i] else ""))
        out.append(f'<div class="mis">{_img_png(images[i], cap)}<br>{_esc(cap)}</div>')
    out.append("</body></html>")
    return "\n".join(out)
