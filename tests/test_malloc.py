"""cnnlab._malloc: on Linux with glibc, freed arrays stay with the process for reuse, and
CNNLAB_KEEP_MEMORY=0 leaves glibc's defaults (freed pages go back to the kernel). Each case
runs in a fresh interpreter, since the setting is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = """
import numpy as np
import cnnlab
from cnnlab import _malloc

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

a = np.ones(16 << 20, np.uint8)  # 16 MB, every page touched
before = rss_mb()
del a
print(rss_mb() - before, _malloc.keep_freed_memory())
"""


def _freed_and_flag(keep: str):
    env = {**os.environ, "CNNLAB_KEEP_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), out[1] == "True"


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):  # musl, or no confstr
        return False


needs_glibc = pytest.mark.skipif(not _glibc(), reason="glibc's mallopt only")


@needs_glibc
def test_freed_arrays_stay_with_the_process():
    change, set_ = _freed_and_flag("1")
    assert set_
    assert change > -4, f"RSS fell by {-change:.1f} MB after freeing a 16 MB array"


@needs_glibc
def test_opt_out_leaves_glibc_defaults():
    change, set_ = _freed_and_flag("0")
    assert not set_
    assert change < -12, f"RSS changed by {change:.1f} MB after freeing a 16 MB array"


def test_nothing_is_set_off_linux(monkeypatch):
    from cnnlab import _malloc

    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert _malloc.keep_freed_memory() is False
