"""A progress display: tqdm when it is installed (extra ``progress``), a plain line otherwise."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]

BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar:10}| {n_fmt}/{total_fmt}{postfix}"


def _fmt(logs: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in logs.items())


class Progress:
    """Shows batches done, the running loss and metrics, and images per second.

    On a terminal: tqdm's bar when tqdm is installed, else a line redrawn in place. Otherwise (a
    log file, CI) one line is printed at the end of each epoch, so logs stay short.
    """

    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool = True, stream=None,
                 use_tqdm: bool | None = None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stdout
        self.desc = f"epoch {epoch + 1}/{epochs}"
        self.start = time.perf_counter()
        self.images = 0
        self.bar = None
        self.last_draw = 0.0
        if not enabled:
            return
        if use_tqdm is None:  # a live bar on a terminal; a log file gets one line per epoch
            use_tqdm = self.stream.isatty()
        if not use_tqdm:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            # a short bar first and the metrics after it, without tqdm's timings: the line
            # fits an 80-column terminal whole (tqdm's default cuts the metrics off there)
            self.bar = tqdm(total=total, desc=self.desc, unit="batch", leave=True,
                            file=self.stream, bar_format=BAR_FORMAT)

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.images / elapsed if elapsed > 0 else 0.0

    def update(self, n_images: int, logs: dict) -> None:
        self.images += n_images
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"{_fmt(logs)} {self.rate():.0f} img/s", refresh=False)
            self.bar.update(1)
            return
        now = time.perf_counter()
        if self.stream.isatty() and now - self.last_draw > 0.2:
            self.last_draw = now
            self.stream.write(f"\r{self.desc} {_fmt(logs)} {self.rate():.0f} img/s")
            self.stream.flush()

    def close(self, logs: dict) -> None:
        if not self.enabled:
            return
        line = f"{self.desc} {_fmt(logs)} {self.rate():.0f} img/s"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{_fmt(logs)} {self.rate():.0f} img/s", refresh=True)
            self.bar.close()
            return
        self.stream.write(("\r" if self.stream.isatty() else "") + line + "\n")
        self.stream.flush()
